"""Editing preprocessing beyond the fixtures: upstream's chain against cv2 on random sizes (when cv2
is installed), our additions (size change, one mask frame, pose), input formats and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hunyuan_custom.pipelines.conditioning.edit_pixels import (
    EditInputError, cover_crop, cover_size, frames_used, output_frames, prepare_edit_pixels, to_uint8_frames,
)


def _upstream_with_cv2(cv2, video, mask, expand, box):
    """Upstream's per-frame recipe written with cv2 (as the fixture README describes it)."""
    count = min(len(video), len(mask))
    h, w = video.shape[1:3]
    masks, masked = [], []
    for f in range(count):
        m = cv2.resize(mask[f], (w, h))
        if m.ndim == 3:
            m = cv2.cvtColor(m, cv2.COLOR_BGR2GRAY)
        if expand:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (abs(expand), abs(expand)))
            m = (cv2.dilate if expand > 0 else cv2.erode)(m, kernel, iterations=3)
        m = cv2.threshold(m, 127.5, 255, cv2.THRESH_BINARY)[1]
        if box and (m == 255).any():
            ys, xs = np.where(m == 255)
            m[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = 255
        masks.append(m)
        masked.append(video[f] * (m == 0)[..., None])
    return np.stack(masks), np.stack(masked)


def test_matches_upstreams_recipe_written_with_cv2_on_random_inputs():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(7)
    for i in range(24):
        frames, h, w = int(rng.integers(1, 7)), 16 * int(rng.integers(1, 5)), 16 * int(rng.integers(1, 5))
        video = rng.integers(0, 256, (frames, h, w, 3), dtype=np.uint8)
        mh, mw = int(rng.integers(4, 70)), int(rng.integers(4, 70))
        shape = (int(rng.integers(1, 8)), mh, mw) + ((3,) if i % 2 else ())
        mask = (rng.random(shape) > 0.6).astype(np.uint8) * int(rng.integers(100, 256))
        expand, box = int(rng.integers(-8, 9)), bool(i % 3 == 0)
        exp_mask, exp_masked = _upstream_with_cv2(cv2, video, mask, expand, box)
        if len(mask) == 1:  # ours applies one mask frame to every frame; compare that frame only
            exp_mask, exp_masked = exp_mask[:1], exp_masked[:1]
            video = video[:1]
        pixels = prepare_edit_pixels(video, mask, expand=expand, box=box)
        assert np.array_equal(pixels.mask.numpy(), exp_mask), (i, shape, expand, box)
        assert np.array_equal(pixels.masked_video.numpy(), exp_masked), (i, shape, expand, box)


def _video(frames=9, h=32, w=48, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (frames, h, w, 3), dtype=np.uint8))


def test_frames_used_is_the_shorter_and_one_mask_frame_applies_to_all():
    assert frames_used(17, 19) == 17 and frames_used(12, 10) == 10 and frames_used(17, 1) == 17
    assert frames_used(17, 19, limit=13) == 13
    video = _video(frames=6)
    mask = torch.zeros(1, 32, 48, dtype=torch.uint8)
    mask[0, 8:20, 10:30] = 255
    pixels = prepare_edit_pixels(video, mask)
    assert pixels.num_frames == 6 and all(torch.equal(pixels.mask[f], pixels.mask[0]) for f in range(6))
    assert not pixels.masked_video[:, 8:20, 10:30].any()  # black inside
    assert torch.equal(pixels.masked_video[:, :8], video[:, :8])  # the source outside


def test_output_length_follows_the_vae_and_4n1_rounding():
    assert [output_frames(n) for n in (1, 5, 9, 10, 11, 12, 13, 17, 19)] == [1, 5, 9, 9, 9, 9, 13, 17, 17]


def test_other_target_size_covers_and_centre_crops_video_mask_and_pose():
    video = _video(frames=3, h=40, w=80)
    mask = torch.zeros(3, 40, 80, dtype=torch.uint8)
    mask[:, :, 36:44] = 255  # a vertical band in the middle
    pose = torch.full((1, 40, 80, 3), 9, dtype=torch.uint8)
    pixels = prepare_edit_pixels(video, mask, width=32, height=32, pose=pose)
    assert pixels.mask.shape == (3, 32, 32) and pixels.masked_video.shape == (3, 32, 32, 3)
    assert cover_size(80, 40, 32, 32) == (64, 32)  # scaled to cover, then 16 px cut left and right
    columns = torch.nonzero(pixels.mask[0, 0] == 255).flatten().tolist()
    assert columns and min(columns) >= 11 and max(columns) <= 20  # still centred
    assert (pixels.masked_video[pixels.mask == 255] == 9).all()  # pose inside the mask
    assert torch.equal(pixels.masked_video[:, :, :8], cover_crop(video, 32, 32)[:, :, :8])


def test_same_size_is_not_resized_and_a_size_rounded_to_16_is_only_cropped():
    video = _video()
    assert cover_crop(video, 48, 32) is video
    odd = _video(frames=2, h=37, w=45)
    assert cover_size(45, 37, 32, 32) == (45, 37)
    assert torch.equal(cover_crop(odd, 32, 32), odd[:, 2:34, 6:38])
    assert cover_size(45, 37, 64, 64) == (78, 64)  # smaller than the target: scaled up to cover


def test_comfy_float_frames_round_trip_and_three_channel_masks_use_upstreams_grey():
    video = _video(frames=2)
    assert torch.equal(to_uint8_frames(video.float() / 255, "video"), video)
    orange = torch.tensor([255, 110, 40], dtype=torch.float32) / 255  # grey 106: not masked upstream
    azure = torch.tensor([40, 120, 255], dtype=torch.float32) / 255  # grey 151: masked upstream
    mask = torch.zeros(1, 32, 48, 3)
    mask[0, :, :24] = orange
    mask[0, :, 24:] = azure
    pixels = prepare_edit_pixels(video, mask)
    assert not pixels.mask[:, :, :24].any() and (pixels.mask[:, :, 24:] == 255).all()


@pytest.mark.parametrize("bad, words", [
    (torch.zeros(0, 32, 48, 3), "video: has no frames"),
    (torch.zeros(2, 32, 48, 2), "video: expected frames shaped"),
    (torch.zeros(2, 32, 48, 3, dtype=torch.int32), "int32"),
])
def test_bad_videos_are_named(bad, words):
    with pytest.raises(EditInputError, match=words):
        prepare_edit_pixels(bad, torch.zeros(1, 32, 48))


def test_short_pose_is_refused_with_both_counts():
    with pytest.raises(EditInputError, match="pose: has 2 frames but the edit uses 5"):
        prepare_edit_pixels(_video(frames=5), torch.zeros(5, 32, 48), pose=torch.zeros(2, 32, 48, 3))
