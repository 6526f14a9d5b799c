"""What a step cache keeps between steps (diffusion_models/step_cache_memory.py), and offload 'auto'
counting it: the estimate is read against the tensors the caches' hooks really hold during a tiny
run, and a cache's state can tip a job that fits whole into streaming its blocks."""

from __future__ import annotations

import contextlib
import types

import pytest
import torch

from hunyuan_custom.benchmarks import synthetic_models, vram_estimate
from hunyuan_custom.pipelines import offload_policy as policy
from hunyuan_custom.pipelines import sampling
from hunyuan_custom.pipelines.diffusion_models import step_cache_memory
from hunyuan_custom.pipelines.diffusion_models.keys import FULL_SIZE_CONFIG
from hunyuan_custom.pipelines.diffusion_models.step_cache import CACHE_NAMES, CacheSettings
from hunyuan_custom.pipelines.sampling import DenoiseRequest, denoise, initial_noise, latent_shape
from hunyuan_custom.pipelines.text_encoders.encoding import TextConditioning

GIB = 1024**3
TEXT_TOKENS = 12
SKIPPING = {"teacache": 1.0, "magcache": 1.0, "fbcache": 1.0, "taylorseer": 2.0}  # thresholds that do skip


def _tensor_bytes(obj, seen: set, depth: int = 0) -> int:
    """Bytes of the tensors reachable from a hook (its state objects, dicts, lists), each storage once."""
    if depth > 8 or isinstance(obj, (torch.nn.Module, type)):
        return 0
    if isinstance(obj, torch.Tensor):
        storage = obj.untyped_storage()
        key = (storage.data_ptr(), storage.nbytes())
        if key in seen:
            return 0
        seen.add(key)
        return storage.nbytes()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v, seen, depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v, seen, depth + 1) for v in obj)
    if hasattr(obj, "__dict__"):
        return sum(_tensor_bytes(v, seen, depth + 1) for v in vars(obj).values())
    return 0


def _held_by_hooks(model: torch.nn.Module) -> int:
    seen: set = set()
    return sum(_tensor_bytes(hook, seen) for module in model.modules()
               for hook in getattr(getattr(module, "_diffusers_hook", None), "hooks", {}).values())


def _most_held(model, cache: str, monkeypatch) -> tuple[int, tuple[int, ...]]:
    """The most bytes the cache's hooks hold at the start of any step of a 6-step run."""
    most = [0]
    real = sampling.step_cache_run

    @contextlib.contextmanager
    def measuring(*args, **kwargs):
        with real(*args, **kwargs) as run:
            before = run.before_step

            def before_step(index):
                most[0] = max(most[0], _held_by_hooks(model))
                return before(index)

            run.before_step = before_step
            yield run

    monkeypatch.setattr(sampling, "step_cache_run", measuring)
    g = torch.Generator().manual_seed(2)
    text_dim, pooled_dim = model.config.text_embed_dim, model.config.pooled_projection_dim
    mask = torch.ones(2, TEXT_TOKENS, dtype=torch.int64)
    mask[0, 7:] = 0  # the negative prompt is shorter
    text = TextConditioning(torch.randn(2, TEXT_TOKENS, text_dim, generator=g), mask,
                            torch.randn(2, pooled_dim, generator=g))
    shape = latent_shape(9, 32, 32)
    request = DenoiseRequest(latents=initial_noise(3, shape), ref_latents=torch.randn(1, 16, 1, 4, 4, generator=g),
                             text=text, steps=6, flow_shift=7.0, guidance_scale=6.0,
                             cache=CacheSettings(cache, threshold=SKIPPING.get(cache)))
    with torch.no_grad():
        denoise(model, request)
    return most[0], shape


@pytest.fixture(scope="module")
def tiny_model():
    return synthetic_models.synthetic_transformer(tiny=True, dtype=torch.float32, fp8=False)


@pytest.mark.parametrize("cache", CACHE_NAMES)
def test_the_estimate_covers_what_each_cache_holds(cache, tiny_model, monkeypatch):
    held, shape = _most_held(tiny_model, cache, monkeypatch)
    estimate = step_cache_memory.state_bytes(cache, shape, tiny_model.config, 4, TEXT_TOKENS)
    assert held <= estimate <= held * 1.25 + 2 * step_cache_memory.BOOKKEEPING_BYTES, (held, estimate)
    if cache in SKIPPING and cache != "taylorseer":
        assert held > 0  # the walk finds the states (a test that measures nothing proves nothing)


def test_at_720p_the_adaptive_caches_hold_gigabytes_and_taylorseer_little():
    config = types.SimpleNamespace(**FULL_SIZE_CONFIG)
    shape = latent_shape(129, 720, 1280)
    gib = {cache: step_cache_memory.state_bytes(cache, shape, config, 2, policy.TEXT_TOKENS) / GIB
           for cache in CACHE_NAMES}
    assert gib["off"] == gib["deepcache"] == 0  # deepcache's stored input is in the activation constant
    assert 2.6 < gib["teacache"] == gib["magcache"] < 3.0
    assert 4.0 < gib["fbcache"] < 4.4
    assert 0.05 < gib["taylorseer"] < 0.2


def test_auto_streams_the_blocks_when_the_caches_state_would_not_fit(monkeypatch):
    from hunyuan_custom.pipelines.generate import LocalGenerator, ModelFiles, RuntimeOptions

    model = vram_estimate.build_shape_only_transformer(FULL_SIZE_CONFIG, torch.bfloat16, fp8=True)
    shape = latent_shape(129, 720, 1280)
    whole = policy.choose_offload(policy.module_bytes(model), policy.sequence_tokens(shape), 2, 0).need_bytes
    monkeypatch.setattr(ModelFiles, "check", lambda self: None)
    monkeypatch.setattr(policy, "available_vram", lambda device: whole + 1 * GIB)  # room for 1 GiB more
    generator = LocalGenerator(ModelFiles("t", "v", "l", "c"), RuntimeOptions(device="cpu", offload="auto"))
    generator._transformer = model
    said: list[str] = []
    assert generator._offload_mode(shape, said.append, "deepcache") == "model"
    assert generator._offload_mode(shape, said.append, "taylorseer") == "model"
    assert generator._offload_mode(shape, said.append, "teacache") == "group"
    assert "offload auto -> group" in said[-1] and "2.8 GiB of teacache state" in said[-1]


def test_gpu_memory_script_adds_an_adaptive_caches_state_to_the_transformer_estimate():
    """benchmarks/gpu_memory.py --cache NAME: the run uses that cache and the estimate it is checked
    against counts the cache's state, so a GPU measurement of a cached run can confirm it."""
    from hunyuan_custom.benchmarks import gpu_memory

    def transformer_estimate(*cache: str) -> int:
        (result,) = gpu_memory.main(["--tiny", "--device", "cpu", "--stages", "transformer", "--steps", "2", *cache])
        return result.estimate.peak_total

    model = synthetic_models.synthetic_transformer(tiny=True, dtype=torch.bfloat16, fp8=False)
    extra = step_cache_memory.state_bytes("teacache", latent_shape(9, 48, 64), model.config, 2, 40)
    assert extra > 0
    assert transformer_estimate("--cache", "teacache") - transformer_estimate("--cache", "off") == extra
