"""A latent frame's colours without the VAE: for step previews, at no decode cost.

HunyuanVideo latents (16 channels, scaled by the VAE's scaling factor, as the sampler works on them)
map to RGB in -1..1 through a fixed linear fit: the 16x3 matrix and the bias below are the ones
ComfyUI uses for this latent space (comfy/latent_formats.py, HunyuanVideo). One latent pixel stands
for 8x8 video pixels, so the picture is small and blurry, but it shows colours and shapes.
"""

from __future__ import annotations

import torch

# [channel][r, g, b] and [r, g, b]: numbers from ComfyUI's latent_formats.HunyuanVideo.
LATENT_RGB_FACTORS = (
    (-0.0395, -0.0331, 0.0445),
    (0.0696, 0.0795, 0.0518),
    (0.0135, -0.0945, -0.0282),
    (0.0108, -0.0250, -0.0765),
    (-0.0209, 0.0032, 0.0224),
    (-0.0804, -0.0254, -0.0639),
    (-0.0991, 0.0271, -0.0669),
    (-0.0646, -0.0422, -0.0400),
    (-0.0696, -0.0595, -0.0894),
    (-0.0799, -0.0208, -0.0375),
    (0.1166, 0.1627, 0.0962),
    (0.1165, 0.0432, 0.0407),
    (-0.2315, -0.1920, -0.1355),
    (-0.0270, 0.0401, -0.0821),
    (-0.0616, -0.0997, -0.0727),
    (0.0249, -0.0469, -0.1703),
)
LATENT_RGB_BIAS = (0.0259, -0.0192, -0.0761)


def latent_frame_rgb(frame: torch.Tensor) -> torch.Tensor:
    """[16, h, w] latent frame (any dtype or device) -> [h, w, 3] uint8 RGB on the CPU."""
    if frame.ndim != 3 or frame.shape[0] != len(LATENT_RGB_FACTORS):
        raise ValueError(f"expected a latent frame [{len(LATENT_RGB_FACTORS)}, h, w], got {tuple(frame.shape)}")
    factors = torch.tensor(LATENT_RGB_FACTORS, dtype=torch.float32)
    bias = torch.tensor(LATENT_RGB_BIAS, dtype=torch.float32)
    rgb = torch.einsum("chw,cr->hwr", frame.detach().float().cpu(), factors) + bias  # -1..1
    return ((rgb + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
