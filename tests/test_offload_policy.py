"""offload='auto': the whole transformer goes on the GPU only when the job fits there."""

from __future__ import annotations

import pytest
import torch

from hunyuan_custom.benchmarks import vram_estimate
from hunyuan_custom.pipelines import offload_policy as policy
from hunyuan_custom.pipelines.sampling import latent_shape
from hunyuan_custom.pipelines.diffusion_models.keys import FULL_SIZE_CONFIG

GIB = 1024**3


@pytest.fixture(scope="module")
def full_size_weights() -> dict[str, int]:
    """Bytes of the full-size transformer as loaded: bf16, and fp8 'keep' (float8 block Linears)."""
    return {fp8: policy.module_bytes(vram_estimate.build_shape_only_transformer(FULL_SIZE_CONFIG, torch.bfloat16, fp8))
            for fp8 in (False, True)}


def test_tokens_of_a_720p_129_frame_job():
    # 33 latent frames + the reference frame, 45 x 80 patches each, plus the 831 text positions.
    assert policy.sequence_tokens(latent_shape(129, 720, 1280)) == 34 * 45 * 80 + 831


@pytest.mark.parametrize("fp8, available_gib, mode", [
    (False, 24, "group"), (True, 24, "group"),  # a 24 GB card streams the blocks at 720p
    (False, 32, "group"), (True, 32, "model"),  # 32 GB: only fp8 'keep' fits whole
    (False, 48, "model"), (False, 80, "model"),
])
def test_720p_129_frames(full_size_weights, fp8, available_gib, mode):
    tokens = policy.sequence_tokens(latent_shape(129, 720, 1280))
    choice = policy.choose_offload(full_size_weights[fp8], tokens, 2, available_gib * GIB)
    assert choice.mode == mode
    assert f"-> {mode}" in choice.describe()


def test_small_previews_keep_the_model_on_a_card_where_it_fits(full_size_weights):
    tokens = policy.sequence_tokens(latent_shape(33, 480, 832))
    assert policy.choose_offload(full_size_weights[True], tokens, 2, 24 * GIB).mode == "model"
    # bf16 weights alone (~24 GiB) never fit a 24 GB card whole.
    assert policy.choose_offload(full_size_weights[False], tokens, 2, 24 * GIB).mode == "group"


def test_the_policy_is_never_below_the_shape_only_estimate(full_size_weights):
    """The per-token constant is read off benchmarks/vram_estimate.py; if the pipeline's activations
    grow, the policy must be re-calibrated or 'auto' would pick 'model' for jobs that do not fit."""
    model = vram_estimate.build_shape_only_transformer(FULL_SIZE_CONFIG, torch.bfloat16, fp8=True)
    estimate = vram_estimate.estimate_transformer(model, width=960, height=544, frames=129, deep_cache=True)
    tokens = policy.sequence_tokens(latent_shape(129, 544, 960))
    need = policy.choose_offload(full_size_weights[True], tokens, 2, 0).need_bytes
    assert estimate.peak_total + 0.5 * GIB <= need <= estimate.peak_total + policy.MARGIN_BYTES + 1.5 * GIB


def test_the_generator_asks_the_policy_only_for_auto(monkeypatch):
    from hunyuan_custom.pipelines.generate import LocalGenerator, ModelFiles, RuntimeOptions

    monkeypatch.setattr(ModelFiles, "check", lambda self: None)
    monkeypatch.setattr(policy, "available_vram", lambda device: 24 * GIB)
    model = vram_estimate.build_shape_only_transformer(FULL_SIZE_CONFIG, torch.bfloat16, fp8=False)
    files = ModelFiles("t", "v", "l", "c")
    said: list[str] = []
    auto = LocalGenerator(files, RuntimeOptions(device="cpu", offload="auto"))
    auto._transformer = model
    assert auto._offload_mode(latent_shape(129, 720, 1280), said.append) == "group"
    assert said and "offload auto -> group" in said[0] and "24.0 GiB of VRAM is free" in said[0]
    fixed = LocalGenerator(files, RuntimeOptions(device="cpu", offload="model"))
    fixed._transformer = model
    assert fixed._offload_mode(latent_shape(129, 720, 1280), said.append) == "model"
    assert len(said) == 1


def _auto_generator(monkeypatch, model, device: str, free_bytes: int):
    from hunyuan_custom.pipelines.generate import LocalGenerator, ModelFiles, RuntimeOptions

    monkeypatch.setattr(ModelFiles, "check", lambda self: None)
    monkeypatch.setattr(policy, "available_vram", lambda device: free_bytes)
    generator = LocalGenerator(ModelFiles("t", "v", "l", "c"), RuntimeOptions(device=device, offload="auto"))
    generator._transformer = model
    return generator


def test_a_transformer_kept_on_the_gpu_from_the_last_job_is_not_counted_twice(monkeypatch):
    # On a 48 GB card the bf16 model fits whole at 720p; for the next job it is already on the card, so
    # the free memory lacks its 24 GiB. It used to be counted again and the second job streamed its blocks.
    model = vram_estimate.build_shape_only_transformer(FULL_SIZE_CONFIG, torch.bfloat16, fp8=False)
    shape = latent_shape(129, 720, 1280)
    need = policy.choose_offload(policy.module_bytes(model), policy.sequence_tokens(shape), 2, 0).need_bytes
    left = 48 * GIB - policy.module_bytes(model)
    assert need > left
    said: list[str] = []
    # The shape-only model lives on the meta device: as the device it computes on, it is "already there".
    assert _auto_generator(monkeypatch, model, "meta", left)._offload_mode(shape, said.append) == "model"
    assert _auto_generator(monkeypatch, model, "cpu", left)._offload_mode(shape, said.append) == "group"


def test_the_loras_to_apply_count_in_auto(monkeypatch, tmp_path):
    from safetensors.torch import save_file

    from hunyuan_custom.pipelines.diffusion_models.lora_files import LoraChoice, lora_bytes

    lora = tmp_path / "style.safetensors"
    save_file({"diffusion_model.double_blocks.0.img_attn_qkv.lora_down.weight": torch.zeros(64, 3072, dtype=torch.float16),
               "diffusion_model.double_blocks.0.img_attn_qkv.lora_up.weight": torch.zeros(9216, 64, dtype=torch.float16),
               "diffusion_model.double_blocks.0.img_attn_qkv.alpha": torch.tensor(64.0)}, str(lora))
    adapters = (64 * 3072 + 9216 * 64) * 2
    assert lora_bytes([LoraChoice(str(lora), 0.8)], 2) == adapters
    assert lora_bytes([LoraChoice(str(lora), 0.0), LoraChoice(str(tmp_path / "gone.safetensors"))], 2) == 0

    model = vram_estimate.build_shape_only_transformer(FULL_SIZE_CONFIG, torch.bfloat16, fp8=True)
    shape = latent_shape(129, 720, 1280)
    whole = policy.choose_offload(policy.module_bytes(model), policy.sequence_tokens(shape), 2, 0).need_bytes
    generator = _auto_generator(monkeypatch, model, "cpu", whole + adapters // 2)  # room for half the LoRA
    said: list[str] = []
    assert generator._offload_mode(shape, said.append) == "model"
    assert generator._offload_mode(shape, said.append, loras=(LoraChoice(str(lora)),)) == "group"
    assert "offload auto -> group" in said[-1] and "GiB of LoRAs" in said[-1]
