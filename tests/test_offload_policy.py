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
