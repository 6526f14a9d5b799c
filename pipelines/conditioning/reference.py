"""Reference-image preprocessing, as upstream does it (hymm_sp/data_kits), without OpenCV.

Upstream fits the cut-out subject into the target size keeping its aspect ratio (cv2 INTER_LINEAR)
and pads it, centred, with white. That padded image feeds two consumers:
  * the LLaVA image tower (336x336, CLIP normalisation) -> `llava_pixel_values`;
  * the VAE (video size, values in [-1, 1]) -> `reference_for_vae`.
ReferenceCondition is the condition every mode has: it makes the reference latent.
Inputs may be uint8 HxWx3 arrays or ComfyUI IMAGE tensors ([B,H,W,3] float 0..1; frame 0 is used).
"""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np
import torch

from ..media.cv_resize import resize_linear_uint8
from .base import Condition, StageContext, sample_latents

# Upstream's llava_transform constants. Upstream writes the last mean as 0.4082107 (CLIP's is
# 0.40821073); we keep upstream's so the tensor matches its reference bit for bit.
CLIP_MEAN = (0.48145466, 0.4578275, 0.4082107)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
LLAVA_SIZE = 336
WHITE = 255
# Smaller pictures carry no subject to keep: LLaVA sees the reference at 336x336 and the VAE at the
# video's size, so a 1x1 (or a favicon) would be blown up into a blur and the video made of nothing.
MIN_REFERENCE_SIDE = 32


def reference_size_problem(width: int, height: int) -> str | None:
    """Why a picture of width x height is no usable reference (None when it is)."""
    if min(width, height) >= MIN_REFERENCE_SIDE:
        return None
    return (f"the picture is {width}x{height} pixels; a reference needs at least {MIN_REFERENCE_SIDE} pixels on "
            f"each side (LLaVA sees it at {LLAVA_SIZE}x{LLAVA_SIZE}; a cut-out of 512 pixels or more works best)")

ImageLike = Union[np.ndarray, torch.Tensor]


def to_uint8_hwc(image: ImageLike) -> np.ndarray:
    """uint8 HxWx3 from a uint8 array, or from a ComfyUI IMAGE (float 0..1, [B,H,W,C] or [H,W,C]).

    Floats are rounded (not truncated) so 0..1 images made from uint8 round-trip exactly. A batch
    uses its first frame. Grey (C=1) is repeated to RGB and an alpha channel (C=4) is dropped.
    """
    if isinstance(image, torch.Tensor):
        array = image.detach().to("cpu")
        if array.dtype.is_floating_point:
            array = array.float()
        array = array.numpy()
    else:
        array = np.asarray(image)
    if array.ndim == 4:
        array = array[0]
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an image HxWx3 (or a ComfyUI IMAGE [B,H,W,3]), got shape {tuple(np.shape(image))}")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            raise TypeError(f"expected uint8 pixels or floats in 0..1, got {array.dtype}")
        array = np.rint(np.clip(np.nan_to_num(array.astype(np.float64)), 0.0, 1.0) * 255.0).astype(np.uint8)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array[:, :, :3])


def fit_size(src_w: int, src_h: int, target_w: int, target_h: int) -> tuple[int, int]:
    """Upstream's aspect-fit: the side with the smaller scale fills the target; the other is
    truncated with int() (so it can come out one pixel short). Never 0 (upstream would crash)."""
    scale_h, scale_w = target_h / src_h, target_w / src_w
    if scale_w > scale_h:
        resize_h = int(target_h)
        resize_w = int(src_w / src_h * resize_h)
    else:
        resize_w = int(target_w)
        resize_h = int(src_h / src_w * resize_w)
    return max(resize_w, 1), max(resize_h, 1)


