"""Transformer checkpoints in every real layout load to the same weights; bad files are refused clearly."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import _checkpoint_writers as W
from hunyuan_custom.pipelines.diffusion_models.checkpoints import CheckpointError, open_checkpoint

LAYOUTS = {
    # name: (writer, file name, expected format)
    "upstream_pt": (W.write_upstream_pt, "mp_rank_00_model_states.pt", "upstream-pt"),
    "upstream_fp8_pt": (W.write_upstream_fp8_pt, "mp_rank_00_model_states_fp8.pt", "upstream-fp8-pt"),
    "comfy_bf16": (W.write_comfy_safetensors, "hunyuan_video_custom_720p_bf16.safetensors", "comfyui-safetensors"),
    "comfy_bf16_prefixed": (
        lambda sd, p: W.write_comfy_safetensors(sd, p, prefix="model.diffusion_model."),
        "prefixed.safetensors",
        "comfyui-safetensors",
    ),
    "comfy_fp8_scaled": (W.write_comfy_fp8_scaled, "hunyuan_video_custom_720p_fp8_scaled.safetensors", "comfyui-fp8-scaled"),
}
FP8_LAYOUTS = {"upstream_fp8_pt", "comfy_fp8_scaled"}


@pytest.fixture(scope="module")
def ref2v(reference_dir: Path) -> Path:
    return reference_dir / "transformer_ref2v"


@pytest.fixture(scope="module")
def weights(ref2v: Path) -> dict[str, torch.Tensor]:
    return load_file(ref2v / "weights.safetensors")


def write_layout(name: str, sd: dict, folder: Path, config: Path | dict, file_name: str | None = None) -> Path:
    """The fixture weights in layout `name`, with the fixture's config.json beside them
    (`config`: a fixture folder holding config.json, or the config itself)."""
    writer, default_name, _ = LAYOUTS[name]
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(config, dict):
        (folder / "config.json").write_text(json.dumps(config))
    else:
        shutil.copy(config / "config.json", folder / "config.json")
    return writer(sd, folder / (file_name or default_name))


# ----------------------------------------------------------------------------------------------
# reading


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_layout_reads_back_the_fixture_weights(layout, weights, ref2v, tmp_path):
    path = write_layout(layout, weights, tmp_path, ref2v)
    ckpt = open_checkpoint(path)
    assert ckpt.format == LAYOUTS[layout][2]
    assert sorted(ckpt.keys()) == sorted(weights)
    expected = W.dequantized_state_dict(weights) if layout in FP8_LAYOUTS else weights
    fp8_keys = set(W.fp8_linear_weight_keys(weights)) if layout in FP8_LAYOUTS else set()
    assert set(ckpt.scales) == fp8_keys
    for key, want in expected.items():
        got = ckpt.tensor(key)
        if key in fp8_keys:
            assert got.dtype == torch.float8_e4m3fn
            got = got.to(torch.float32) * ckpt.scales[key].to(torch.float32)
            torch.testing.assert_close(got, want, rtol=0, atol=0)
            torch.testing.assert_close(got, weights[key], rtol=0.07, atol=1e-3)  # fp8 is close to float
        else:
            assert torch.equal(got, want), key


@pytest.mark.parametrize(
    "layout, misleading_name",
    [
        ("comfy_bf16", "mp_rank_00_model_states.pt"),
        ("comfy_fp8_scaled", "mp_rank_00_model_states_fp8.pt"),
        ("upstream_pt", "hunyuan_video_custom_720p_bf16.safetensors"),
        ("upstream_fp8_pt", "model_fp8_scaled.safetensors"),
    ],
)
def test_format_comes_from_contents_not_the_file_name(layout, misleading_name, weights, ref2v, tmp_path):
    path = write_layout(layout, weights, tmp_path, ref2v, file_name=misleading_name)
    assert open_checkpoint(path).format == LAYOUTS[layout][2]


def test_comfy_checkpoint_with_vae_and_text_encoder_keys_reads_the_diffusion_model(weights, tmp_path):
    sd = {"model.diffusion_model." + k: v for k, v in weights.items()}
    sd["vae.encoder.conv_in.weight"] = torch.zeros(2, 2)
    sd["text_encoders.clip_l.transformer.text_model.embeddings.token_embedding.weight"] = torch.zeros(2, 2)
    save_file(sd, str(tmp_path / "all_in_one.safetensors"))
    ckpt = open_checkpoint(tmp_path / "all_in_one.safetensors")
    assert sorted(ckpt.keys()) == sorted(weights)


def test_converted_tensors_give_back_their_file_pages_without_changing_data(weights, ref2v, tmp_path):
    from hunyuan_custom.pipelines.mapped_memory import FileMappings

    big = {"img_in.proj.weight": torch.randn(1024, 1024, dtype=torch.bfloat16), **weights}
    for layout in ("upstream_pt", "comfy_bf16"):
        ckpt = open_checkpoint(write_layout(layout, big, tmp_path / layout, ref2v))
        tensor = ckpt.tensor("img_in.proj.weight")
        before = tensor.clone()
        mappings = FileMappings(ckpt.files)
        if sys.platform.startswith("linux"):
            assert mappings.release(tensor) > 0
        assert torch.equal(tensor, before)  # pages come back from the file when read again
        assert mappings.release(before) == 0  # never anonymous memory


@pytest.mark.parametrize("layout", ["upstream_pt", "comfy_bf16"])
def test_truncated_file_is_refused_naming_it(layout, weights, ref2v, tmp_path):
    path = write_layout(layout, weights, tmp_path, ref2v)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as err:
        open_checkpoint(path)
    assert str(path) in str(err.value)


def test_empty_and_foreign_files_are_refused(tmp_path):
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        open_checkpoint(empty)
    text = tmp_path / "notes.pt"
    text.write_text("hello, this is not a checkpoint")
    with pytest.raises(CheckpointError, match="notes.pt"):
        open_checkpoint(text)


def test_hunyuanvideo_t2v_checkpoint_is_recognised(weights, ref2v, tmp_path):
    sd = dict(weights)
    hidden = sd["img_in.proj.weight"].shape[0]
    sd["guidance_in.mlp.0.weight"] = torch.zeros(hidden, 256)
    sd["guidance_in.mlp.0.bias"] = torch.zeros(hidden)
    path = write_layout("comfy_bf16", sd, tmp_path, ref2v, file_name="hunyuan_custom.safetensors")
    with pytest.raises(CheckpointError, match=r"HunyuanVideo text-to-video checkpoint \(has guidance_in\); HunyuanCustom needs"):
        open_checkpoint(path)


@pytest.mark.parametrize(
    "keys, looks_like",
    [
        (["encoder.conv_in.weight", "encoder.down_blocks.0.resnets.0.conv1.conv.weight", "decoder.conv_in.weight"], "VAE"),
        (["model.layers.0.self_attn.q_proj.weight", "model.embed_tokens.weight"], "text encoder"),
        (["text_model.encoder.layers.0.mlp.fc1.weight", "text_model.embeddings.token_embedding.weight"], "CLIP"),
    ],
)
def test_other_models_given_as_transformer_say_what_they_are(keys, looks_like, tmp_path):
    path = tmp_path / "transformer.safetensors"
    save_file({k: torch.zeros(2, 2) for k in keys}, str(path))
    with pytest.raises(CheckpointError, match=looks_like) as err:
        open_checkpoint(path)
    assert "not a HunyuanCustom transformer" in str(err.value)


def test_fp8_checkpoint_without_its_map_names_the_missing_file(weights, ref2v, tmp_path):
    path = W.write_upstream_fp8_pt(weights, tmp_path / "mp_rank_00_model_states_fp8.pt", write_map=False)
    with pytest.raises(CheckpointError, match="map file is missing") as err:
        open_checkpoint(path)
    assert str(tmp_path / "mp_rank_00_model_states_fp8_map.pt") in str(err.value)


def test_fp8_map_of_another_checkpoint_is_refused(weights, ref2v, tmp_path):
    path = W.write_upstream_fp8_pt(weights, tmp_path / "ckpt_fp8.pt")
    torch.save({"module": {"double_blocks.99.img_attn_qkv": torch.tensor(1.0)}}, tmp_path / "ckpt_fp8_map.pt")
    with pytest.raises(CheckpointError, match="no scale for the float8 layer"):
        open_checkpoint(path)


class _RunsCode:
    """Unpickling this calls os.system: a checkpoint must never be able to do that."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("container", ["torch_zip", "plain_pickle"])
