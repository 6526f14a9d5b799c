"""pipelines/media/cv_resize.py against OpenCV itself (skipped when cv2 is not installed) and by itself.

cv2 is only a test-time oracle (`pip install opencv-python-headless`); the pack never imports it.
"""

from __future__ import annotations

import numpy as np
import pytest

from hunyuan_custom.pipelines.media.cv_resize import resize_linear_uint8


def _cases(seed: int = 0, count: int = 250):
    rng = np.random.default_rng(seed)
    for i in range(count):
        h, w = (int(v) for v in rng.integers(1, 70, 2))
        cn = (3, 1, 4, 3)[i % 4]
        dw, dh = (int(v) for v in rng.integers(1, 90, 2))
        if i % 9 == 0:  # exact 2x up
            dw, dh = 2 * w, 2 * h
        if i % 10 == 0:  # exact 2x down (cv2 switches to INTER_AREA here)
            dw, dh = max(1, w // 2), max(1, h // 2)
            w, h = 2 * dw, 2 * dh
        if i % 13 == 0:  # one axis unchanged
            dw = w
        img = rng.integers(0, 256, (h, w, cn), dtype=np.uint8)
        if i % 5 == 0:  # hard edges hit the extremes of the fixed-point arithmetic
            img = np.where(img > 127, 255, 0).astype(np.uint8)
        yield img, (dw, dh)
    # Realistic sizes: a photo fitted into the LLaVA square and into a video frame.
    yield rng.integers(0, 256, (613, 411, 3), dtype=np.uint8), (336, 336 * 613 // 411)
    yield rng.integers(0, 256, (300, 200, 3), dtype=np.uint8), (64, 96)
    yield rng.integers(0, 256, (37, 53, 3), dtype=np.uint8), (1280, 720)


def test_matches_opencv_inter_linear_on_random_images():
    cv2 = pytest.importorskip("cv2")
    failures = []
    for img, size in _cases():
        expected = cv2.resize(img, size)  # INTER_LINEAR is cv2's default
        if expected.ndim == 2:
            expected = expected[:, :, None]
        ours = resize_linear_uint8(img, size)
        if ours.shape != expected.shape or not np.array_equal(ours, expected):
            failures.append((img.shape, size))
    assert not failures, f"{len(failures)} cases differ from cv2 {cv2.__version__}, e.g. {failures[:5]}"


def test_matches_opencv_on_grey_2d_arrays():
    cv2 = pytest.importorskip("cv2")
    img = np.random.default_rng(3).integers(0, 256, (41, 29), dtype=np.uint8)
    for size in ((17, 90), (58, 82), (100, 7)):
        assert np.array_equal(resize_linear_uint8(img, size), cv2.resize(img, size))


def test_same_size_is_a_copy_and_constant_stays_constant():
    img = np.random.default_rng(1).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    out = resize_linear_uint8(img, (7, 9))
    assert np.array_equal(out, img) and out is not img
    flat = np.full((13, 11, 3), 200, dtype=np.uint8)
    for size in ((5, 3), (40, 31), (11, 26)):
        assert (resize_linear_uint8(flat, size) == 200).all()


def test_exact_half_is_a_rounded_2x2_average():
    img = np.array([[0, 1, 10, 20], [2, 1, 30, 41]], dtype=np.uint8)[:, :, None]
    out = resize_linear_uint8(img, (2, 1))
    assert out[:, :, 0].tolist() == [[1, 25]]  # (0+1+2+1+2)>>2, (10+20+30+41+2)>>2


def test_refuses_bad_input():
    with pytest.raises(TypeError, match="uint8"):
        resize_linear_uint8(np.zeros((4, 4, 3), np.float32), (2, 2))
    with pytest.raises(ValueError, match="positive"):
        resize_linear_uint8(np.zeros((4, 4, 3), np.uint8), (0, 2))
