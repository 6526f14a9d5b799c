"""The OpenCV operations upstream applies to editing masks, re-implemented bit-exactly in torch.

Why our own code: upstream's video-editing preprocessing runs `cv2.cvtColor(COLOR_BGR2GRAY)`,
`cv2.dilate` / `cv2.erode` with a `getStructuringElement(MORPH_ELLIPSE)` kernel and
`cv2.threshold` on every mask frame, and `bg_latents` must match it pixel for pixel; OpenCV is a
heavy native dependency we keep out of the runtime (see cv_resize.py). All of these are integer
operations, so exact equality is a matter of the same formulas (OpenCV 4.x, 8-bit):

  * BGR2GRAY: (B*3735 + G*19235 + R*9798 + 2^14) >> 15 with the channels read in B, G, R order
    (OpenCV 4's 15-bit grey coefficients, not the 14-bit YUV ones; checked on all 2^24 colours).
    Upstream applies it to RGB frames, so R gets the blue weight (0.114) and B the red (0.299).
  * MORPH_ELLIPSE k x k: r = c = k // 2; row i covers columns [c - dx, c + dx] (clipped to the
    kernel) with dx = round(sqrt(r^2 - (i - r)^2)); anchor at (k // 2, k // 2). A 1x1 kernel is a
    plain copy.
  * dilate / erode: max / min over the kernel's cells, dst(y, x) = op src(y + i - ay, x + j - ax);
    OpenCV's default border (BORDER_CONSTANT with morphologyDefaultBorderValue) means pixels
    outside the image never win, i.e. 0 for dilate and 255 for erode; `iterations` passes,
    each with that border.
  * threshold(127.5, THRESH_BINARY) on 8-bit: cv2 floors the threshold, so > 127 -> 255, else 0.

Each kernel row is a horizontal run, so a pass is a windowed max/min per distinct run (built
from power-of-two windows, O(log k) operations) plus one shifted max/min per kernel row; no
per-pixel Python loops. tests/test_cv_mask_oracle.py compares all of it with cv2 when installed.
"""

from __future__ import annotations

import math

import numpy as np
import torch

_GREY_SHIFT = 15
_GREY_WEIGHTS_BGR = (3735, 19235, 9798)  # OpenCV's B2Y, G2Y, R2Y in 15-bit fixed point (sum 2^15)
THRESHOLD = 127.5


def bgr2gray_uint8(frames: torch.Tensor) -> torch.Tensor:
    """cv2.cvtColor(frame, COLOR_BGR2GRAY) on uint8 [..., 3]; channel 0 is read as blue (so on RGB
    input this reproduces upstream's BGR-on-RGB conversion). Returns uint8 [...]."""
    if frames.dtype != torch.uint8 or frames.shape[-1] != 3:
        raise ValueError(f"bgr2gray_uint8 needs uint8 [..., 3] pixels, got {frames.dtype} {tuple(frames.shape)}")
    x = frames.to(torch.int32)
    b, g, r = _GREY_WEIGHTS_BGR
    grey = x[..., 0] * b + x[..., 1] * g + x[..., 2] * r
    return ((grey + (1 << (_GREY_SHIFT - 1))) >> _GREY_SHIFT).to(torch.uint8)


def ellipse_kernel(size: int) -> np.ndarray:
    """getStructuringElement(MORPH_ELLIPSE, (size, size)) as a bool [size, size] array."""
    if size < 1:
        raise ValueError(f"kernel size must be at least 1, got {size}")
    r = c = size // 2
    inv_r2 = 1.0 / (r * r) if r else 0.0
    kernel = np.zeros((size, size), dtype=bool)
    for i in range(size):
        dy = i - r
        if abs(dy) > r:
            continue
        dx = int(np.rint(c * math.sqrt((r * r - dy * dy) * inv_r2)))
        kernel[i, max(c - dx, 0):min(c + dx + 1, size)] = True
    return kernel


def _row_runs(kernel: np.ndarray) -> list[tuple[int, int, int]]:
    """(row, first column, end column) of each kernel row's run of ones (ellipse rows are one run)."""
    runs = []
    for i, row in enumerate(kernel):
        cols = np.flatnonzero(row)
        if cols.size == 0:
            continue
        if cols[-1] - cols[0] + 1 != cols.size:
            raise ValueError("only kernels whose rows are single runs of ones are supported")
        runs.append((i, int(cols[0]), int(cols[-1]) + 1))
    return runs


def _one_pass(x: torch.Tensor, kernel: np.ndarray, dilate: bool) -> torch.Tensor:
    op = torch.maximum if dilate else torch.minimum
    neutral = 0 if dilate else 255
    kh, kw = kernel.shape
    ay, ax = kh // 2, kw // 2
    height, width = x.shape[-2:]
    padded = torch.nn.functional.pad(x, (ax, kw - 1 - ax, ay, kh - 1 - ay), value=neutral)
    # windows[p][..., x] = op over padded[..., x : x + p], for powers of two p
    windows = {1: padded}
    p = 1
    while 2 * p <= kw:
        prev = windows[p]
        windows[2 * p] = op(prev[..., :-p], prev[..., p:])
        p *= 2
    per_run: dict[tuple[int, int], torch.Tensor] = {}
    out = None
    for i, j1, j2 in _row_runs(kernel):
        if (j1, j2) not in per_run:
            length = j2 - j1
            p = 1 << (length.bit_length() - 1)
            w = windows[p]
            per_run[(j1, j2)] = op(w[..., j1:j1 + width], w[..., j2 - p:j2 - p + width])
        rows = per_run[(j1, j2)][..., i:i + height, :]
        out = rows if out is None else op(out, rows)
    return out.contiguous()


def morphology_uint8(masks: torch.Tensor, expand: int, iterations: int = 3) -> torch.Tensor:
    """Upstream's mask expansion: cv2.dilate (expand > 0) or cv2.erode (expand < 0) with the
    |expand| x |expand| ellipse, `iterations` times, on uint8 [..., H, W]. 0 returns the input."""
    if masks.dtype != torch.uint8:
        raise ValueError(f"morphology_uint8 needs uint8 masks, got {masks.dtype}")
    size = abs(int(expand))
    if size <= 1:  # cv2 copies for a 1x1 kernel (and there is nothing to do for 0)
        return masks.clone()
    kernel = ellipse_kernel(size)
    out = masks
    for _ in range(iterations):
        out = _one_pass(out, kernel, dilate=expand > 0)
    return out


def threshold_uint8(masks: torch.Tensor, threshold: float = THRESHOLD) -> torch.Tensor:
    """cv2.threshold(mask, threshold, 255, THRESH_BINARY) on uint8: > floor(threshold) -> 255, else 0."""
    return torch.where(masks > math.floor(threshold), 255, 0).to(torch.uint8)


def fill_bounding_box(masks: torch.Tensor) -> torch.Tensor:
    """Upstream UI's "bbox": each frame's mask becomes the filled bounding box of its 255 pixels
    (inclusive on all sides); a frame without any is left as it is. uint8 [F, H, W]."""
    out = masks.clone()
    on = masks == 255
    rows, cols = on.any(dim=2), on.any(dim=1)  # [F, H], [F, W]
    for f in torch.nonzero(rows.any(dim=1)).flatten().tolist():
        ys, xs = torch.nonzero(rows[f]).flatten(), torch.nonzero(cols[f]).flatten()
        out[f, int(ys[0]):int(ys[-1]) + 1, int(xs[0]):int(xs[-1]) + 1] = 255
    return out
