"""Video-editing preprocessing, as upstream does it: source video + mask video -> the two videos
the VAE encodes (the masked source and the mask), without OpenCV.

Upstream (VideoDataset / gradio run_mix_mask), per frame, for the first min(video, mask) frames:
resize the mask to the video's size (cv2 INTER_LINEAR); a 3-channel mask goes through
COLOR_BGR2GRAY although the frames are RGB; with `expand` e != 0, dilate (e > 0) or erode (e < 0)
with the |e|x|e| ellipse, 3 iterations, on the grey mask; threshold > 127.5 -> {0, 255}; the UI's
optional box fills each frame's bounding box. Masked video = the source, black inside the mask.
Both are mapped to [-1, 1] for the VAE (the mask repeated to 3 channels).

Our additions around that, none of which changes upstream's numbers when they do not apply:
  * one mask frame applies to every frame (upstream would stop after one frame);
  * a target size other than the source's: the source (and the mask, once resized to the source's
    size as upstream does) is scaled to cover the target and centre-cropped; the expansion then
    works in output pixels, as upstream's does (its output size is the source's);
  * `pose` frames (e.g. a DWPose skeleton on black) are drawn inside the mask instead of black
    (upstream's --pose-enhance, with the skeleton made by the user's own pose node).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np
import torch

from ..media.cv_mask import bgr2gray_uint8, fill_bounding_box, morphology_uint8, threshold_uint8
from ..media.cv_resize import resize_linear_uint8
from .base import ConditionError

FramesLike = Union[np.ndarray, torch.Tensor]
EXPAND_ITERATIONS = 3  # upstream's dilate/erode iterations
_CHUNK = 16  # frames per morphology call: bounds the temporary copies at 720p


class EditInputError(ConditionError):
    """A source, mask or pose video that cannot be used; the message names it and says why."""


def to_uint8_frames(frames: FramesLike, what: str) -> torch.Tensor:
    """uint8 [F, H, W, C] (C = 1 or 3) from uint8 arrays or ComfyUI IMAGE / MASK tensors (float 0..1).

    Accepts [F, H, W] (grey / MASK) and [F, H, W, 1|3|4] (alpha dropped). Floats are rounded, so 0..1 frames made from uint8 come back exactly."""
    x = frames if isinstance(frames, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(frames))
    x = x.detach().to("cpu")
    if x.ndim in (3, 4) and 0 in x.shape:  # core GetVideoComponents gives [0, 3, 0, 0] for a video without frames
        raise EditInputError(f"{what}: has no frames (shape {tuple(x.shape)}); give a video with at least one frame")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3, 4):
        raise EditInputError(f"{what}: expected frames shaped [frames, height, width] or [frames, height, width, 3], "
                             f"got {tuple(frames.shape)}")
    x = x[..., :3]
    if x.dtype == torch.uint8:
        return x.contiguous()
    if not x.dtype.is_floating_point:
        raise EditInputError(f"{what}: expected uint8 pixels or floats in 0..1, got {x.dtype}")
    return (torch.nan_to_num(x.float()).clamp(0, 1) * 255).round().to(torch.uint8).contiguous()


def frames_used(video_frames: int, mask_frames: int, limit: int | None = None) -> int:
    """Upstream's frame count: the shorter of the video and the mask (a one-frame mask applies to
    every frame); `limit` (the job's num_frames) can shorten it further."""
    count = video_frames if mask_frames == 1 else min(video_frames, mask_frames)
    return count if limit is None else min(count, limit)


def cover_size(src_w: int, src_h: int, width: int, height: int) -> tuple[int, int]:
    """The size a src_w x src_h frame is scaled to so that it covers width x height (aspect kept).

    A source that already covers the target with less than 16 px to spare on each side (a size
    rounded down to multiples of 16) keeps its size: it is only cropped, never resampled."""
    if 0 <= src_w - width < 16 and 0 <= src_h - height < 16:
        return src_w, src_h
    scale = max(width / src_w, height / src_h)
    return max(width, round(src_w * scale)), max(height, round(src_h * scale))


def _resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """resize_linear_uint8 on every frame of uint8 [F, H, W, C]; size is (width, height)."""
    if (frames.shape[2], frames.shape[1]) == tuple(size):
        return frames
    out = [torch.from_numpy(resize_linear_uint8(np.ascontiguousarray(f.numpy()), size)) for f in frames]
    return torch.stack([o if o.ndim == 3 else o[..., None] for o in out])


def cover_crop(frames: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Scale uint8 [F, H, W, C] to cover width x height (OpenCV-exact INTER_LINEAR) and crop the
    centre; a frame already of that size is returned as it is."""
    src_h, src_w = frames.shape[1:3]
    if (src_w, src_h) == (width, height):
        return frames
    cover_w, cover_h = cover_size(src_w, src_h, width, height)
    scaled = _resize_frames(frames, (cover_w, cover_h))
    left, top = (cover_w - width) // 2, (cover_h - height) // 2
    return scaled[:, top:top + height, left:left + width].contiguous()


def _take(frames: torch.Tensor, count: int) -> torch.Tensor:
    """The first `count` frames; a single frame is repeated."""
    if frames.shape[0] == 1 and count > 1:
        return frames.expand(count, *frames.shape[1:])
    return frames[:count]


def process_mask(mask: torch.Tensor, width: int, height: int, expand: int, box: bool,
                 crop_to: tuple[int, int] | None = None) -> torch.Tensor:
    """Upstream's mask steps on uint8 [F, h, w, C]: resize to width x height (the video's size),
    grey (BGR2GRAY for C = 3), then (our addition) cover-crop to `crop_to`, then expand,
    threshold and box. Returns uint8 [F, H, W] of 0 / 255."""
    resized = _resize_frames(mask, (width, height))
    grey = bgr2gray_uint8(resized) if resized.shape[-1] == 3 else resized[..., 0]
    if crop_to is not None:
        grey = cover_crop(grey[..., None], *crop_to)[..., 0]
    chunks = [threshold_uint8(morphology_uint8(grey[i:i + _CHUNK], expand, EXPAND_ITERATIONS))
              for i in range(0, grey.shape[0], _CHUNK)]
    out = torch.cat(chunks)
    return fill_bounding_box(out) if box else out


@dataclass(frozen=True)
class EditPixels:
    """The processed videos, uint8, as upstream holds them before the VAE."""

    mask: torch.Tensor  # [F, H, W], 0 / 255: 255 where the new subject goes
    masked_video: torch.Tensor  # [F, H, W, 3]: the source, black (or the pose) inside the mask

    @property
    def num_frames(self) -> int:
        return int(self.mask.shape[0])

    def bg_for_vae(self) -> torch.Tensor:
        """[1, 3, F, H, W] float32 in [-1, 1]: upstream's pixel_value_bg * 2 - 1."""
        return to_model_range(self.masked_video)

    def mask_for_vae(self) -> torch.Tensor:
        """[1, 3, F, H, W] float32, -1 / +1: the mask repeated to 3 channels, * 2 - 1."""
        return to_model_range(self.mask[..., None].expand(*self.mask.shape, 3))

    def bg_uint8(self) -> torch.Tensor:
        """The masked video as the VAE takes uint8 ([1, 3, F, H, W], a view): it maps each tile to
        [-1, 1] as bg_for_vae does, so no float copy of a long video is made."""
        return self.masked_video.permute(3, 0, 1, 2).unsqueeze(0)

    def mask_uint8(self) -> torch.Tensor:
        """The mask repeated to 3 channels, uint8 [1, 3, F, H, W] (a view); see bg_uint8."""
        return self.mask[None, None].expand(1, 3, *self.mask.shape)


def to_model_range(frames: torch.Tensor) -> torch.Tensor:
    """uint8 [F, H, W, 3] -> float32 [1, 3, F, H, W] = x / 255 * 2 - 1, in upstream's float32 order."""
    return (frames.permute(3, 0, 1, 2).unsqueeze(0).to(torch.float32) / 255.0) * 2 - 1


def prepare_edit_pixels(video: FramesLike, mask: FramesLike, *, expand: int = 0, box: bool = False,
                        pose: FramesLike | None = None, width: int | None = None, height: int | None = None,
                        num_frames: int | None = None) -> EditPixels:
    """The masked video and the processed mask, exactly as upstream makes them when the target size
    (width x height, default: the source's) is the source's size.

    `num_frames` caps the frames used (default: all of min(video, mask)). No 4n+1 rounding here:
    upstream encodes every used frame and the VAE's latent count decides the output length."""
    src = to_uint8_frames(video, "video")
    if src.shape[-1] != 3:
        src = src.expand(*src.shape[:3], 3)
    masks = to_uint8_frames(mask, "mask")
    src_h, src_w = int(src.shape[1]), int(src.shape[2])
    width, height = width or src_w, height or src_h
    count = frames_used(src.shape[0], masks.shape[0], num_frames)
    if count < 1:
        raise EditInputError(f"num_frames={num_frames} leaves no frame to edit")
    src = _take(src, count)
    crop_to = None if (src_w, src_h) == (width, height) else (width, height)
    # One mask frame is processed once and shared by every frame.
    processed = _take(process_mask(masks[:count], src_w, src_h, int(expand), bool(box), crop_to), count)
    src = cover_crop(src, width, height)
    inside = torch.zeros_like(src)
    if pose is not None:
        poses = to_uint8_frames(pose, "pose")
        if poses.shape[0] != 1 and poses.shape[0] < count:
            raise EditInputError(f"pose: has {poses.shape[0]} frames but the edit uses {count}; give a pose "
                                 "video at least as long as the source (or one frame for all)")
        poses = _take(poses, count)
        if poses.shape[-1] != 3:
            poses = poses.expand(*poses.shape[:3], 3)
        inside = cover_crop(_resize_frames(poses, (src_w, src_h)), width, height)
    masked = torch.where((processed == 0)[..., None], src, inside)
    return EditPixels(mask=processed, masked_video=masked)


def output_frames(encoded_frames: int, time_compression: int = 4) -> int:
    """Frames of the edited video: the VAE turns F frames into (F-1)//4+1 latents, which decode to
    (t-1)*4+1 frames (F = 10..12 -> 9), as upstream."""
    latents = (encoded_frames - 1) // time_compression + 1
    return (latents - 1) * time_compression + 1

