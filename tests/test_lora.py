"""LoRAs on the transformer: every format, against a hand-merged checkpoint (W + strength * up @ down *
alpha / rank on the upstream, fused weights), on every load path; and the files that are refused.

The tiny checkpoints are the upstream reference fixtures in their real key layout (tests/_lora_files.py
builds the LoRA files on them)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from _checkpoint_writers import dequantized_state_dict, write_comfy_safetensors, write_upstream_fp8_pt
from _lora_files import FORMATS, make_lora, merged, write_lora
from hunyuan_custom.pipelines.diffusion_models import lora_runtime
from hunyuan_custom.pipelines.diffusion_models.fp8_linear import Fp8ScaledLinear
from hunyuan_custom.pipelines.diffusion_models.loading import load_transformer
from hunyuan_custom.pipelines.diffusion_models.lora_files import LoraChoice, LoraError, check_lora

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "reference"
HIDDEN = 64


def _fixture(variant: str) -> tuple[dict[str, torch.Tensor], Path]:
    folder = {"ref2v": "transformer_ref2v", "editing": "transformer_editing", "audio": "audio"}[variant]
    weights = "transformer_audio_weights.safetensors" if variant == "audio" else "weights.safetensors"
    return load_file(str(FIXTURES / folder / weights)), FIXTURES / folder / "config.json"


def _checkpoint(sd: dict, folder: Path, config: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(config, folder / "config.json")
    return write_comfy_safetensors(sd, folder / "transformer.safetensors")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    sd, config = _fixture("ref2v")
    root = tmp_path_factory.mktemp("lora_base")
    return sd, config, _checkpoint(sd, root / "base", config), root


def _inputs(model) -> dict:
    g = torch.Generator().manual_seed(3)
    mask = torch.ones(1, 6, dtype=torch.int64)
    mask[0, 4:] = 0
    return dict(hidden_states=torch.randn(1, 16, 2, 4, 4, generator=g), timestep=torch.tensor([700.0]),
                encoder_hidden_states=torch.randn(1, 6, model.config.text_embed_dim, generator=g),
                encoder_attention_mask=mask, pooled_projections=torch.randn(1, model.config.pooled_projection_dim, generator=g),
                ref_latents=torch.randn(1, 16, 1, 4, 4, generator=g))


def _run(model, dtype=torch.float32) -> torch.Tensor:
    inputs = {k: v.to(dtype) if v.is_floating_point() else v for k, v in _inputs(model).items()}
    with torch.no_grad():
        return model(**inputs).sample.float()


def _reference(sd, config, tmp: Path, loras, dtype="fp32") -> torch.Tensor:
    path = _checkpoint(merged(sd, loras), tmp / "merged", config)
    return _run(load_transformer(path, dtype=dtype), {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype])


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_gives_the_hand_merged_model(base, fmt, tmp_path):
    sd, config, ckpt, _root = base
    lora = make_lora(sd, alpha=2.0 if fmt == "musubi" else 4.0)  # PEFT and diffusers files carry no alpha
    path = write_lora(lora, tmp_path / f"style_{fmt}.safetensors", fmt, HIDDEN)
    assert check_lora(path) is None
    model = load_transformer(ckpt, dtype="fp32")
    plain = _run(model)
    said: list[str] = []
    assert lora_runtime.apply_loras(model, [LoraChoice(str(path), 0.8)], said.append)
    expected = _reference(sd, config, tmp_path, [(lora, 0.8)])
    torch.testing.assert_close(_run(model), expected, rtol=1e-4, atol=1e-5)
    assert (expected - plain).abs().max() > 1e-2  # the LoRA changes the output a lot
    assert "runtime branches" in said[-1] and path.name in said[-1]
    assert lora_runtime.remove_loras(model)
    torch.testing.assert_close(_run(model), plain, rtol=0, atol=0)  # nothing was merged: the base comes back exactly


def test_bf16_weights_and_two_chained_loras(base, tmp_path):
    sd, config, ckpt, _root = base
    first, second = make_lora(sd, seed=1), make_lora(sd, modules=("double_blocks.0.img_attn_qkv", "single_blocks.1.linear1"),
                                                      rank=2, alpha=1.0, seed=2)
    paths = [write_lora(first, tmp_path / "a.safetensors", "musubi", HIDDEN, torch.bfloat16),
             write_lora(second, tmp_path / "b.safetensors", "musubi", HIDDEN)]
    first = {k: (d.bfloat16().float(), u.bfloat16().float(), a) for k, (d, u, a) in first.items()}  # as stored
    loras = [(first, 0.6), (second, -1.5)]
    model = load_transformer(ckpt, dtype="bf16")
    lora_runtime.apply_loras(model, [LoraChoice(str(p), s) for p, (_, s) in zip(paths, loras)])
    got = _run(model, torch.bfloat16)
    expected32 = _reference(sd, config, tmp_path, loras)
    expected16 = _run(load_transformer(_checkpoint(merged(sd, loras), tmp_path / "m16", config), dtype="bf16"), torch.bfloat16)
    # bf16 rounding: the runtime branch is as close to the float32 merge as the bf16-merged weights are
    assert (got - expected32).abs().max() <= 2 * (expected16 - expected32).abs().max() + 1e-2
    torch.testing.assert_close(got, expected32, rtol=0.05, atol=0.05)


def test_fp8_keep_runs_the_lora_beside_the_float8_weights(base, tmp_path):
    sd, config, _ckpt, _root = base
    lora = make_lora(sd, seed=4)
    path = write_lora(lora, tmp_path / "fp8.safetensors", "musubi", HIDDEN)
    folder = tmp_path / "fp8"
    folder.mkdir()
    shutil.copy(config, folder / "config.json")
    fp8 = write_upstream_fp8_pt(sd, folder / "mp_rank_00_model_states_fp8.pt")
    model = load_transformer(fp8, dtype="fp32", fp8_mode="keep")
    kept = [m for m in model.modules() if isinstance(m, Fp8ScaledLinear)]
    assert kept and all(m.weight.dtype == torch.float8_e4m3fn for m in kept)
    lora_runtime.apply_loras(model, [LoraChoice(str(path), 1.0)])
    assert all(m.weight.dtype == torch.float8_e4m3fn for m in kept)  # no weight was dequantized or merged
    expected = _reference(dequantized_state_dict(sd), config, tmp_path, [(lora, 1.0)])
    torch.testing.assert_close(_run(model), expected, rtol=1e-4, atol=1e-5)


def test_group_offload_with_a_lora(base, tmp_path):
    sd, config, ckpt, _root = base
    lora = make_lora(sd, seed=5)
    path = write_lora(lora, tmp_path / "g.safetensors", "musubi", HIDDEN)
    model = load_transformer(ckpt, dtype="fp32")
    try:
        model.enable_group_offload(torch.device("cpu"), offload_device=torch.device("cpu"),
                                   offload_type="block_level", num_blocks_per_group=1)
    except AttributeError:
        pytest.skip("this diffusers version offloads only with an accelerator")
    lora_runtime.apply_loras(model, [LoraChoice(str(path), 1.3)])
    torch.testing.assert_close(_run(model), _reference(sd, config, tmp_path, [(lora, 1.3)]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("variant,modules", [
    ("editing", ("bg_proj", "double_blocks.0.img_attn_qkv")),
    ("audio", ("audio_models.0.to_kv", "audio_proj.proj1", "audio_models.3.to_out", "single_blocks.0.linear1")),
])
def test_the_editing_and_audio_modules_take_their_lora_keys(variant, modules, tmp_path):
    sd, config = _fixture(variant)
    hidden = int(sd["img_in.proj.weight"].shape[0])
    lora = make_lora(sd, modules=modules, seed=6)
    model = load_transformer(_checkpoint(sd, tmp_path / "base", config), dtype="fp32")
    for fmt in ("musubi", "comfy") if variant == "audio" else ("musubi",):
        lora_used = lora if fmt == "musubi" else make_lora(sd, modules=modules, alpha=4.0, seed=6)
        path = write_lora(lora_used, tmp_path / f"{variant}_{fmt}.safetensors", fmt, hidden)
        lora_runtime.apply_loras(model, [LoraChoice(str(path), 1.0)])
        reference = load_transformer(_checkpoint(merged(sd, [(lora_used, 1.0)]), tmp_path / f"m_{fmt}", config), dtype="fp32")
        touched = set(lora_runtime.applied_loras(model))
        assert any(name.startswith(("bg_proj", "audio_")) for name in touched)
        g = torch.Generator().manual_seed(0)
        for name in touched:  # each trained Linear, layer by layer, against the merged one
            layer, want = model.get_submodule(name), reference.get_submodule(name)
            x = torch.randn(3, layer.in_features, generator=g)
            with torch.no_grad():
                torch.testing.assert_close(layer(x), want(x), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------ refusals


def _file(path: Path, tensors: dict, metadata: dict | None = None) -> Path:
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)
    return path


def _pair(prefix: str, rows: int = 8, cols: int = 8, down=".lora_down.weight", up=".lora_up.weight") -> dict:
    return {prefix + down: torch.zeros(2, cols), prefix + up: torch.zeros(rows, 2)}


@pytest.mark.parametrize("keys,named", [
    ({**_pair("lora_unet_blocks_0_self_attn_q"), **_pair("lora_unet_blocks_0_cross_attn_k")}, "Wan 2.1"),
    ({**_pair("diffusion_model.blocks.3.self_attn.q", down=".lora_A.weight", up=".lora_B.weight")}, "Wan 2.1"),
    ({**_pair("lora_unet_down_blocks_0_attentions_0_proj_in"), **_pair("lora_te_text_model_encoder_layers_0_mlp_fc1")},
     "SD 1.5/SDXL"),
    ({**_pair("double_blocks.0.img_attn.qkv", down=".lora_A.weight", up=".lora_B.weight"),
      **_pair("double_blocks.0.img_mlp.0", down=".lora_A.weight", up=".lora_B.weight")}, "Flux"),
    ({**_pair("lora_unet_double_blocks_0_img_attn_q"), **_pair("lora_unet_double_blocks_0_img_attn_k"),
      **_pair("lora_unet_double_blocks_0_img_attn_v")}, "HunyuanVideo 1.5"),
    ({**_pair("lora_unet_double_blocks_0_img_attn_q"), **_pair("lora_unet_double_blocks_0_img_attn_proj"),
      **_pair("lora_unet_double_blocks_0_img_mlp_fc1"), **_pair("lora_unet_double_blocks_0_img_mod_linear"),
      **_pair("lora_unet_double_blocks_0_txt_mlp_fc2")}, "HunyuanVideo 1.5"),  # mostly shared names
    ({"lora_unet_double_blocks_0_img_attn_qkv.hada_w1_a": torch.zeros(2, 8)}, "LoHa"),
    ({"lora_unet_single_blocks_0_linear1.lokr_w1": torch.zeros(2, 2)}, "LoKr"),
    ({"double_blocks.0.img_attn_qkv.weight": torch.zeros(8, 8)}, "no LoRA weights"),
])
def test_other_models_loras_are_refused_by_name(keys, named, tmp_path):
    path = _file(tmp_path / "other.safetensors", keys)
    with pytest.raises(LoraError, match=named):
        check_lora(path)


def test_a_flux_lora_that_shares_the_qkv_names_is_told_by_its_metadata(tmp_path):
    path = _file(tmp_path / "flux.safetensors", _pair("lora_unet_double_blocks_0_img_attn_qkv"),
                 {"ss_base_model_version": "flux1"})
    with pytest.raises(LoraError, match="Flux"):
        check_lora(path)


def test_a_partial_match_gives_one_warning_with_the_count_and_examples(base, tmp_path):
    sd, _config, ckpt, _root = base
    lora = make_lora(sd, modules=("double_blocks.0.img_attn_qkv", "single_blocks.0.linear2", "double_blocks.1.img_mlp.fc2"))
    path = write_lora(lora, tmp_path / "part.safetensors", "musubi", HIDDEN)
    tensors = load_file(str(path))
    tensors.update(_pair("lora_unet_blocks_0_self_attn_q"))  # one Wan layer among three HunyuanVideo ones
    tensors.update(_pair("lora_unet_double_blocks_25_img_attn_proj", 64, 64))  # past the tiny model's depth
    _file(path, tensors)
    warning = check_lora(path)
    assert "1 of its 5 layers" in warning and "lora_unet_blocks_0_self_attn_q" in warning
    said: list[str] = []
    lora_runtime.apply_loras(load_transformer(ckpt, dtype="fp32"), [LoraChoice(str(path), 1.0)], said.append)
    warnings = [line for line in said if "left out" in line]
    assert len(warnings) == 1 and "2 of its 5 layers" in warnings[0] and "double_blocks_25" in warnings[0]


def test_a_lora_for_another_model_size_is_refused_when_applied(base, tmp_path):
    _sd, _config, ckpt, _root = base
    path = _file(tmp_path / "big.safetensors", {**_pair("lora_unet_double_blocks_0_img_attn_qkv", 9216, 3072)})
    assert check_lora(path) is None  # the names fit; the sizes are known only with the model
    model = load_transformer(ckpt, dtype="fp32")
    with pytest.raises(LoraError, match="another size"):
        lora_runtime.apply_loras(model, [LoraChoice(str(path), 1.0)])
    assert not lora_runtime.applied_loras(model)


def test_a_pickle_with_code_is_refused_unread(tmp_path):
    import pickle

    class Boom:
        def __reduce__(self):
            return (print, ("ran",))

    path = tmp_path / "evil.pt"
    torch.save({"lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": torch.zeros(2, 8), "x": Boom()}, path,
               pickle_module=pickle)
    with pytest.raises(LoraError, match="refused to load"):
        check_lora(path)


def test_a_pt_lora_loads_like_its_safetensors_twin(base, tmp_path):
    sd, _config, ckpt, _root = base
    lora = make_lora(sd, seed=9)
    st = write_lora(lora, tmp_path / "twin.safetensors", "musubi", HIDDEN)
    pt = tmp_path / "twin.pt"
    torch.save(load_file(str(st)), pt)
    model = load_transformer(ckpt, dtype="fp32")
    lora_runtime.apply_loras(model, [LoraChoice(str(st), 1.0)])
    want = _run(model)
    lora_runtime.apply_loras(model, [LoraChoice(str(pt), 1.0)])
    torch.testing.assert_close(_run(model), want, rtol=0, atol=0)


def test_compiled_blocks_follow_every_lora_change(base, tmp_path):
    from hunyuan_custom.pipelines.diffusion_models import compile_blocks

    sd, config, ckpt, _root = base
    lora = make_lora(sd, seed=13)
    path = write_lora(lora, tmp_path / "c.safetensors", "musubi", HIDDEN)
    model = load_transformer(ckpt, dtype="fp32")
    compile_blocks.compile_blocks(model, backend="eager")  # dynamo traces and guards as with inductor
    plain = _run(model)  # traced without any LoRA hook
    said: list[str] = []
    lora_runtime.apply_loras(model, [LoraChoice(str(path), -0.6)], said.append)  # hooks added after tracing
    torch.testing.assert_close(_run(model), _reference(sd, config, tmp_path, [(lora, -0.6)]), rtol=1e-4, atol=1e-5)
    assert any("compile again" in line for line in said)
    lora_runtime.apply_loras(model, [])
    torch.testing.assert_close(_run(model), plain, rtol=0, atol=0)
