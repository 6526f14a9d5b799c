"""The `compile` option (diffusion_models/compile_blocks.py) on the CPU.

torch.compile is exercised with dynamo's "eager" backend: it traces and guards exactly like the
default inductor backend but skips the code generation, so these tests check how compiled blocks
sit under group offloading and the step caches in seconds; kernels are for a GPU run
(benchmarks/step_speed.py --compile).
"""

from __future__ import annotations

import copy

import pytest
import torch

from hunyuan_custom.benchmarks import synthetic_models
from hunyuan_custom.pipelines.diffusion_models import compile_blocks as cb
from hunyuan_custom.pipelines.diffusion_models.step_cache import CacheSettings
from hunyuan_custom.pipelines.sampling import DenoiseRequest, denoise, initial_noise, latent_shape
from hunyuan_custom.pipelines.text_encoders.encoding import TextConditioning


def _request(cache: str, width: int = 64) -> DenoiseRequest:
    g = torch.Generator().manual_seed(4)
    mask = torch.ones(2, 12, dtype=torch.int64)
    mask[0, 7:] = 0
    text = TextConditioning(torch.randn(2, 12, 32, generator=g), mask, torch.randn(2, 24, generator=g))
    return DenoiseRequest(latents=initial_noise(5, latent_shape(9, 48, width)),
                          ref_latents=torch.randn(1, 16, 1, 6, width // 8, generator=g), text=text, steps=6,
                          flow_shift=7.0, guidance_scale=6.0, cache=CacheSettings(cache, threshold=1.0))


def test_off_touches_nothing():
    model = synthetic_models.synthetic_transformer(tiny=True, dtype=torch.float32, fp8=False)
    assert not cb.blocks_compiled(model)
    assert not any("forward" in m.__dict__ for m in model.modules())


@pytest.mark.parametrize("fp8", [False, True], ids=["bf16-like", "fp8-keep"])
def test_compiled_blocks_under_group_offload_and_every_cache_give_the_uncompiled_result(fp8):
    model = synthetic_models.synthetic_transformer(tiny=True, dtype=torch.float32, fp8=fp8)
    compiled = copy.deepcopy(model)
    assert cb.compile_blocks(compiled, backend="eager") == 2 + 2 + 1 + 1  # blocks, patch embed, token refiner
    assert cb.compile_blocks(compiled, backend="eager") == 0  # once
    try:
        compiled.enable_group_offload(torch.device("cpu"), offload_device=torch.device("cpu"),
                                      offload_type="block_level", num_blocks_per_group=1)
    except AttributeError:  # diffusers 0.37 offloads only with an accelerator
        pass
    with torch.no_grad():
        for cache, width in [("off", 64), ("teacache", 64), ("fbcache", 64), ("magcache", 64), ("taylorseer", 64),
                             ("deepcache", 64), ("off", 80)]:
            expected = denoise(model, _request(cache, width))
            got = denoise(compiled, _request(cache, width))
            torch.testing.assert_close(got, expected, rtol=0, atol=0, msg=f"{cache} at width {width}")


def test_blocks_that_already_have_hooks_are_refused():
    model = synthetic_models.synthetic_transformer(tiny=True, dtype=torch.float32, fp8=False)
    model.enable_cache(__import__("diffusers").FirstBlockCacheConfig(threshold=0.1))
    with pytest.raises(RuntimeError, match="before group offloading"):
        cb.compile_blocks(model, backend="eager")


def test_says_why_torch_cannot_compile(monkeypatch):
    assert cb.compile_unavailable_reason("cpu") is None or "C++" in cb.compile_unavailable_reason("cpu")
    monkeypatch.setattr(cb.shutil, "which", lambda _name: None)
    monkeypatch.delenv("CXX", raising=False)
    assert "needs a C++ compiler" in cb.compile_unavailable_reason("cpu")
    import torch.utils._triton as triton_check

    monkeypatch.setattr(triton_check, "has_triton", lambda: False)
    assert "needs Triton" in cb.compile_unavailable_reason(torch.device("cuda"))
    from torch import _dynamo

    monkeypatch.setattr(_dynamo, "is_dynamo_supported", lambda: False)
    assert "Python" in cb.compile_unavailable_reason("cpu")


def test_compile_errors_are_told_apart_from_model_errors():
    from torch._dynamo.exc import BackendCompilerFailed, Unsupported

    assert cb.is_compile_error(Unsupported("x"))
    wrapped = RuntimeError("outer")
    wrapped.__cause__ = Unsupported("inner")
    assert cb.is_compile_error(wrapped)
    assert not cb.is_compile_error(ValueError("bad shape"))
    assert BackendCompilerFailed  # the class inductor failures arrive as
