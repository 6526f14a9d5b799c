"""The shape-only VRAM estimate (benchmarks/vram_estimate.py) against real CPU runs and hand counts."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn

from hunyuan_custom.benchmarks import offload_residency, vram_counter, vram_estimate

# The group-offload recorder patches diffusers internals as of 0.42 (the version CI installs).
needs_recorder = pytest.mark.skipif(bool(offload_residency.missing_diffusers_internals()),
                                    reason="this diffusers' group offloading differs from the one the recorder patches")

TINY = {**vram_estimate.TINY_TRANSFORMER}
SIZE = dict(width=64, height=48, frames=9)  # latent [1, 16, 3, 6, 8]: 48 image tokens + 40 text tokens
# latent [1, 16, 5, 12, 16]: 288 image tokens, enough for N x N attention scores to dominate
ATTENTION_SIZE = dict(width=128, height=96, frames=17)


def _config() -> dict:
    from hunyuan_custom.pipelines.diffusion_models.keys import FULL_SIZE_CONFIG

    return {**FULL_SIZE_CONFIG, **TINY}


def _real_model(fp8: bool) -> nn.Module:
    """The tiny transformer with real float32 values on the CPU (float8 block Linears for fp8)."""
    model = vram_estimate.build_shape_only_transformer(_config(), torch.float32, fp8=fp8)
    model.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            if t.is_floating_point():
                t.copy_((torch.randn(t.shape, generator=generator) * 0.05).to(t.dtype))
            else:
                t.zero_()
        for name, buf in model.named_buffers():
            if name.endswith("weight_scale"):
                buf.fill_(1.0)
    return model


def _mlp_peak(device: str, batch: int = 8, dim: int = 16) -> tuple[vram_counter.LiveBytesCounter, torch.Tensor]:
    mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)).to(device)
    x = torch.ones(batch, dim, device=device)
    counter = vram_counter.LiveBytesCounter(device)
    with torch.no_grad(), counter:
        y = mlp(x)
    return counter, y


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_counter_matches_a_hand_count(device):
    batch, dim = 8, 16
    counter, y = _mlp_peak(device, batch, dim)
    hidden = batch * 4 * dim * 4  # float32 [8, 64]
    # Peak: the first Linear's output and the GELU's output at once (the first is freed before
    # the second Linear); the weights and the input existed before and never count, nor do the
    # transposed weight views F.linear makes.
    assert counter.peak.activations == 2 * hidden
    counter.observe("after")
    assert counter.live_bytes == y.numel() * 4  # only the result is still alive
    del y
    counter.observe("after del")
    assert counter.live_bytes == 0


def _attention_bytes(device: str, kind: str | None) -> tuple[int, int]:
    """(peak, live after the caller's permute + flatten) of one SDPA call as diffusers makes it."""
    q, k, v = (torch.ones(1, 50, 3, 16, device=device).permute(0, 2, 1, 3) for _ in range(3))  # [B, H, N, D] views
    counter = vram_counter.LiveBytesCounter(device)
    model = vram_counter.AttentionModel(kind, counter) if kind else contextlib.nullcontext()
    with torch.no_grad(), model, counter:
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        merged = out.permute(0, 2, 1, 3).flatten(2, 3)  # diffusers' _native_attention + processor
        counter.observe("merged")
        after = counter.live_bytes
    del merged
    return counter.peak.activations, after


def test_flash_model_allocates_what_a_fused_kernel_allocates():
    real = _attention_bytes("cpu", None)  # CPU SDPA runs its flash kernel: out + logsumexp
    assert _attention_bytes("meta", "flash") == real
    out_bytes = 50 * 3 * 16 * 4
    assert real == (out_bytes + 3 * 50 * 4, out_bytes)  # the merge is a view: no second copy
    math_peak, _ = _attention_bytes("meta", "math")
    assert math_peak == 2 * 3 * 50 * 50 * 4  # scores and softmax [B, H, N, N] at once


@pytest.mark.parametrize("fp8", [False, True], ids=["bf16-like", "fp8-keep"])
def test_meta_estimate_agrees_with_a_real_cpu_run(fp8):
    """The same denoising step, once with real tensors and CPU SDPA (a flash kernel, out + logsumexp),
    once shape-only on meta with the modelled kernel: the counted peaks must agree."""
    per_module = dict(text_tokens=40, stage_of=lambda name: name)  # peaks per module, not per block
    real = vram_estimate.estimate_transformer(_real_model(fp8), **ATTENTION_SIZE, attention=None, **per_module)
    meta_model = vram_estimate.build_shape_only_transformer(_config(), torch.float32, fp8=fp8)
    meta = vram_estimate.estimate_transformer(meta_model, **ATTENTION_SIZE, attention="flash", **per_module)

    assert real.peak_weights == meta.peak_weights == vram_estimate.tensor_bytes(meta_model)
    assert meta.peak_activations == pytest.approx(real.peak_activations, rel=0.01)
    assert meta.peak_module == real.peak_module
    # not only at the peak: the highest total inside every module agrees too
    assert meta.sub_peaks.keys() == real.sub_peaks.keys()
    for part, total in real.sub_peaks.items():
        assert meta.sub_peaks[part] == pytest.approx(total, rel=0.01), part
    # The unfused path (N x N scores) is what a meta SDPA would count without the model: visibly more.
    math = vram_estimate.estimate_transformer(meta_model, **ATTENTION_SIZE, attention="math", text_tokens=40,
                                              deep_cache=False)
    assert math.peak_activations > real.peak_activations * 1.05


def test_fp8_keep_stores_block_linears_in_one_byte():
    full = vram_estimate.build_shape_only_transformer(_config(), torch.bfloat16, fp8=False)
    kept = vram_estimate.build_shape_only_transformer(_config(), torch.bfloat16, fp8=True)
    linear_elements = sum(m.weight.numel() for blocks in (full.transformer_blocks, full.single_transformer_blocks)
                          for m in blocks.modules() if type(m) is nn.Linear)
    layers = sum(1 for m in kept.modules() if type(m).__name__ == "Fp8ScaledLinear")
    # bf16 -> float8 saves one byte per element; each layer gains a float32 scale
    assert vram_estimate.tensor_bytes(full) - vram_estimate.tensor_bytes(kept) == linear_elements - 4 * layers


@needs_recorder
def test_group_offload_schedule_is_recorded_from_diffusers_hooks():
    from diffusers.hooks import group_offloading

    model = vram_estimate.build_shape_only_transformer(_config(), torch.bfloat16, fp8=False)
    blocks = list(model.transformer_blocks) + list(model.single_transformer_blocks)
    block_bytes = [vram_estimate.tensor_bytes(b) for b in blocks]
    non_block = vram_estimate.tensor_bytes(model) - sum(block_bytes)
    original_onload = group_offloading.ModuleGroup.onload_

    recorder = offload_residency.ResidencyRecorder(model=model)
    _, latents, ref, text = vram_estimate.transformer_inputs(model.config, **SIZE, text_tokens=40,
                                                             dtype=torch.bfloat16, device=torch.device("meta"))
    model._text_and_mask = lambda states, _mask, _image_len, _trim: (states, None)
    with offload_residency.recorded_group_offloading(recorder), torch.no_grad():
        offload_residency.apply_recorded_group_offloading(model, torch.device("meta"))
        args = (latents.to(torch.bfloat16), torch.ones(1, device="meta"), text.states[:1], text.mask[:1],
                text.pooled[:1])
        model(*args, ref_latents=ref.to(torch.bfloat16))  # first pass: diffusers learns the order
        recorder.max_groups_onloaded = recorder.max_bytes = 0
        first_pass_events = len(recorder.events)
        model(*args, ref_latents=ref.to(torch.bfloat16))
    assert group_offloading.ModuleGroup.onload_ is original_onload  # the patch is undone

    # Streams: the non-block group plus the running block plus the prefetched next one.
    assert recorder.max_groups_onloaded == 3
    assert recorder.max_bytes == non_block + max(a + b for a, b in zip(block_bytes, block_bytes[1:]))
    assert recorder.bytes() == 0  # everything offloaded after the forward
    onloads = [name for kind, name in recorder.events[first_pass_events:] if kind == "onload"]
    assert onloads[0] == "non-block modules"
    assert len(onloads) == 1 + len(blocks)


@needs_recorder
def test_group_offload_lowers_the_transformer_peak_by_the_offloaded_weights():
    model = vram_estimate.build_shape_only_transformer(_config(), torch.bfloat16, fp8=False)
    none = vram_estimate.estimate_transformer(model, **SIZE, offload="none", text_tokens=40)
    model = vram_estimate.build_shape_only_transformer(_config(), torch.bfloat16, fp8=False)
    group = vram_estimate.estimate_transformer(model, **SIZE, offload="group", text_tokens=40)
    assert group.peak_weights < none.peak_weights == vram_estimate.tensor_bytes(model)
    assert group.peak_total < none.peak_total
    assert any("at most 3 groups" in note for note in group.notes)


@needs_recorder
def test_tiny_script_run_prints_every_stage_and_a_verdict(capsys):
    stages = vram_estimate.main(["--tiny", "--offload", "group", "--fp8", "keep", "--budget-gib", "24"])
    out = capsys.readouterr().out
    assert [s.name.split(" ")[0] for s in stages] == ["text", "transformer,", "VAE"]
    assert all(s.peak_total > s.peak_weights > 0 and s.peak_activations > 0 for s in stages)
    assert "verdict for a 24 GiB card" in out and "FITS" in out
    assert "largest live tensors at the peak" in out


def test_vae_decode_estimate_agrees_with_a_real_cpu_run():
    """Tiled decode (several temporal tiles): shape-only vs real float32 on the CPU."""
    from hunyuan_custom.pipelines.vae.model import HunyuanVideoVAE, VAEConfig

    size = dict(width=32, height=32, frames=13)  # latent 4 frames > the tiny 2-frame tile: temporal tiling
    real_vae = HunyuanVideoVAE.from_config(VAEConfig(**vram_estimate.TINY_VAE), device="cpu")
    real = vram_estimate.estimate_vae_decode(**size, vae=real_vae, attention=None)
    meta = vram_estimate.estimate_vae_decode(**size, vae=vram_estimate.shape_only_vae(torch.float32, tiny=True))
    assert real.peak_weights == meta.peak_weights == vram_estimate.tensor_bytes(real_vae.model)
    assert meta.peak_activations == pytest.approx(real.peak_activations, rel=0.01)
    assert meta.peak_module == real.peak_module
    for part, total in real.sub_peaks.items():
        assert meta.sub_peaks[part] == pytest.approx(total, rel=0.01), part
    assert "tiles of latent" in meta.notes[0] and not meta.notes[0].startswith("1 tiles")


def test_deep_cache_adds_the_other_passs_stored_block_input():
    model = vram_estimate.build_shape_only_transformer(_config(), torch.float32, fp8=False)
    off = vram_estimate.estimate_transformer(model, **ATTENTION_SIZE, text_tokens=40, deep_cache=False)
    on = vram_estimate.estimate_transformer(model, **ATTENTION_SIZE, text_tokens=40, deep_cache=True)
    image_tokens = 6 * 6 * 8  # (5 latent frames + reference) x 6 x 8 patches
    hidden = TINY["num_attention_heads"] * TINY["attention_head_dim"]
    stored = (image_tokens + 40) * hidden * 4  # image + text tokens, float32
    # Both runs take 2 steps. In the storing one, a pass's own stored input is dropped before it
    # runs (sampling._Pass) and re-stored as a reference to a tensor that is alive anyway, so what
    # deepcache adds is exactly the OTHER pass's stored input.
    assert on.peak_activations - off.peak_activations == stored
