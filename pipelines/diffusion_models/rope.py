"""RoPE tables for HunyuanCustom: video tokens plus one reference-image latent frame.

Upstream places the reference tokens first and gives them their own positions ("timecat-w"):
time index -1, rows 0..th-1, columns shifted right by one latent width (tw..2tw-1), so they
never collide with a video position. Text tokens get no RoPE. The per-axis maths is diffusers'
`get_1d_rotary_pos_embed` (interleaved real cos/sin), the same as HunyuanVideo's.
"""

from __future__ import annotations

import torch

REFERENCE_TIME_INDEX = -1.0


def _position_grid(
    t_positions: torch.Tensor, th: int, tw: int, w_offset: int, device: torch.device | None
) -> torch.Tensor:
    """[3, N] (t, h, w) positions, raster order t then h then w."""
    h_positions = torch.arange(th, dtype=torch.float32, device=device)
    w_positions = torch.arange(tw, dtype=torch.float32, device=device) + w_offset
    grid = torch.meshgrid(t_positions.to(device=device, dtype=torch.float32), h_positions, w_positions, indexing="ij")
    return torch.stack([axis.reshape(-1) for axis in grid], dim=0)


def reference_rope_positions(
    tt: int, th: int, tw: int, with_reference: bool = True, device: torch.device | None = None
) -> torch.Tensor:
    """[3, (tt+1)*th*tw] positions: reference rows (t=-1, w shifted by tw) first, then the video."""
    video = _position_grid(torch.arange(tt, dtype=torch.float32), th, tw, 0, device)
    if not with_reference:
        return video
    reference = _position_grid(torch.tensor([REFERENCE_TIME_INDEX]), th, tw, tw, device)
    return torch.cat([reference, video], dim=1)


def reference_rope_tables(
    rope_axes_dim: tuple[int, ...] | list[int],
    tt: int,
    th: int,
    tw: int,
    theta: float = 256.0,
    with_reference: bool = True,
    device: torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin) tables, each [(tt+1)*th*tw, sum(rope_axes_dim)] float32, reference rows first.

    `tt, th, tw` are the token-grid sizes of the VIDEO (latent size divided by the patch size).
    """
    from diffusers.models.embeddings import get_1d_rotary_pos_embed

    if len(rope_axes_dim) != 3:
        raise ValueError(f"rope_axes_dim must have 3 entries (time, height, width), got {list(rope_axes_dim)}")
    positions = reference_rope_positions(tt, th, tw, with_reference=with_reference, device=device)
    cos_parts, sin_parts = [], []
    for axis, axis_dim in enumerate(rope_axes_dim):
        cos, sin = get_1d_rotary_pos_embed(int(axis_dim), positions[axis], theta, use_real=True)
        cos_parts.append(cos)
        sin_parts.append(sin)
    return torch.cat(cos_parts, dim=1), torch.cat(sin_parts, dim=1)