def pad_image(image: ImageLike, size: tuple[int, int], color: int = WHITE) -> np.ndarray:
    """Aspect-fit `image` into size=(width, height) and pad it, centred, with `color` (white).

    Same arithmetic as upstream's pad_image: the left/top padding is the floor half."""
    img = to_uint8_hwc(image)
    target_w, target_h = int(size[0]), int(size[1])
    if target_w <= 0 or target_h <= 0:
        raise ValueError(f"pad_image size must be positive (width, height), got {size}")
    resize_w, resize_h = fit_size(img.shape[1], img.shape[0], target_w, target_h)
    resized = resize_linear_uint8(img, (resize_w, resize_h))
    out = np.full((target_h, target_w, 3), color, dtype=np.uint8)
    left = (target_w - resize_w) // 2
    top = (target_h - resize_h) // 2
    out[top:top + resize_h, left:left + resize_w] = resized
    return out


def _clip_normalise(img_uint8: np.ndarray) -> torch.Tensor:
    # torchvision ToTensor + Normalize, in float32 and in the same order (x/255, -mean, /std).
    x = torch.from_numpy(np.ascontiguousarray(img_uint8)).permute(2, 0, 1).to(torch.float32).div(255)
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(CLIP_STD, dtype=torch.float32)[:, None, None]
    return x.sub(mean).div(std).unsqueeze(0)


def llava_pixel_values(image: ImageLike, size: int = LLAVA_SIZE) -> torch.Tensor:
    """[1,3,size,size] float32 for the LLaVA image tower.

    Upstream then runs torchvision Resize((336,336)) on the already 336x336 padded image; a
    resize to the same size returns the image unchanged, so it is skipped here."""
    return _clip_normalise(pad_image(image, (size, size)))


def uncond_llava_pixel_values(size: int = LLAVA_SIZE) -> torch.Tensor:
    """The unconditional branch's image: all white, normalised like `llava_pixel_values`."""
    return _clip_normalise(np.full((size, size, 3), WHITE, dtype=np.uint8))


def reference_pixels(image: ImageLike, width: int, height: int) -> torch.Tensor:
    """[1,3,H,W] float32 in 0..1: the reference padded to the video size (upstream pixel_value_ref)."""
    padded = pad_image(image, (width, height))
    return torch.from_numpy(padded).permute(2, 0, 1).unsqueeze(0) / 255.0


def reference_for_vae(image: ImageLike, width: int, height: int) -> torch.Tensor:
    """[1,3,1,H,W] float32 in [-1,1]: the padded reference as a one-frame video for the VAE."""
    return (reference_pixels(image, width, height) * 2 - 1).unsqueeze(2)


def compose_references(images: Sequence[ImageLike]) -> np.ndarray:
    """Several cut-out subjects side by side on one white canvas (multi-subject reference).

    Layout (deterministic): canvas height H = the tallest image's height; every cell has the same
    width W = the widest image once scaled to height H; each image is aspect-fitted into its HxW
    cell with `pad_image` (so centred on white), cells left to right in the given order. The
    canvas is N*W by H. A single image is returned as it is (uint8 HxWx3).
    """
    arrays = [to_uint8_hwc(img) for img in images]
    if not arrays:
        raise ValueError("compose_references needs at least one image")
    if len(arrays) == 1:
        return arrays[0]
    height = max(a.shape[0] for a in arrays)
    cell_w = max(int(round(a.shape[1] * height / a.shape[0])) for a in arrays)
    cells = [pad_image(a, (cell_w, height)) for a in arrays]
    return np.concatenate(cells, axis=1)


class ReferenceCondition(Condition):
    """The subject's picture: every mode has it. It makes `ref_latents`, the padded reference
    VAE-encoded as a one-frame video (the LLaVA half of the reference goes with the prompt texts)."""

    kind = "reference"
    node_name = "HunyuanCustom Prompt"
    cli_flag = "--image FILE"

    def __init__(self, image: torch.Tensor):
        self.image = image  # ComfyUI IMAGE [1, H, W, 3] float32 0..1

    def encode_latents(self, vae, ctx: StageContext) -> dict:
        ctx.status("encoding the reference image")
        video = reference_for_vae(self.image, ctx.width, ctx.height)
        return {"ref_latents": sample_latents(vae, video, ctx)}
