"""A config.json beside a model cannot make the loaders build monsters, and headers or configs
nested too deeply get the loaders' own words instead of a RecursionError."""

from __future__ import annotations

import json
import shutil
import struct
import time
from pathlib import Path

import pytest

from hunyuan_custom.pipelines import weights_io
from hunyuan_custom.pipelines.audio_encoders.whisper import WhisperFilesError, inspect_whisper, load_whisper
from hunyuan_custom.pipelines.diffusion_models.checkpoints import CheckpointError
from hunyuan_custom.pipelines.diffusion_models.loading import check_transformer
from hunyuan_custom.pipelines.text_encoders.files import TextEncoderFilesError, read_header
from hunyuan_custom.pipelines.vae.model import VAEConfigError, read_config

REFERENCE = Path(__file__).resolve().parent / "fixtures" / "reference"
DEEP = '{"a":' * 100_000 + "1" + "}" * 100_000


def _edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.fixture
def transformer(tmp_path) -> Path:
    folder = tmp_path / "dit"
    folder.mkdir()
    for name in ("weights.safetensors", "config.json"):
        shutil.copy(REFERENCE / "transformer_ref2v" / name, folder / name)
    return folder / "weights.safetensors"


def test_a_transformer_config_with_thousands_of_blocks_is_refused_before_building(transformer):
    check_transformer(transformer)  # the fixture itself is fine
    _edit_json(transformer.parent / "config.json",
               lambda c: c["constructor_kwargs"].update(depth_double_blocks=2000))
    start = time.monotonic()
    with pytest.raises(CheckpointError, match="num_layers = 2000 is beyond any model"):
        check_transformer(transformer)
    assert time.monotonic() - start < 2  # building 2000 empty blocks took 19 s


@pytest.mark.parametrize("text", [DEEP, "{" + '"a":' * 1 + "1", "x" * 10])
def test_a_broken_transformer_config_is_named(transformer, text):
    (transformer.parent / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match="config.json: not valid JSON"):
        check_transformer(transformer)


def test_a_huge_config_file_is_not_even_parsed(tmp_path):
    big = tmp_path / "config.json"
    big.write_text(" " * (weights_io.CONFIG_MAX_BYTES + 1) + "{}")
    with pytest.raises(weights_io.WeightsFileError, match="far larger than any model's config"):
        weights_io.read_json_file(big)


@pytest.fixture
def whisper(tmp_path) -> Path:
    folder = tmp_path / "whisper"
    shutil.copytree(REFERENCE / "audio_frontend" / "whisper_tiny_random", folder)
    return folder


@pytest.mark.parametrize("change, words", [
    (dict(d_model=100_000, encoder_attention_heads=1), "d_model = 100000 is beyond"),
    (dict(encoder_layers=5000), "encoder_layers = 5000 is beyond"),
])
def test_a_whisper_config_beyond_any_whisper_is_refused(whisper, change, words):
    _edit_json(whisper / "config.json", lambda c: c.update(change))
    with pytest.raises(WhisperFilesError, match=words):
        load_whisper(inspect_whisper(whisper))


def test_a_whisper_config_that_does_not_match_the_weights_is_refused_from_the_headers(whisper, monkeypatch):
    """Within the bounds but far larger than the weights: refused before a tensor is read, and the
    encoder is only ever built on the meta device."""
    from hunyuan_custom.pipelines.audio_encoders import whisper as module

    _edit_json(whisper / "config.json", lambda c: c.update(d_model=4096, encoder_ffn_dim=16384, encoder_layers=32,
                                                          encoder_attention_heads=64))
    monkeypatch.setattr(module, "_encoder_tensors", lambda source: pytest.fail("tensors were read"))
    with pytest.raises(WhisperFilesError, match="does not hold a complete Whisper encoder"):
        load_whisper(inspect_whisper(whisper))


def test_the_fixture_whisper_still_loads_with_real_weights(whisper):
    encoder = load_whisper(inspect_whisper(whisper)).encoder
    assert not any(p.is_meta for p in encoder.parameters())


def test_a_vae_config_beyond_any_vae_is_refused(tmp_path):
    config = json.loads((REFERENCE / "vae" / "config.json").read_text())["constructor_kwargs"]
    config["block_out_channels"] = [8, 16, 32, 100_000]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(VAEConfigError, match="block_out_channels = .* is beyond"):
        read_config(tmp_path / "config.json")
    (tmp_path / "config.json").write_text(DEEP)
    with pytest.raises(VAEConfigError, match="nested too deeply"):
        read_config(tmp_path / "config.json")


def test_a_deeply_nested_safetensors_header_gets_the_readers_own_error(tmp_path):
    path = tmp_path / "model.safetensors"
    header = DEEP.encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(TextEncoderFilesError, match="nested too deeply"):
        read_header(path)
    header = json.dumps({"w": {"shape": [1]}}).encode()  # no dtype
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(TextEncoderFilesError, match="truncated or corrupt.*Download it again"):
        read_header(path)
