"""The video-editing condition: a source video and a mask video -> `bg_latents` for the editing
checkpoint (bg_in / bg_proj add them to the video tokens in both CFG rows).

Pixels: edit_pixels.py (upstream's mask processing, OpenCV-exact). Latents, as upstream's
sample_batch.py: the masked video and the mask (both in [-1, 1]) are VAE-encoded separately with
tiling on, each SAMPLED from its posterior (mean + std * N(0, 1)), concatenated [bg, mask] on the
channels and multiplied by the scaling factor -> [1, 32, t, H/8, W/8], t = (F-1)//4+1.

Difference from upstream, on purpose: upstream draws the N(0, 1) samples from torch's GLOBAL RNG,
which nothing seeds in its one-GPU script, so its edits are not reproducible. Ours come from the
job's CPU generator (seeded with the job's seed, after the reference latent's draw), drawn bg first,
then mask, in upstream's order: a seed gives the same video on every device and every run.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..vae.tiling import TileCallback

NoiseSource = Callable[[torch.Size], torch.Tensor]  # shape -> float32 N(0, 1) on the CPU


def generator_noise(generator: torch.Generator) -> NoiseSource:
    """Posterior draws from a CPU generator (float32), the way generate.py samples the reference."""
    return lambda shape: torch.randn(shape, generator=generator, dtype=torch.float32)


def sample_posterior(vae, video: torch.Tensor, noise: NoiseSource, *, tiled: bool = True,
                     on_tile: TileCallback | None = None) -> torch.Tensor:
    """vae.encode(video).latent_dist.sample() with the noise from `noise`, float32 on the CPU,
    unscaled. The draw happens on the CPU so a seed means the same on every device."""
    dist = vae.encode(video, tiled=tiled, on_tile=on_tile)
    mean, std = dist.mean.float().cpu(), dist.std.float().cpu()
    return mean + std * noise(mean.shape)


def encode_bg_latents(vae, bg_video: torch.Tensor, mask_video: torch.Tensor, noise: NoiseSource, *,
                      tiled: bool = True, on_tile: TileCallback | None = None) -> torch.Tensor:
    """bg_latents [1, 2*C, t, H/8, W/8] = cat([sample(bg), sample(mask)], 1) * scaling_factor.

    `bg_video` / `mask_video`: [1, 3, F, H, W] in [-1, 1] (EditPixels.bg_for_vae / mask_for_vae).
    Upstream encodes both with tiling on (`tiled`), bg first."""
    bg = sample_posterior(vae, bg_video, noise, tiled=tiled, on_tile=on_tile)
    mask = sample_posterior(vae, mask_video, noise, tiled=tiled, on_tile=on_tile)
    return torch.cat([bg, mask], dim=1) * vae.scaling_factor
