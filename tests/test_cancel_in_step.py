"""Cancel is heard between transformer blocks, inside a step, and leaves no hook behind."""

from __future__ import annotations

import pytest
import torch

from hunyuan_custom.benchmarks import synthetic_models
from hunyuan_custom.pipelines.diffusion_models.step_cache import CacheSettings
from hunyuan_custom.pipelines.sampling import DenoiseRequest, denoise, initial_noise, latent_shape
from hunyuan_custom.pipelines.text_encoders.encoding import TextConditioning


class Cancelled(Exception):
    pass


def _request(model) -> DenoiseRequest:
    g = torch.Generator().manual_seed(4)
    text = TextConditioning(torch.randn(2, 8, model.config.text_embed_dim, generator=g), torch.ones(2, 8, dtype=torch.int64),
                            torch.randn(2, model.config.pooled_projection_dim, generator=g))
    return DenoiseRequest(latents=initial_noise(5, latent_shape(5, 32, 32)), ref_latents=torch.randn(1, 16, 1, 4, 4, generator=g),
                          text=text, steps=3, flow_shift=7.0, guidance_scale=6.0, cache=CacheSettings("off"))


def test_cancel_stops_inside_the_first_step_between_blocks():
    model = synthetic_models.synthetic_transformer(tiny=True, dtype=torch.float32, fp8=False)
    blocks = len(model.transformer_blocks) + len(model.single_transformer_blocks)
    calls, steps = [], []

    def check_cancel():
        calls.append(1)
        if len(calls) == 3:  # 1: before step 1; 2, 3: before the first two blocks of step 1
            raise Cancelled

    with torch.no_grad(), pytest.raises(Cancelled):
        denoise(model, _request(model), check_cancel=check_cancel, on_step=lambda *a: steps.append(a[0]))
    assert steps == [] and blocks > 2  # stopped inside step 1, two blocks in
    hooked = [m for m in model.modules() if m._forward_pre_hooks]
    assert hooked == []  # the hooks are gone after the run, also after the Cancel

    calls.clear()
    with torch.no_grad():
        denoise(model, _request(model), check_cancel=lambda: calls.append(1))
    assert len(calls) == 3 * (1 + 2 * blocks)  # per step: before it, and before every block of both CFG passes
