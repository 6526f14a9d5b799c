"""Upstream HunyuanCustom's tiled VAE encode/decode scheme, on any per-tile function.

Why our own code: diffusers' AutoencoderKLHunyuanVideo tiles differently (tile sizes, strides,
which frames are kept), so its tiled outputs do not match upstream's. This module reproduces
upstream's `spatial_tiled_*` / `temporal_tiled_*` exactly:

* spatial: tiles of `tile_in` (input units) start every int(tile_in*(1-overlap)); each output tile
  is blended linearly into the tile above and to the left over int(tile_out*overlap) rows/columns,
  then its first tile_out - blend rows/columns are kept.
* temporal: tiles of tile_in_t + 1 frames (the extra frame is the causal context) start every
  int(tile_in_t*(1-overlap)); every tile but the first drops its first output frame, is blended with
  the previous tile over int(tile_out_t*overlap) frames and keeps tile_out_t - blend frames (the
  first keeps one more). A temporal tile wider/taller than the spatial tile is tiled spatially.

The blends write into the tiles IN PLACE in upstream's order (top, then left, row by row), and
later blends read the already blended tiles; that order is part of the numbers, so it is kept.
Only sizes that are multiples of 32 px / 16 frames reassemble to exactly the right size (the
real 256/64 do), as upstream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch

TileFunction = Callable[[torch.Tensor], torch.Tensor]
# Called after every finished tile with (tiles done, tiles in total); may raise to cancel.
TileCallback = Callable[[int, int], None]

OVERLAP = 0.25


@dataclass(frozen=True)
class TileSizes:
    """Tile sizes in one direction (encode: in = pixels/frames, out = latents; decode: reverse)."""

    size_in: int
    size_out: int
    frames_in: int
    frames_out: int
    overlap: float = OVERLAP

    @property
    def stride(self) -> int:
        return int(self.size_in * (1 - self.overlap))

    @property
    def blend(self) -> int:
        return int(self.size_out * self.overlap)

    @property
    def stride_t(self) -> int:
        return int(self.frames_in * (1 - self.overlap))

    @property
    def blend_t(self) -> int:
        return int(self.frames_out * self.overlap)

    def needs_spatial(self, x: torch.Tensor) -> bool:
        return x.shape[-1] > self.size_in or x.shape[-2] > self.size_in

    def needs_temporal(self, x: torch.Tensor) -> bool:
        return x.shape[2] > self.frames_in

    def count(self, shape: torch.Size | tuple[int, ...]) -> int:
        """How many times the tile function will run for an input of this shape."""
        frames, height, width = shape[2], shape[3], shape[4]
        spatial = 1
        if width > self.size_in or height > self.size_in:
            spatial = len(range(0, height, self.stride)) * len(range(0, width, self.stride))
        if frames > self.frames_in:
            return len(range(0, frames, self.stride_t)) * spatial
        return spatial


class _Counter:
    def __init__(self, total: int, callback: TileCallback | None) -> None:
        self.done, self.total, self.callback = 0, total, callback

    def tick(self) -> None:
        self.done += 1
        if self.callback is not None:
            self.callback(self.done, self.total)


def _blend(a: torch.Tensor, b: torch.Tensor, extent: int, dim: int) -> torch.Tensor:
    """Linear ramp from the end of `a` into the start of `b` along `dim`, written into `b`."""
    extent = min(a.shape[dim], b.shape[dim], extent)
    if extent == 0:
        return b
    shape = [1] * b.ndim
    shape[dim] = extent
    weight = (torch.arange(extent, device=b.device, dtype=b.dtype) / extent).view(shape)
    tail = a.narrow(dim, a.shape[dim] - extent, extent)
    head = b.narrow(dim, 0, extent)
    head.copy_(tail * (1 - weight) + head * weight)
    return b


def _spatial(x: torch.Tensor, fn: TileFunction, sizes: TileSizes, counter: _Counter) -> torch.Tensor:
    stride, blend, keep = sizes.stride, sizes.blend, sizes.size_out - sizes.blend
    rows = []
    for top in range(0, x.shape[-2], stride):
        row = []
        for left in range(0, x.shape[-1], stride):
            row.append(fn(x[..., top : top + sizes.size_in, left : left + sizes.size_in]))
            counter.tick()
        rows.append(row)
    out_rows = []
    for i, row in enumerate(rows):
        kept = []
        for j, tile in enumerate(row):
            if i > 0:
                tile = _blend(rows[i - 1][j], tile, blend, dim=-2)
            if j > 0:
                tile = _blend(row[j - 1], tile, blend, dim=-1)
            kept.append(tile[..., :keep, :keep])
        out_rows.append(torch.cat(kept, dim=-1))
    return torch.cat(out_rows, dim=-2)


def _temporal(x: torch.Tensor, fn: TileFunction, sizes: TileSizes, counter: _Counter) -> torch.Tensor:
    return torch.cat(list(_temporal_chunks(x, fn, sizes, counter)), dim=2)


def _temporal_chunks(x: torch.Tensor, fn: TileFunction, sizes: TileSizes, counter: _Counter) -> Iterator[torch.Tensor]:
    """The temporal reassembly, one finished part at a time: a tile's kept frames are final once it has
    been blended with the previous tile (a blend writes only into the later tile's head), so only the
    previous tile is held."""
    blend, keep = sizes.blend_t, sizes.frames_out - sizes.blend_t
    previous = None
    for start in range(0, x.shape[2], sizes.stride_t):
        chunk = x[:, :, start : start + sizes.frames_in + 1]
        if sizes.needs_spatial(chunk):
            out = _spatial(chunk, fn, sizes, counter)
        else:
            out = fn(chunk)
            counter.tick()
        if previous is None:
            yield out[:, :, : keep + 1]
        else:
            out = out[:, :, 1:]  # this frame is the previous tile's last one (causal context)
            yield _blend(previous, out, blend, dim=2)[:, :, :keep]
        previous = out


def iter_tiled(x: torch.Tensor, fn: TileFunction, sizes: TileSizes,
               on_tile: TileCallback | None = None) -> Iterator[torch.Tensor]:
    """`run_tiled`'s result in parts along time (concatenated on dim 2 they are run_tiled's output,
    bit for bit): a temporal tiling yields each tile's finished frames as soon as they are final, so a
    long video never has to be whole on the device."""
    counter = _Counter(sizes.count(x.shape), on_tile)
    if sizes.needs_temporal(x):
        yield from _temporal_chunks(x, fn, sizes, counter)
        return
    out = _spatial(x, fn, sizes, counter) if sizes.needs_spatial(x) else fn(x)
    if not sizes.needs_spatial(x):
        counter.tick()
    yield out


def run_tiled(x: torch.Tensor, fn: TileFunction, sizes: TileSizes, on_tile: TileCallback | None = None) -> torch.Tensor:
    """Apply `fn` to `x` [B,C,T,H,W] with upstream's tiling decision and reassembly.

    Temporal tiling when T exceeds the temporal tile, else spatial tiling when H or W exceeds the
    spatial tile, else one call.
    """
    counter = _Counter(sizes.count(x.shape), on_tile)
    if sizes.needs_temporal(x):
        return _temporal(x, fn, sizes, counter)
    if sizes.needs_spatial(x):
        return _spatial(x, fn, sizes, counter)
    out = fn(x)
    counter.tick()
    return out
