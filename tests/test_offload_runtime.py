"""Group offloading (diffusers' hooks) around our transformer changes nothing in the result,
with fp8 'keep' layers and with deepcache's reuse steps, which skip every block but the last.

On a GPU the blocks would move between CPU RAM and VRAM; here both devices are the CPU, which
still runs every hook (onload, offload, the skipped-block path) with the real module tree.
"""

from __future__ import annotations

import copy

import pytest
import torch

from hunyuan_custom.benchmarks import synthetic_models
from hunyuan_custom.pipelines.diffusion_models.fp8_linear import Fp8ScaledLinear
from hunyuan_custom.pipelines.sampling import DenoiseRequest, denoise, initial_noise, latent_shape
from hunyuan_custom.pipelines.text_encoders.encodings import TextConditioning


def _request(model, steps: int) -> DenoiseRequest:
    g = torch.Generator().manual_seed(4)
    text_dim, pooled_dim = model.config.text_embed_dim, model.config.pooled_projection_dim
    mask = torch.ones(2, 12, dtype=torch.int64)
    mask[0, 7:] = 0
    text = TextConditioning(torch.randn(2, 12, text_dim, generator=g), mask, torch.randn(2, pooled_dim, generator=g))
    shape = latent_shape(9, 48, 64)
    return DenoiseRequest(latents=initial_noise(5, shape), ref_latents=torch.randn(1, 16, 1, 6, 8, generator=g),
                          text=text, steps=steps, flow_shift=7.0, guidance_scale=6.0, deep_cache=True)


@pytest.mark.parametrize("fp8", [False, True], ids=["bf16-like", "fp8-keep"])
def test_group_offloading_gives_the_same_video_with_deepcache_reuse_steps(fp8):
    model = synthetic_models.synthetic_transformer(tiny=True, dtype=torch.float32, fp8=fp8)
    assert any(isinstance(m, Fp8ScaledLinear) for m in model.modules()) == fp8
    offloaded = copy.deepcopy(model)
    try:
        offloaded.enable_group_offload(torch.device("cpu"), offload_device=torch.device("cpu"),
                                       offload_type="block_level", num_blocks_per_group=1)
    except AttributeError:  # diffusers 0.37 (our oldest supported) insists on an accelerator
        assert not torch.accelerator.is_available()
        pytest.skip("this diffusers version offloads only with an accelerator")
    request = _request(model, steps=30)  # 30 steps: upstream's deepcache schedule has reuse steps
    with torch.no_grad():
        expected = denoise(model, request)
        got = denoise(offloaded, request)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert torch.isfinite(expected).all()
