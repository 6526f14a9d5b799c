"""Parity of our transformer, RoPE tables and audio pieces with upstream HunyuanCustom's numbers.

Every size is read from the fixture files (a second fixture set with other sizes is run too).
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import _transformer_parity as tp
from hunyuan_custom.pipelines.audio_encoders.windows import window_whisper_states
from hunyuan_custom.pipelines.diffusion_models.audio_modules import AudioCrossAttention, AudioProjection
from hunyuan_custom.pipelines.diffusion_models.rope import reference_rope_tables

VIDEO_FOLDERS = ["transformer_ref2v", "transformer_editing"]


def _io(folder):
    return load_file(str(folder / "io.safetensors"))


@pytest.fixture(scope="module", params=VIDEO_FOLDERS)
def video_case(request, reference_dir):
    folder = reference_dir / request.param
    return tp.build_from_fixture(folder), _io(folder)


@pytest.fixture(scope="module")
def audio_case(reference_dir):
    folder = reference_dir / "audio"
    model = tp.build_from_fixture(folder, "transformer_audio_weights.safetensors")
    return model, load_file(str(folder / "transformer_audio_io.safetensors"))


def _rope_pairs(model, io):
    tt, th, tw = tp.rope_grid(model, io["x"])
    cos, sin = reference_rope_tables(model.config.rope_axes_dim, tt, th, tw, model.config.rope_theta)
    return {"freqs_cos": (cos, io["freqs_cos"]), "freqs_sin": (sin, io["freqs_sin"])}


def test_parity_rope_tables(video_case):
    model, io = video_case
    tp.assert_all_close(_rope_pairs(model, io), atol=1e-5, rtol=1e-5)


def test_parity_rope_tables_audio(audio_case):
    model, io = audio_case
    tp.assert_all_close(_rope_pairs(model, io), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("trim_text", [True, False], ids=["mask_free", "masked"])
def test_parity_transformer_forward_and_intermediates(video_case, trim_text):
    model, io = video_case
    probe = tp.Intermediates(model)
    try:
        out = tp.forward_fixture(model, io, trim_text=trim_text)
    finally:
        probe.remove()
    image_tokens = io["inter.double_blocks.0.img"].shape[1]
    pairs = {"out": (out, io["out"]), **tp.intermediate_pairs(probe.as_fixture_names(), io, image_tokens)}
    tp.assert_all_close(pairs)


def test_parity_corrupted_weight_is_detected(reference_dir):
    """The comparison is not vacuous: one perturbed upstream weight breaks parity."""
    folder = reference_dir / VIDEO_FOLDERS[0]
    model, io = tp.build_from_fixture(folder), _io(folder)
    with torch.no_grad():
        weight = model.single_transformer_blocks[-1].proj_out.weight
        weight[0, 0] += 0.5
    out = tp.forward_fixture(model, io)
    assert tp.mismatch(out, io["out"]) is not None


def test_parity_corrupted_fixture_is_detected(video_case):
    model, io = video_case
    out = tp.forward_fixture(model, io)
    assert tp.mismatch(out, io["out"]) is None
    corrupted = io["out"].clone()
    corrupted.view(-1)[corrupted.numel() // 2] += 1e-3
    assert tp.mismatch(out, corrupted) is not None
    assert tp.mismatch(out, io["out"][..., :-1]) is not None  # wrong shape
    with pytest.raises(AssertionError):
        tp.assert_all_close({"out": (out, corrupted)})


def test_parity_audio_standalone(reference_dir):
    folder = reference_dir / "audio"
    cfg = json.loads((folder / "config.json").read_text())["A_standalone"]["constructor_kwargs"]
    weights = load_file(str(folder / "standalone_weights.safetensors"))
    io = load_file(str(folder / "standalone_io.safetensors"))
    projection = AudioProjection(**cfg["AudioProjNet2"])
    attention = AudioCrossAttention(**cfg["PerceiverAttentionCA"])
    for module, prefix in ((projection, "audio_proj."), (attention, "audio_models.0.")):
        module.load_state_dict({k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}, strict=True)
    with torch.no_grad():
        pairs = {
            "audio_proj.out": (projection(io["audio_proj.in.audio_prompts"]), io["audio_proj.out"]),
            "perceiver.out": (attention(io["perceiver.in.x"], io["perceiver.in.latents"]), io["perceiver.out"]),
        }
    tp.assert_all_close(pairs)


@pytest.mark.parametrize("trim_text", [True, False], ids=["trimmed", "untrimmed"])
def test_parity_audio_transformer(reference_dir, audio_case, trim_text):
    model, io = audio_case
    strength = json.loads((reference_dir / "audio" / "config.json").read_text())["B_transformer_level"]["audio_strength"]
    probe = tp.Intermediates(model)
    try:
        out = tp.forward_fixture(model, io, audio_prompts=io["audio_prompts"], audio_strength=strength, trim_text=trim_text)
    finally:
        probe.remove()
    out_silent = tp.forward_fixture(model, io, trim_text=trim_text)
    ours = probe.as_fixture_names()
    pairs = {"out": (out, io["out"]), "out_audio_prompts_None": (out_silent, io["out_audio_prompts_None"])}
    audio_names = [k for k in io if k.startswith("inter.audio")]
    assert audio_names, "audio fixture has no inter.audio* tensors"
    pairs.update({name: (ours[name], io[name]) for name in audio_names})
    tp.assert_all_close(pairs)


def test_parity_audio_windowing(reference_dir):
    io = load_file(str(reference_dir / "audio" / "windowing_io.safetensors"))
    names = sorted((k for k in io if k.startswith("encoder_hidden_state_")), key=lambda k: int(k.rsplit("_", 1)[1]))
    expected = io["encode_audio_out"]
    out = window_whisper_states([io[k] for k in names], num_frames=expected.shape[1])
    tp.assert_all_close({"encode_audio_out": (out, expected)}, atol=1e-6, rtol=0)
