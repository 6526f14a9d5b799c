"""pipelines/media/cv_mask.py against OpenCV itself (skipped when cv2 is not installed) and by itself.

cv2 is only a test-time oracle (`pip install opencv-python-headless`); the pack never imports it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hunyuan_custom.pipelines.media import cv_mask


def _masks(seed: int = 0, count: int = 200):
    rng = np.random.default_rng(seed)
    for i in range(count):
        h, w = (int(v) for v in rng.integers(1, 64, 2))
        img = rng.integers(0, 256, (h, w), dtype=np.uint8)
        if i % 3 == 0:  # binary blobs, like real masks
            img = np.where(img > 200, 255, 0).astype(np.uint8)
        expand = int(rng.integers(-31, 32))
        iterations = int(rng.integers(1, 4))
        yield img, expand, iterations


def test_ellipse_kernels_match_get_structuring_element():
    cv2 = pytest.importorskip("cv2")
    for size in range(1, 41):
        expected = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)).astype(bool)
        assert np.array_equal(cv_mask.ellipse_kernel(size), expected), size


def test_dilate_and_erode_match_opencv_with_its_default_border():
    cv2 = pytest.importorskip("cv2")
    failures = []
    for img, expand, iterations in _masks():
        if expand == 0:
            continue
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (abs(expand), abs(expand)))
        op = cv2.dilate if expand > 0 else cv2.erode
        expected = op(img, kernel, iterations=iterations)
        ours = cv_mask.morphology_uint8(torch.from_numpy(img), expand, iterations).numpy()
        if not np.array_equal(ours, expected):
            failures.append((img.shape, expand, iterations))
    assert not failures, f"{len(failures)} cases differ from cv2 {cv2.__version__}, e.g. {failures[:5]}"


def test_grey_matches_bgr2gray_on_every_colour():
    cv2 = pytest.importorskip("cv2")
    axis = np.arange(256, dtype=np.uint8)
    colours = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(256 * 256, 256, 3)
    expected = cv2.cvtColor(colours, cv2.COLOR_BGR2GRAY)
    assert np.array_equal(cv_mask.bgr2gray_uint8(torch.from_numpy(colours)).numpy(), expected)


def test_threshold_matches_opencv():
    cv2 = pytest.importorskip("cv2")
    img = np.arange(256, dtype=np.uint8).reshape(16, 16)
    expected = cv2.threshold(img, 127.5, 255, cv2.THRESH_BINARY)[1]
    assert np.array_equal(cv_mask.threshold_uint8(torch.from_numpy(img)).numpy(), expected)


def test_grey_uses_upstreams_bgr_weights_on_rgb_frames():
    # The fixture README's colours: orange is NOT masked (106), azure IS (151), although RGB2GRAY
    # would say the opposite; a grey frame (R = G = B) keeps its value.
    rgb = torch.tensor([[[255, 110, 40], [40, 120, 255], [20, 255, 20], [77, 77, 77], [255, 255, 255]]], dtype=torch.uint8)
    assert cv_mask.bgr2gray_uint8(rgb).tolist() == [[106, 151, 158, 77, 255]]


def test_known_kernels_and_their_anchor():
    assert cv_mask.ellipse_kernel(1).tolist() == [[True]]
    assert cv_mask.ellipse_kernel(2).astype(int).tolist() == [[0, 1], [1, 1]]
    assert cv_mask.ellipse_kernel(3).astype(int).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    assert cv_mask.ellipse_kernel(5).astype(int).tolist() == [
        [0, 0, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 1, 0, 0]]
    # 2x2 kernel, anchor (1, 1): a dot grows up and to the left only.
    dot = torch.zeros(5, 5, dtype=torch.uint8)
    dot[2, 2] = 255
    grown = cv_mask.morphology_uint8(dot, 2, iterations=1)
    assert torch.nonzero(grown).tolist() == [[2, 2], [2, 3], [3, 2]]


def test_borders_never_win_and_iterations_repeat():
    full = torch.full((6, 7), 255, dtype=torch.uint8)
    assert torch.equal(cv_mask.morphology_uint8(full, -5), full)  # erode: outside counts as 255
    empty = torch.zeros(6, 7, dtype=torch.uint8)
    assert torch.equal(cv_mask.morphology_uint8(empty, 5), empty)  # dilate: outside counts as 0
    dot = torch.zeros(1, 15, 15, dtype=torch.uint8)
    dot[0, 7, 7] = 200
    once = cv_mask.morphology_uint8(dot, 3, iterations=1)
    assert int((once == 200).sum()) == 5  # the 3x3 cross
    assert int((cv_mask.morphology_uint8(dot, 3) == 200).sum()) == 25  # 3 passes: a diamond of radius 3
    assert torch.equal(cv_mask.morphology_uint8(dot, 1), dot) and torch.equal(cv_mask.morphology_uint8(dot, 0), dot)


def test_bounding_box_fills_per_frame_and_leaves_empty_frames():
    masks = torch.zeros(2, 6, 8, dtype=torch.uint8)
    masks[0, 1, 2] = masks[0, 4, 5] = 255
    boxed = cv_mask.fill_bounding_box(masks)
    assert torch.nonzero(boxed[0] == 255).min(0).values.tolist() == [1, 2]
    assert torch.nonzero(boxed[0] == 255).max(0).values.tolist() == [4, 5]
    assert int((boxed[0] == 255).sum()) == 4 * 4 and not boxed[1].any()


def test_refuses_wrong_dtypes():
    with pytest.raises(ValueError, match="uint8"):
        cv_mask.morphology_uint8(torch.zeros(3, 3), 3)
    with pytest.raises(ValueError, match="uint8"):
        cv_mask.bgr2gray_uint8(torch.zeros(3, 3, 3))