def test_pickle_holding_code_is_refused_and_never_run(container, weights, tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "mp_rank_00_model_states.pt"
    payload = {"module": dict(weights), "extra": _RunsCode(marker)}
    if container == "torch_zip":
        torch.save(payload, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f)
    with pytest.raises(CheckpointError, match="refused|only tensors|non-zip") as err:
        open_checkpoint(path)
    assert str(path) in str(err.value)
    assert not marker.exists(), "unpickling ran code from the checkpoint"


# ----------------------------------------------------------------------------------------------
# building the model: every layout gives the reference output


# fixture folder, weights file, io file; the audio fixture keeps its transformer under B_transformer_level
VARIANTS = {
    "transformer_ref2v": ("transformer_ref2v", "weights.safetensors", "io.safetensors"),
    "transformer_editing": ("transformer_editing", "weights.safetensors", "io.safetensors"),
    "transformer_audio": ("audio", "transformer_audio_weights.safetensors", "transformer_audio_io.safetensors"),
}


def _forward(model, io: dict[str, torch.Tensor], audio_strength: float | None) -> torch.Tensor:
    extra = {"audio_prompts": io["audio_prompts"], "audio_strength": audio_strength} if "audio_prompts" in io else {}
    with torch.no_grad():
        return model(
            hidden_states=io["x"],
            timestep=io["t"],
            encoder_hidden_states=io["text_states"],
            encoder_attention_mask=io["text_mask"],
            pooled_projections=io["text_states_2"],
            ref_latents=io["ref_latents"],
            bg_latents=io.get("bg_latents"),
            return_dict=False,
            **extra,
        )[0]


class Variant:
    def __init__(self, reference_dir: Path, name: str) -> None:
        folder, weights, io = VARIANTS[name]
        self.sd = load_file(reference_dir / folder / weights)
        self.io = load_file(reference_dir / folder / io)
        config = json.loads((reference_dir / folder / "config.json").read_text())
        self.config = config.get("B_transformer_level", config)
        self.audio_strength = self.config.get("audio_strength")

    def forward(self, model) -> torch.Tensor:
        return _forward(model, self.io, self.audio_strength)


@pytest.fixture(scope="module")
def variants(reference_dir: Path) -> dict[str, Variant]:
    return {name: Variant(reference_dir, name) for name in VARIANTS}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("layout", sorted(set(LAYOUTS) - FP8_LAYOUTS))
def test_parity_every_layout_gives_the_reference_output(layout, variant, variants, tmp_path):
    from hunyuan_custom.pipelines.diffusion_models.loading import load_transformer

    v = variants[variant]
    model = load_transformer(write_layout(layout, v.sd, tmp_path, v.config))
    assert model.hyc_checkpoint_format == LAYOUTS[layout][2]
    torch.testing.assert_close(v.forward(model), v.io["out"], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("variant", VARIANTS)
def test_parity_diffusers_folder_round_trip(variant, variants, tmp_path):
    from hunyuan_custom.pipelines.diffusion_models.loading import load_transformer

    v = variants[variant]
    model = load_transformer(write_layout("upstream_pt", v.sd, tmp_path / "upstream", v.config))
    # sharded on purpose: the index json must be followed
    model.save_pretrained(tmp_path / "diffusers", max_shard_size="1MB", safe_serialization=True)
    assert list((tmp_path / "diffusers").glob("*.index.json"))
    again = load_transformer(tmp_path / "diffusers")
    assert again.hyc_checkpoint_format == "diffusers-folder"
    torch.testing.assert_close(v.forward(again), v.io["out"], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("layout", sorted(FP8_LAYOUTS))
@pytest.mark.parametrize("variant", VARIANTS)
def test_fp8_keep_and_dequantize_give_the_same_output(layout, variant, variants, tmp_path):
    from hunyuan_custom.pipelines.diffusion_models.loading import fp8_layer_names, load_transformer

    v = variants[variant]
    path = write_layout(layout, v.sd, tmp_path, v.config)
    dequantized = load_transformer(path, fp8_mode="dequantize")
    kept = load_transformer(path, fp8_mode="keep")
    assert not fp8_layer_names(dequantized)
    assert fp8_layer_names(kept)
    for name in fp8_layer_names(kept):
        assert kept.get_submodule(name).weight.dtype == torch.float8_e4m3fn
    assert all(p.dtype == torch.float32 for p in dequantized.parameters())
    out_kept, out_deq = v.forward(kept), v.forward(dequantized)
    assert torch.equal(out_kept, out_deq)
    # fp8 weights are an approximation: close to the float32 reference, not equal
    err = (out_deq - v.io["out"]).abs().max() / v.io["out"].abs().max()
    assert 0 < err < 0.1
    # and exactly what the float model gives with the dequantized weights
    reference = load_transformer(write_layout("comfy_bf16", W.dequantized_state_dict(v.sd), tmp_path / "deq", v.config))
    torch.testing.assert_close(out_deq, v.forward(reference), atol=1e-5, rtol=1e-5)


def test_dtype_option_casts_every_weight(variants, tmp_path):
    from hunyuan_custom.pipelines.diffusion_models.loading import load_transformer

    v = variants["transformer_ref2v"]
    bf16 = {k: t.to(torch.bfloat16) for k, t in v.sd.items()}
    path = write_layout("comfy_bf16", bf16, tmp_path, v.config)
    kept = load_transformer(path)  # "keep": the file's bf16
    assert {p.dtype for p in kept.parameters()} == {torch.bfloat16}
    as_fp32 = load_transformer(path, dtype="fp32")
    assert {p.dtype for p in as_fp32.parameters()} == {torch.float32}
    err = (v.forward(as_fp32) - v.io["out"]).abs().max() / v.io["out"].abs().max()
    assert err < 0.05  # bf16-rounded weights, float32 compute
    with pytest.raises(ValueError, match="dtype must be one of"):
        load_transformer(path, dtype="int8")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
@pytest.mark.parametrize("layout", ["upstream_pt", "comfy_bf16"])
def test_weights_in_the_file_dtype_stay_memory_mapped(layout, variants, tmp_path):
    """dtype 'keep' copies nothing: the model's weights are views of the mapped file (one copy in RAM)."""
    from hunyuan_custom.pipelines.mapped_memory import FileMappings
    from hunyuan_custom.pipelines.diffusion_models.loading import load_transformer

    v = variants["transformer_ref2v"]
    path = write_layout(layout, v.sd, tmp_path, v.config)
    model = load_transformer(path)
    ranges = FileMappings([path]).ranges
    assert ranges
    in_file = [
        any(lo <= p.data_ptr() < hi for lo, hi in ranges)
        for name, p in model.named_parameters()
        if not name.startswith("norm_out.linear")  # upstream's (shift, scale) halves are swapped: a copy
    ]
    assert all(in_file)


def _edited_config(config: dict, **changes) -> dict:
    edited = json.loads(json.dumps(config))
    edited["constructor_kwargs"].update(changes)
    return edited


def test_config_json_that_does_not_match_the_shapes_is_an_error(variants, tmp_path):
    from hunyuan_custom.pipelines.diffusion_models.loading import load_transformer

    v = variants["transformer_ref2v"]
    sd, config = v.sd, v.config
    path = write_layout("comfy_bf16", sd, tmp_path, config)
    heads = config["constructor_kwargs"]["num_heads"]
    hidden = sd["img_in.proj.weight"].shape[0]
    # twice the heads at the same hidden size: half the head_dim (RoPE dims shrunk to match)
    head_dim = hidden // (heads * 2)
    rope = [head_dim - 2 * (head_dim // 6 * 2), head_dim // 6 * 2, head_dim // 6 * 2]
    (tmp_path / "config.json").write_text(json.dumps(_edited_config(config, num_heads=heads * 2, rope_dim_list=rope)))
    with pytest.raises(CheckpointError) as err:
        load_transformer(path)
    message = str(err.value)
    assert str(tmp_path / "config.json") in message
    assert "double_blocks.0.img_attn_q_norm.weight" in message
    assert f"checkpoint shape [{hidden // heads}], model expects [{hidden // (heads * 2)}]" in message

    depth = config["constructor_kwargs"]["depth_double_blocks"]
    (tmp_path / "config.json").write_text(json.dumps(_edited_config(config, depth_double_blocks=depth + 1)))
    with pytest.raises(CheckpointError, match=rf"model tensor transformer_blocks\.{depth}\.\S+ \[.*\] is missing"):
        load_transformer(path)

    # a config the model cannot even be built from is named too
    (tmp_path / "config.json").write_text(json.dumps(_edited_config(config, rope_dim_list=[2, 2, 2])))
    with pytest.raises(CheckpointError, match="cannot build the transformer from .*config.json.*rope"):
        load_transformer(path)


def test_without_config_json_the_full_size_config_is_checked(variants, tmp_path):
    from hunyuan_custom.pipelines.diffusion_models.loading import load_transformer

    sd = variants["transformer_ref2v"].sd
    path = W.write_comfy_safetensors(sd, tmp_path / "tiny.safetensors")  # no config.json beside it
    shape = list(sd["img_in.proj.weight"].shape)
    with pytest.raises(CheckpointError) as err:
        load_transformer(path)
    message = str(err.value)
    assert "the released HunyuanCustom ref2v model's sizes (no config.json beside the checkpoint)" in message
    assert "FULL_SIZE_CONFIG" not in message  # a name inside the code, not for users
    assert f"tensor img_in.proj.weight (model tensor x_embedder.proj.weight): checkpoint shape {shape}" in message
    assert "model expects [3072, 16, 1, 2, 2]" in message
    assert f"hidden_size={shape[0]}" in message  # what the file really is
