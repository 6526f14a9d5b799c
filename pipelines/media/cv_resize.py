"""OpenCV's `cv2.resize(img, (w, h))` (INTER_LINEAR, uint8) re-implemented bit-exactly in numpy.

Why our own code: upstream preprocesses the reference image with cv2.resize, and the conditioning
must match it pixel for pixel, but OpenCV is a heavy native dependency we do not want at runtime.
PIL and torch bilinear use other coefficients and rounding, so they differ by a few levels.

This follows OpenCV 4.x (modules/imgproc/src/resize.cpp, as shipped in the opencv-python wheels
with their SSE baseline) for 8-bit images:
  * same size -> plain copy; exact 2x downscale on both axes -> INTER_AREA's fast 2x2 average;
  * otherwise half-pixel centres, float32 source coordinates, 11-bit (x2048) coefficients
    rounded half-to-even, the horizontal pass kept in 32-bit integers;
  * the vertical pass uses OpenCV's (slightly lossy) SIMD formula ((h >> 4) * b >> 16 per row,
    summed, then + 2 >> 2), not the exact scalar one ((h0*b0 + h1*b1 + 2^21) >> 22): checked
    against the opencv-python 4.10 wheel, every element of a row, tail included, gets the
    vector result; rows outside the image clamp to the edge row but keep their weights.
tests/test_cv_resize_oracle.py compares it against cv2 itself when cv2 is installed.
"""

from __future__ import annotations

import numpy as np

_COEF_SCALE = 2048  # INTER_RESIZE_COEF_SCALE (11 fractional bits)


def _coefficients(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source index and the two fixed-point weights for each output position along one axis."""
    scale = 1.0 / (dst / src)  # OpenCV stores inv_scale = dst/src and inverts it (matters in the last ulp)
    pos = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    index = np.floor(pos).astype(np.int64)
    frac = (pos - index.astype(np.float32)).astype(np.float32)
    w0 = np.rint((np.float32(1.0) - frac) * np.float32(_COEF_SCALE)).astype(np.int64)
    w1 = np.rint(frac * np.float32(_COEF_SCALE)).astype(np.int64)
    return index, w0, w1


def _area_2x(img: np.ndarray) -> np.ndarray:
    """INTER_AREA fast path, which cv2 uses for INTER_LINEAR when both axes shrink exactly 2x."""
    s = img.astype(np.int32)
    total = s[0::2, 0::2] + s[0::2, 1::2] + s[1::2, 0::2] + s[1::2, 1::2]
    if img.shape[2] in (1, 3, 4):
        return ((total + 2) >> 2).astype(np.uint8)
    # other channel counts go through the generic area code: float multiply, round half to even
    return np.clip(np.rint(total.astype(np.float32) * np.float32(0.25)), 0, 255).astype(np.uint8)


def resize_linear_uint8(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """cv2.resize(img, size) for a uint8 HxW or HxWxC array; size is (width, height) like cv2."""
    if img.dtype != np.uint8:
        raise TypeError(f"resize_linear_uint8 needs a uint8 image, got {img.dtype}")
    dst_w, dst_h = int(size[0]), int(size[1])
    if dst_w <= 0 or dst_h <= 0:
        raise ValueError(f"resize target must be positive, got {dst_w}x{dst_h}")
    squeeze = img.ndim == 2
    src = img[:, :, None] if squeeze else img
    src_h, src_w, cn = src.shape
    if (src_w, src_h) == (dst_w, dst_h):
        out = src.copy()
    elif src_w == 2 * dst_w and src_h == 2 * dst_h:
        out = _area_2x(src)
    else:
        out = _resize_generic(src, dst_w, dst_h)
    return out[:, :, 0] if squeeze else out


def _resize_generic(src: np.ndarray, dst_w: int, dst_h: int) -> np.ndarray:
    src_h, src_w, cn = src.shape
    # Horizontal pass: columns outside the image clamp to the edge with weights (2048, 0).
    sx, ax0, ax1 = _coefficients(src_w, dst_w)
    left = sx < 0
    right = sx >= src_w - 1
    ax0 = np.where(left | right, _COEF_SCALE, ax0)
    ax1 = np.where(left | right, 0, ax1)
    sx = np.clip(sx, 0, src_w - 1)
    sx1 = np.minimum(sx + 1, src_w - 1)
    s = src.astype(np.int64)
    horiz = s[:, sx, :] * ax0[None, :, None] + s[:, sx1, :] * ax1[None, :, None]  # [src_h, dst_w, cn]
    horiz = horiz.reshape(src_h, dst_w * cn)

    # Vertical pass: rows clamp to the edge but keep their weights (this is what OpenCV does).
    sy, by0, by1 = _coefficients(src_h, dst_h)
    r0 = np.clip(sy, 0, src_h - 1)
    r1 = np.clip(sy + 1, 0, src_h - 1)
    h0, h1 = horiz[r0], horiz[r1]  # [dst_h, dst_w*cn]
    b0, b1 = by0[:, None], by1[:, None]

    # int16 lanes: (h >> 4) fits int16; v_mul_hi keeps the high 16 bits of each product.
    vec = (((h0 >> 4) * b0) >> 16) + (((h1 >> 4) * b1) >> 16)
    out = (vec + 2) >> 2
    return np.clip(out, 0, 255).astype(np.uint8).reshape(dst_h, dst_w, cn)
