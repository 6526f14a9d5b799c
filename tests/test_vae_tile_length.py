"""Shorter temporal VAE decode tiles (64 / 32 / 16 frames) and the policy that picks one for the free VRAM.

The default must stay upstream's tiling bit for bit; shorter tiles change the result slightly, so
they are used only when upstream's would not fit (offload 'auto'/'group' on CUDA).
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from hunyuan_custom.benchmarks import vram_estimate
from hunyuan_custom.pipelines import offload_policy as policy
from hunyuan_custom.pipelines.vae import model as vae_module
from hunyuan_custom.pipelines.vae.tiling import TileSizes, run_tiled

GIB = 1024**3
TILES = (64, 32, 16)


# -- geometry ---------------------------------------------------------------------------------


def _fake_decoder(latent: torch.Tensor) -> torch.Tensor:
    """A 'decoder' whose every output pixel depends on one latent pixel only (the 884 layout: the first
    latent frame -> 1 frame, every later one -> 4 frames, 8x8 pixels). Any correct tiling of it must give
    back the untiled output: overlaps hold equal values, so every blend is a*(1-w) + a*w (= a up to
    float rounding, hence atol 1e-6) and any misplaced tile or frame shows up as a large difference."""
    frames = torch.cat([latent[:, :, :1], latent[:, :, 1:].repeat_interleave(4, dim=2)], dim=2)
    return frames.repeat_interleave(8, dim=3).repeat_interleave(8, dim=4)


@pytest.mark.parametrize("tile_frames", [16, 32, 48, 64])
@pytest.mark.parametrize("latent_frames", [1, 2, 5, 6, 9, 17, 18, 33, 65])
def test_every_allowed_tile_length_reassembles_the_video_exactly(tile_frames, latent_frames):
    tiles = vae_module.FULL_SIZE_CONFIG.decode_tiles(tile_frames)
    assert (tiles.frames_in, tiles.frames_out) == (tile_frames // 4, tile_frames)
    latent = torch.randn(1, 2, latent_frames, 3, 5, generator=torch.Generator().manual_seed(latent_frames))
    out = run_tiled(latent, _fake_decoder, tiles)
    assert out.shape[2] == 4 * (latent_frames - 1) + 1
    torch.testing.assert_close(out, _fake_decoder(latent), atol=1e-6, rtol=0)


def test_shorter_tiles_combine_with_spatial_tiling_exactly():
    latent = torch.randn(1, 1, 18, 36, 8, generator=torch.Generator().manual_seed(3))  # taller than the 32-latent tile
    for tile_frames in TILES:
        out = run_tiled(latent, _fake_decoder, vae_module.FULL_SIZE_CONFIG.decode_tiles(tile_frames))
        torch.testing.assert_close(out, _fake_decoder(latent), atol=1e-6, rtol=0)


@pytest.mark.parametrize("tile_frames", [8, 24, 40])
def test_lengths_that_are_not_multiples_of_16_would_misplace_frames(tile_frames):
    """Why check_tile_frames refuses them: tiles would start every int(N/4 * 3/4) latent frames but
    keep 3N/4 video frames, so the video comes out with the wrong length and shifted seams."""
    tiles = TileSizes(32, 256, tile_frames // 4, tile_frames)
    latent = torch.randn(1, 1, 17, 3, 5)
    out = run_tiled(latent, _fake_decoder, tiles)
    assert out.shape[2] != 4 * 16 + 1


@pytest.mark.parametrize("bad", [0, -16, 8, 24, 40, 65, 16.0, True, "32", None])
def test_invalid_tile_lengths_are_refused_with_the_rule(bad):
    if bad is None:
        assert vae_module.check_tile_frames(32) == 32
        return
    with pytest.raises(ValueError, match=r"multiple of 16 \(16, 32, 64, \.\.\.; upstream uses 64\)") as info:
        vae_module.check_tile_frames(bad)
    assert repr(bad) in str(info.value)


# -- the real (tiny) VAE ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fixture_vae(reference_dir):
    folder = reference_dir / "vae"
    config = vae_module.config_from_dict(json.loads((folder / "config.json").read_text()),
                                         source=str(folder / "config.json"))
    vae = vae_module.HunyuanVideoVAE.from_config(config)
    vae.model.load_state_dict(load_file(str(folder / "weights.safetensors")), strict=True)
    return vae, load_file(str(folder / "io.safetensors"))  # inputs and upstream's outputs


def test_default_tile_is_upstreams_bit_for_bit(fixture_vae):
    vae, io = fixture_vae
    assert vae.config.decode_tiles() == vae.config.decode_tiles(vae.config.sample_tsize)
    default = vae.decode(io["input.latent_long"], tiled=True)
    torch.testing.assert_close(default, io["tiled.decode_long.sample"], atol=1e-4, rtol=0)
    if vae.config.sample_tsize % 16 == 0:  # an upstream config may hold a length we would refuse to ask for
        # Asking for upstream's length is the default, bit for bit: on the smallest latent that upstream's
        # tiles cut in time (one frame more than a tile), within one spatial tile.
        tiles = vae.config.decode_tiles()
        latent = io["input.latent_long"][:, :, : tiles.frames_in + 1, : tiles.size_in, : tiles.size_in]
        assert torch.equal(vae.decode(latent, tiled=True, tile_frames=vae.config.sample_tsize),
                           vae.decode(latent, tiled=True))


def test_tile_frames_needs_tiled_decode_and_is_checked_before_any_work(fixture_vae):
    vae, io = fixture_vae
    with pytest.raises(ValueError, match="only applies to a tiled decode"):
        vae.decode(io["input.latent"], tiled=False, tile_frames=32)
    calls = []
    with pytest.raises(ValueError, match="multiple of 16"):
        vae.decode(io["input.latent"], tiled=True, tile_frames=24, on_tile=lambda d, n: calls.append(d))
    assert calls == []


def _decode_all(vae, latent):
    outs, totals = {}, {}
    for tile_frames in TILES:
        seen = []
        outs[tile_frames] = vae.decode(latent, tiled=True, tile_frames=tile_frames, on_tile=lambda d, n: seen.append(n))
        totals[tile_frames] = seen[-1]
        assert len(seen) == seen[-1] == vae.config.decode_tiles(tile_frames).count(latent.shape)
    return outs, totals


def _test_latents(vae, io):
    """[1, C, frames, h, w] latents: one constant in time, one that changes slowly (10 % of a random
    latent's difference over the whole video). As small as still proves the point: one frame more
    than the longest tile (so every tile length cuts the video into tiles) and one spatial tile."""
    channels = io["input.latent"].shape[1]
    frames = max(TILES) // 4 + 1
    h = w = min(vae.config.decode_tiles().size_in, io["input.latent"].shape[-2])
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 1, channels, 1, h, w, generator=g)
    ramp = torch.linspace(0, 1, frames).view(1, 1, frames, 1, 1)
    return a.expand(1, channels, frames, h, w).contiguous(), a + 0.1 * (b - a) * ramp


def test_shorter_tiles_give_the_same_video_shape_more_tiles_and_close_values(fixture_vae):
    """Observed on the tiny random-weight fixture VAE (17 latent frames = 65 video frames, 32x32):
    static latent: max |32 or 16 - 64| < 1e-5 (float rounding only); slowly changing latent: mean
    |difference| 3.9 % (32) / 5.0 % (16) of mean |video|, max 6.1 % / 7.9 % of max |video|. The bounds
    below (8 %, 15 %) leave room for other fixture weights.

    Not exact because a tile's numbers depend on which frames are in it: the decoder's GroupNorms take
    their statistics over all of a tile's frames, the mid-block attention looks at all of its frames,
    and each tile restarts the causal padding. So the difference grows with how much the video changes
    in time, and is float rounding for a static one. (A trained VAE on real video varies far less from
    tile to tile than this random one.)"""
    vae, io = fixture_vae
    static, changing = _test_latents(vae, io)
    _, _, frames, h, w = static.shape
    factor = vae.config.spatial_compression_ratio

    outs, totals = _decode_all(vae, static)
    for tile_frames in TILES:
        assert outs[tile_frames].shape == (1, 3, 4 * (frames - 1) + 1, h * factor, w * factor)
    assert totals[64] < totals[32] < totals[16]
    for tile_frames in (32, 16):
        torch.testing.assert_close(outs[tile_frames], outs[64], atol=1e-4, rtol=0)

    outs, _ = _decode_all(vae, changing)
    reference = outs[64]
    for tile_frames in (32, 16):
        difference = (outs[tile_frames] - reference).abs()
        assert outs[tile_frames].shape == reference.shape
        assert difference.mean() < 0.08 * reference.abs().mean(), tile_frames
        assert difference.max() < 0.15 * reference.abs().max(), tile_frames
        assert difference.max() > 1e-4  # really another tiling, not silently upstream's


# -- the policy ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_vae_bf16_bytes() -> int:
    return policy.module_bytes(vram_estimate.shape_only_vae(torch.bfloat16).model)


@pytest.mark.parametrize("free_gib, width, height, tile", [
    (24, 1280, 720, 64), (16, 1280, 720, 64), (16, 960, 544, 64),  # upstream's whenever it fits
    (12, 1280, 720, 32), (12, 960, 544, 32), (10, 1280, 720, 32),  # 12 GB cards, or 16 GB ones shared
    (8, 1280, 720, 16), (8, 960, 544, 32), (6, 960, 544, 16),
])
def test_policy_picks_the_longest_tile_that_fits(full_vae_bf16_bytes, free_gib, width, height, tile):
    choice = policy.choose_vae_tile_frames(width, height, 129, 2, free_gib * GIB, weight_bytes=full_vae_bf16_bytes)
    assert choice.tile_frames == tile and choice.fits
    assert choice.need_bytes <= free_gib * GIB
    if tile == 64:
        assert choice.is_upstream and "upstream's 64-frame tiles" in choice.describe()
    else:
        assert choice.describe() == f"VAE decode in {tile}-frame tiles to fit {free_gib:.1f} GiB free"
        longer = policy.choose_vae_tile_frames(width, height, 129, 2, 10**15, weight_bytes=full_vae_bf16_bytes)
        assert longer.tile_frames == 64  # the same job with room: upstream's


def test_policy_when_nothing_fits_takes_the_shortest_and_says_so(full_vae_bf16_bytes):
    choice = policy.choose_vae_tile_frames(1280, 720, 129, 2, 3 * GIB, weight_bytes=full_vae_bf16_bytes)
    assert choice.tile_frames == 16 and not choice.fits
    assert "may run out of memory" in choice.describe() and "3.0 GiB" in choice.describe()


def test_policy_follows_the_vaes_own_tile_and_short_videos():
    # a short video is one tile whatever the tile length: the need stops falling below its length
    short = [policy.vae_decode_need(1280, 720, 33, f, 2) for f in TILES]
    assert short[0] == short[1] > short[2]
    # upstream_frames comes from the VAE config; only shorter standard lengths are tried after it
    need_32 = policy.vae_decode_need(1280, 720, 129, 32, 2) + policy.MARGIN_BYTES
    assert policy.choose_vae_tile_frames(1280, 720, 129, 2, need_32, upstream_frames=32).is_upstream
    assert policy.choose_vae_tile_frames(1280, 720, 129, 2, need_32 - 1, upstream_frames=32).tile_frames == 16
    # float32 needs twice the bf16 activations
    assert policy.vae_decode_need(960, 544, 129, 64, 4) > 1.9 * policy.vae_decode_need(960, 544, 129, 64, 2)


@pytest.fixture(scope="module")
def estimates():
    """Shape-only estimates (bf16, full-size VAE) of a job small enough to run in seconds but with
    full 256 px tiles and several temporal tiles at every length: 384x384 x 69 frames."""
    return {f: vram_estimate.estimate_vae_decode(384, 384, 69, vram_estimate.shape_only_vae(torch.bfloat16),
                                                 tile_frames=f) for f in TILES}


def test_the_estimated_peak_falls_with_the_tile_length(estimates):
    peaks = [estimates[f].peak_total for f in TILES]
    assert peaks[0] > peaks[1] > peaks[2]
    # the tile's activations dominate: halving the tile takes off close to half of them
    weights = estimates[64].peak_weights
    assert (peaks[1] - weights) < 0.62 * (peaks[0] - weights)
    assert all("256px x %d frames" % (f + 1) in estimates[f].notes[0] for f in TILES)


def test_the_policy_is_never_below_the_shape_only_estimate(estimates, full_vae_bf16_bytes):
    """The per-tile-frame constant is read off benchmarks/vram_estimate.py; if the decoder's activations
    grow, re-calibrate it, or 'auto' would keep tiles that do not fit."""
    for tile_frames, estimate in estimates.items():
        need = policy.vae_decode_need(384, 384, 69, tile_frames, 2, weight_bytes=full_vae_bf16_bytes)
        assert estimate.peak_total <= need <= estimate.peak_total + 1 * GIB, tile_frames


def test_estimate_script_takes_the_tile_length_and_refuses_bad_ones(capsys):
    stages = vram_estimate.main(["--tiny", "--stages", "vae", "--vae-tile-frames", "16"])
    out = capsys.readouterr().out
    assert "VAE tiles of 16 frames" in out and "x 17 frames" in stages[0].notes[0]
    with pytest.raises(SystemExit):
        vram_estimate.main(["--tiny", "--stages", "vae", "--vae-tile-frames", "24"])
    assert "--vae-tile-frames: VAE decode tile of 24 frames is not allowed" in capsys.readouterr().err


# -- generate.py --------------------------------------------------------------------------------


@pytest.fixture
def generator_on_fake_cuda(monkeypatch):
    """A LocalGenerator that believes its device is CUDA (nothing is run on it here)."""
    from hunyuan_custom.pipelines.generate import LocalGenerator, ModelFiles, RuntimeOptions

    monkeypatch.setattr(ModelFiles, "check", lambda self: None)
    monkeypatch.setattr(LocalGenerator, "device", property(lambda self: torch.device("cuda")))

    def make(offload: str) -> LocalGenerator:
        return LocalGenerator(ModelFiles("t", "v", "l", "c"), RuntimeOptions(device="cpu", offload=offload))

    return make


@pytest.mark.parametrize("offload", ["auto", "group"])
def test_generate_decodes_in_shorter_tiles_when_vram_is_short_and_says_so(generator_on_fake_cuda, monkeypatch,
                                                                          offload):
    vae = vram_estimate.shape_only_vae(torch.bfloat16)
    said: list[str] = []
    monkeypatch.setattr(policy, "available_vram", lambda device: 10 * GIB)
    assert generator_on_fake_cuda(offload)._vae_tile_frames(vae, 1280, 720, 129, said.append) == 32
    assert said == ["VAE decode in 32-frame tiles to fit 10.0 GiB free"]
    monkeypatch.setattr(policy, "available_vram", lambda device: 24 * GIB)
    said.clear()
    assert generator_on_fake_cuda(offload)._vae_tile_frames(vae, 1280, 720, 129, said.append) is None  # upstream's
    assert said == []


@pytest.mark.parametrize("offload", ["model", "none"])
def test_generate_keeps_upstreams_tiles_for_model_and_none(generator_on_fake_cuda, monkeypatch, offload):
    def not_asked(device):
        raise AssertionError("the free VRAM must not decide the tiling for offload " + offload)

    monkeypatch.setattr(policy, "available_vram", not_asked)
    said: list[str] = []
    vae = vram_estimate.shape_only_vae(torch.bfloat16)
    assert generator_on_fake_cuda(offload)._vae_tile_frames(vae, 1280, 720, 129, said.append) is None
    assert said == []


def test_generate_passes_the_chosen_tile_to_the_decode(monkeypatch, tmp_path):
    """End to end on CPU with the tiny model set: what _vae_tile_frames returns reaches vae.decode."""
    from _tiny_model_set import build_tiny_model_set
    from hunyuan_custom.pipelines.conditioning.prompt_spec import PromptSpec
    from hunyuan_custom.pipelines.generate import LocalGenerator, ModelFiles, RuntimeOptions
    from hunyuan_custom.pipelines.job import Job

    decoded = []
    original = vae_module.HunyuanVideoVAE.decode_parts  # generate decodes part by part (long videos)

    def spy(self, latent, tiled=False, on_tile=None, tile_frames=None):
        decoded.append((tiled, tile_frames))
        return original(self, latent, tiled=tiled, on_tile=on_tile, tile_frames=tile_frames)

    monkeypatch.setattr(vae_module.HunyuanVideoVAE, "decode_parts", spy)
    monkeypatch.setattr(LocalGenerator, "_vae_tile_frames",
                        lambda self, vae, w, h, f, status: (status(f"chose 16 for {w}x{h}x{f}"), 16)[1])
    models = build_tiny_model_set(tmp_path)
    gen = LocalGenerator(ModelFiles(str(models.transformer), str(models.vae), str(models.text_encoder),
                                    str(models.text_encoder_2)), RuntimeOptions(device="cpu", dtype="float32"))
    said: list[str] = []
    job = Job.from_params(PromptSpec.create("a cat", "", "cat", torch.rand(1, 40, 30, 3)),
                          {"size": "32*32", "num_frames": 5, "steps": 1, "seed": 1})
    result = gen.generate(job, status=said.append)
    assert decoded == [(True, 16)]
    assert "chose 16 for 32x32x5" in said
    assert result.frames.shape == (5, 32, 32, 3)
