"""VAE parity with upstream's AutoencoderKLCausal3D (fixtures: reference_dir/vae).

Both mid-block attention variants: io.safetensors was made with the config's
mid_block_causal_attn, io_causal_attn.safetensors (prefix `causal_attn.`) with it set to True.
Every size and tile size is read from the fixture files.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from hunyuan_custom.pipelines.vae import model as vae_module

ATOL = 1e-4

# fixture tensor name -> (input tensor, call)
CALLS = {
    "encode.mean": ("input.video", "encode", False),
    "encode.logvar": ("input.video", "encode", False),
    "encode.moments": ("input.video", "moments", False),
    "decode.sample": ("input.latent", "decode", False),
    "tiled.encode.mean": ("input.video", "encode", True),
    "tiled.encode.logvar": ("input.video", "encode", True),
    "tiled.encode_long.mean": ("input.video_long", "encode", True),
    "tiled.encode_long.logvar": ("input.video_long", "encode", True),
    "tiled.decode.sample": ("input.latent", "decode", True),
    "tiled.decode_long.sample": ("input.latent_long", "decode", True),
}


class _Variant:
    """One VAE build and its outputs, each computed once per test session."""

    def __init__(self, folder, causal: bool | None) -> None:
        raw = json.loads((folder / "config.json").read_text())
        self.raw = raw
        config = vae_module.config_from_dict(raw, source=str(folder / "config.json"))
        if causal is not None:
            config = replace(config, mid_block_causal_attn=causal)
        self.config = config
        self.vae = vae_module.HunyuanVideoVAE.from_config(config)
        missing, unexpected = self.vae.model.load_state_dict(load_file(str(folder / "weights.safetensors")), strict=True)
        assert not missing and not unexpected
        self.inputs = load_file(str(folder / "io.safetensors"))
        if causal:
            self.prefix, self.expected = "causal_attn.", load_file(str(folder / "io_causal_attn.safetensors"))
        else:
            self.prefix, self.expected = "", self.inputs
        self._cache: dict = {}

    def output(self, name: str) -> torch.Tensor:
        source, call, tiled = CALLS[name]
        key = (source, call, tiled)
        if key not in self._cache:
            x = self.inputs[source]
            if call == "decode":
                self._cache[key] = self.vae.decode(x, tiled=tiled)
            elif call == "moments":
                self._cache[key] = self.vae.encode_moments(x, tiled=tiled)
            else:
                self._cache[key] = self.vae.encode(x, tiled=tiled)
        result = self._cache[key]
        if call == "encode":
            return getattr(result, name.rsplit(".", 1)[1])
        return result


@pytest.fixture(scope="module")
def variants(reference_dir):
    folder = reference_dir / "vae"
    built: dict = {}

    def get(kind: str) -> _Variant:
        if kind not in built:
            built[kind] = _Variant(folder, None if kind == "config" else True)
        return built[kind]

    return get


def test_parity_vae_config_and_tile_sizes_come_from_the_fixture(reference_dir):
    raw = json.loads((reference_dir / "vae" / "config.json").read_text())
    kwargs = raw["constructor_kwargs"]
    config = vae_module.config_from_dict(raw)
    assert config.mid_block_causal_attn is bool(kwargs["mid_block_causal_attn"])
    assert config.scaling_factor == pytest.approx(raw["scaling_factor"])
    assert list(config.block_out_channels) == kwargs["block_out_channels"]
    tiling = raw["tiling"]
    enc = config.encode_tiles()
    assert (enc.size_in, enc.size_out, enc.frames_in, enc.frames_out) == (
        tiling["tile_sample_min_size"], tiling["tile_latent_min_size"],
        tiling["tile_sample_min_tsize"], tiling["tile_latent_min_tsize"])
    assert enc.overlap == tiling["tile_overlap_factor"]


@pytest.mark.parametrize("name", list(CALLS))
@pytest.mark.parametrize("kind", ["config", "causal"])
def test_parity_vae(variants, kind, name):
    variant = variants(kind)
    expected = variant.expected[variant.prefix + name]
    got = variant.output(name)
    assert tuple(got.shape) == tuple(expected.shape), name
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0, msg=f"{variant.prefix}{name}")


def test_parity_vae_variants_really_differ(variants):
    """Guards against both variants silently running the same attention."""
    plain, causal = variants("config"), variants("causal")
    if plain.config.mid_block_causal_attn:
        pytest.skip("this fixture set's config already selects causal attention")
    assert (plain.output("decode.sample") - causal.output("decode.sample")).abs().max() > 1e-3


def test_parity_vae_sample_draws_like_upstream(variants):
    """Upstream: mean + std * randn(mean.shape, generator, dtype of the moments)."""
    variant = variants("config")
    posterior = variant.vae.encode(variant.inputs["input.video"])
    drawn = posterior.sample(generator=torch.Generator().manual_seed(7))
    noise = torch.randn(posterior.mean.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float32)
    assert torch.equal(drawn, posterior.mean + torch.exp(0.5 * posterior.logvar) * noise)
