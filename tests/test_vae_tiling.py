"""Geometry, progress and cancellation of the upstream tiling scheme (pipelines/vae/tiling.py)."""

from __future__ import annotations

import pytest
import torch

from hunyuan_custom.pipelines.vae.tiling import TileSizes, run_tiled


class Cancelled(Exception):
    pass


def test_identity_tiles_reassemble_the_input_exactly():
    # With a 1:1 "codec" every overlap holds the same values, so blending must give back the input:
    # this checks tile starts, kept regions and the extra causal frame for spatial+temporal tiling.
    sizes = TileSizes(size_in=32, size_out=32, frames_in=16, frames_out=16)
    x = torch.randn(1, 2, 41, 70, 100)
    calls = []
    out = run_tiled(x, lambda t: t.clone(), sizes, on_tile=lambda done, total: calls.append((done, total)))
    assert out.shape == x.shape
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)
    total = sizes.count(x.shape)
    assert calls == [(i, total) for i in range(1, total + 1)]
    assert total == len(range(0, 41, 12)) * len(range(0, 70, 24)) * len(range(0, 100, 24))


def test_small_input_is_one_call_and_spatial_only_when_short():
    sizes = TileSizes(size_in=32, size_out=32, frames_in=16, frames_out=16)
    calls = []
    run_tiled(torch.zeros(1, 1, 9, 32, 32), lambda t: t, sizes, on_tile=lambda d, n: calls.append((d, n)))
    assert calls == [(1, 1)]
    assert sizes.count((1, 1, 9, 40, 32)) == 2 * 2  # H > tile: rows 0, 24; columns 0, 24


def test_callback_can_cancel_between_tiles():
    sizes = TileSizes(size_in=32, size_out=32, frames_in=16, frames_out=16)
    seen = []

    def tile(t):
        seen.append(t.shape)
        return t

    def cancel_after_two(done, total):
        if done == 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        run_tiled(torch.zeros(1, 1, 5, 64, 64), tile, sizes, on_tile=cancel_after_two)
    assert len(seen) == 2


def test_blend_is_linear_over_the_overlap():
    # Two horizontal tiles from a constant-per-tile codec: the seam is a linear ramp 0 -> 1.
    sizes = TileSizes(size_in=32, size_out=32, frames_in=16, frames_out=16)
    x = torch.zeros(1, 1, 1, 8, 48)  # tiles start at columns 0 and 24
    starts = iter([0.0, 1.0])
    out = run_tiled(x, lambda t: torch.full_like(t, next(starts)), sizes)
    assert out.shape == x.shape
    ramp = out[0, 0, 0, 0, 24:32]
    torch.testing.assert_close(ramp, torch.arange(8) / 8.0)
    assert torch.all(out[..., :24] == 0) and torch.all(out[..., 32:] == 1)
