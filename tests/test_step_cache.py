"""Step caches (diffusion_models/step_cache.py) on tiny random transformers, on the CPU.

Every cache option runs a sampling run; threshold 0 gives `off`'s latents bit for bit; a high
threshold runs fewer blocks (counted, not timed); the two CFG passes keep separate states; the
caches give the same result under group offloading and with fp8 'keep' layers; a skipped step adds
no second audio update; the hooks are gone after a run, also after an error.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from hunyuan_custom.benchmarks import synthetic_models
from hunyuan_custom.pipelines.diffusion_models.block_counter import counting_block_evaluations
from hunyuan_custom.pipelines.diffusion_models.step_cache import (
    ADAPTIVE_CACHES,
    CACHE_NAMES,
    CACHE_OPTIONS,
    CacheSettings,
    CacheSettingsError,
    step_cache_run,
)
from hunyuan_custom.pipelines.diffusion_models.transformer import HunyuanCustomTransformer3DModel
from hunyuan_custom.pipelines.sampling import DenoiseRequest, denoise, initial_noise, latent_shape
from hunyuan_custom.pipelines.text_encoders.encoding import TextConditioning

STEPS = 12
HIGH = {"teacache": 5.0, "magcache": 5.0, "fbcache": 5.0, "taylorseer": 4.0}
MODERATE = {"teacache": 1.0, "magcache": 1.0, "fbcache": 1.0, "taylorseer": 2.0}


def _tiny_model(fp8: bool = False) -> torch.nn.Module:
    return synthetic_models.synthetic_transformer(tiny=True, dtype=torch.float32, fp8=fp8)


def _text(model, same_rows: bool = False) -> TextConditioning:
    g = torch.Generator().manual_seed(4)
    text_dim, pooled_dim = model.config.text_embed_dim, model.config.pooled_projection_dim
    states, pooled = torch.randn(2, 12, text_dim, generator=g), torch.randn(2, pooled_dim, generator=g)
    mask = torch.ones(2, 12, dtype=torch.int64)
    mask[0, 7:] = 0
    if same_rows:
        states, pooled, mask = states[1:].repeat(2, 1, 1), pooled[1:].repeat(2, 1), mask[1:].repeat(2, 1)
    return TextConditioning(states, mask, pooled)


def _request(model, cache: CacheSettings | None, steps: int = STEPS, guidance: float = 6.0, **extra) -> DenoiseRequest:
    g = torch.Generator().manual_seed(1)
    return DenoiseRequest(latents=initial_noise(5, latent_shape(9, 48, 64)),
                          ref_latents=torch.randn(1, 16, 1, 6, 8, generator=g), text=extra.pop("text", None) or _text(model),
                          steps=steps, flow_shift=7.0, guidance_scale=guidance, cache=cache, **extra)


def _run(model, request: DenoiseRequest, **kwargs) -> tuple[torch.Tensor, int]:
    with torch.no_grad(), counting_block_evaluations(model) as counts:
        latents = denoise(model, request, **kwargs)
    return latents, counts.blocks


@pytest.fixture(scope="module")
def model():
    return _tiny_model()


@pytest.fixture(scope="module")
def off_run(model):
    return _run(model, _request(model, CacheSettings("off")))


def _no_cache_hooks_left(model) -> bool:
    hooked = [name for name, module in model.named_modules()
              for hook in getattr(getattr(module, "_diffusers_hook", None), "hooks", {})
              if "cache" in hook or "fbc" in hook or "taylorseer" in hook]
    return not hooked and not model.is_cache_enabled


# ------------------------------------------------------------------ every option, threshold 0, high threshold


@pytest.mark.parametrize("name", CACHE_NAMES)
def test_every_cache_option_runs_a_tiny_sampling_run(model, off_run, name):
    steps = 30 if name == "deepcache" else STEPS  # deepcache acts only at 30 steps
    latents, blocks = _run(model, _request(model, CacheSettings(name), steps=steps))
    assert latents.shape == off_run[0].shape and torch.isfinite(latents).all()
    full = steps * 2 * 4  # steps x CFG passes x (2 double + 2 single blocks)
    if name == "off":
        assert blocks == full and torch.equal(latents, off_run[0])
    elif name == "deepcache":
        assert blocks == full - 8 * 2 * 3  # 8 reuse steps run only the last of 4 blocks, in both passes
    assert _no_cache_hooks_left(model)


@pytest.mark.parametrize("name", ADAPTIVE_CACHES)
def test_threshold_zero_reproduces_off_exactly(model, off_run, name):
    latents, blocks = _run(model, _request(model, CacheSettings(name, threshold=0.0)))
    assert torch.equal(latents, off_run[0])
    assert blocks == off_run[1]


@pytest.mark.parametrize("name", ADAPTIVE_CACHES)
def test_a_high_threshold_evaluates_fewer_blocks(model, off_run, name):
    latents, blocks = _run(model, _request(model, CacheSettings(name, threshold=HIGH[name])))
    assert blocks < off_run[1] // 2, f"{name} ran {blocks} of {off_run[1]} blocks"
    assert torch.isfinite(latents).all() and not torch.equal(latents, off_run[0])


@pytest.mark.parametrize("name", ["teacache", "magcache", "fbcache"])
def test_skipping_happens_only_inside_the_start_end_window(model, off_run, name):
    settings = CacheSettings(name, threshold=HIGH[name])
    empty = _run(model, _request(model, CacheSettings(name, HIGH[name], start=1.0, end=1.0)))
    assert torch.equal(empty[0], off_run[0]) and empty[1] == off_run[1]
    late = _run(model, _request(model, CacheSettings(name, HIGH[name], start=0.5)))[1]
    early = _run(model, _request(model, CacheSettings(name, HIGH[name], end=0.5)))[1]
    everywhere = _run(model, _request(model, settings))[1]
    assert everywhere < late < off_run[1] and everywhere < early < off_run[1]


# ------------------------------------------------------------------ CFG passes


@pytest.mark.parametrize("name", ADAPTIVE_CACHES)
def test_the_two_cfg_passes_do_not_share_cache_state(model, name):
    """With identical uncond and cond rows both passes compute the same thing, so with a state each
    they decide alike: the CFG run equals the cond-only run (guidance 1) at twice its block count.
    A shared state would let the second pass reuse the first pass's fresh result of the same step."""
    text = _text(model, same_rows=True)
    settings = CacheSettings(name, threshold=HIGH[name])
    cfg, cfg_blocks = _run(model, _request(model, settings, text=text))
    single, single_blocks = _run(model, _request(model, settings, text=text, guidance=1.0))
    assert cfg_blocks == 2 * single_blocks < 2 * STEPS * 4
    torch.testing.assert_close(cfg, single, rtol=0, atol=1e-6)


def test_cache_states_are_kept_under_the_pass_names(model):
    seen: list[str] = []
    original = model.cache_context

    def spy(name, **kwargs):
        seen.append(name)
        return original(name, **kwargs)

    model.cache_context = spy
    try:
        _run(model, _request(model, CacheSettings("fbcache"), steps=2))
        _run(model, _request(model, CacheSettings("fbcache"), steps=2, cfg_batched=True))
    finally:
        del model.cache_context
    assert seen == ["uncond", "cond"] * 2 + ["cfg_batch"] * 2


# ------------------------------------------------------------------ offload, fp8, audio/editing inputs


@pytest.mark.parametrize("fp8", [False, True], ids=["bf16-like", "fp8-keep"])
@pytest.mark.parametrize("name", ADAPTIVE_CACHES)
def test_caches_give_the_same_result_under_group_offloading(name, fp8):
    model = _tiny_model(fp8=fp8)
    offloaded = copy.deepcopy(model)
    try:
        offloaded.enable_group_offload(torch.device("cpu"), offload_device=torch.device("cpu"),
                                       offload_type="block_level", num_blocks_per_group=1)
    except AttributeError:  # diffusers 0.37 (our oldest supported) insists on an accelerator
        pytest.skip("this diffusers version offloads only with an accelerator")
    settings = CacheSettings(name, threshold=MODERATE[name])
    expected, expected_blocks = _run(model, _request(model, settings))
    got, got_blocks = _run(offloaded, _request(offloaded, settings))
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert got_blocks == expected_blocks < STEPS * 2 * 4
    assert _no_cache_hooks_left(offloaded)


def _audio_editing_model() -> HunyuanCustomTransformer3DModel:
    torch.manual_seed(0)
    return HunyuanCustomTransformer3DModel(
        num_attention_heads=2, attention_head_dim=16, num_layers=4, num_single_layers=2, rope_axes_dim=(4, 6, 6),
        text_embed_dim=12, pooled_projection_dim=10, video_condition=True, audio_condition=True, audio_channels=4,
        audio_intermediate_dim=8, audio_attention_dim=8, audio_attention_head_dim=8).eval()


def _audio_editing_inputs(seed: int = 3) -> dict:
    g = torch.Generator().manual_seed(seed)
    return dict(hidden_states=torch.randn(1, 16, 2, 4, 6, generator=g), timestep=torch.tensor([600.0]),
                encoder_hidden_states=torch.randn(1, 9, 12, generator=g),
                encoder_attention_mask=torch.ones(1, 9, dtype=torch.int64),
                pooled_projections=torch.randn(1, 10, generator=g), ref_latents=torch.randn(1, 16, 1, 4, 6, generator=g),
                bg_latents=torch.randn(1, 32, 2, 4, 6, generator=g), audio_prompts=torch.randn(1, 5, 10, 5, 4, generator=g),
                audio_strength=0.8)


@pytest.mark.parametrize("name", ["teacache", "magcache", "fbcache"])
def test_a_skipped_step_with_audio_and_editing_inputs_reuses_the_result_without_a_second_audio_update(name):
    """Step 1 repeats step 0's inputs exactly: the cache skips it and must give step 0's output
    (its residual already holds the audio updates; adding them again after the skipped blocks
    would change the result)."""
    model = _audio_editing_model()
    inputs = _audio_editing_inputs()
    with torch.no_grad(), step_cache_run(model, CacheSettings(name, threshold=HIGH[name]), steps=4) as cache:
        outputs, blocks = [], []
        for step in range(2):
            cache.before_step(step)
            with counting_block_evaluations(model) as counts, cache.pass_context("cond"):
                outputs.append(model(**inputs).sample)
            blocks.append(counts.blocks)
    assert blocks[0] == 6 and blocks[1] < 6
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        no_audio = model(**{**inputs, "audio_prompts": None}).sample
    assert (no_audio - outputs[0]).abs().max() > 1e-4  # the audio path is really in the result


@pytest.mark.parametrize("name", ADAPTIVE_CACHES)
def test_caches_run_with_audio_and_editing_inputs_and_threshold_zero_is_exact(name):
    model = _audio_editing_model()
    inputs = _audio_editing_inputs()
    results = {}
    for threshold in (0.0, HIGH[name], None):
        with torch.no_grad(), step_cache_run(model, CacheSettings(name, threshold=threshold), steps=6) as cache:
            latent = inputs["hidden_states"]
            for step in range(6):
                cache.before_step(step)
                with cache.pass_context("cond"):
                    velocity = model(**{**inputs, "hidden_states": latent,
                                        "timestep": torch.tensor([900.0 - 100 * step])}).sample
                latent = latent - 0.1 * velocity
        results[threshold] = latent
    with torch.no_grad():
        latent = inputs["hidden_states"]
        for step in range(6):
            latent = latent - 0.1 * model(**{**inputs, "hidden_states": latent,
                                              "timestep": torch.tensor([900.0 - 100 * step])}).sample
    assert torch.equal(results[0.0], latent)
    assert all(torch.isfinite(r).all() for r in results.values())


# ------------------------------------------------------------------ lifetime and settings


def test_hooks_are_removed_after_an_error_mid_run(model):
    calls = []

    def cancel():
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt

    for name in ADAPTIVE_CACHES:
        calls.clear()
        with pytest.raises(KeyboardInterrupt):
            _run(model, _request(model, CacheSettings(name)), check_cancel=cancel)
        assert _no_cache_hooks_left(model), name
    _run(model, _request(model, CacheSettings("teacache"), steps=2))  # attaches again


@pytest.mark.parametrize("settings, message", [
    (CacheSettings("fastcache"), "not one of off, deepcache"),
    (CacheSettings("teacache", threshold=-0.1), "0 or more"),
    (CacheSettings("teacache", threshold=math.nan), "0 or more"),
    (CacheSettings("magcache", start=0.6, end=0.4), "start 0.6 and end 0.4"),
])
def test_bad_settings_are_refused_before_sampling(model, settings, message):
    with pytest.raises(CacheSettingsError, match=message):
        _run(model, _request(model, settings))


def test_options_say_what_they_do_and_adaptive_ones_what_was_published():
    assert CACHE_NAMES[:2] == ("off", "deepcache")
    for name in ADAPTIVE_CACHES:
        option = CACHE_OPTIONS[name]
        assert option.threshold and option.recommended is not None and option.published
    assert CacheSettings("teacache").resolved_threshold == 0.15
    assert CacheSettings("teacache", 0.1, 0.2, 0.9).describe() == "cache teacache (threshold 0.1, steps 0.2-0.9)"
    assert list(CacheSettings(start=0.2, end=0.5).window(10)) == [2, 3, 4]


def test_deep_cache_flag_still_means_upstreams_deepcache():
    request = DenoiseRequest(latents=torch.zeros(1), ref_latents=torch.zeros(1), text=None, steps=30, flow_shift=7.0,
                             guidance_scale=6.0, deep_cache=True)
    assert request.step_cache == CacheSettings("deepcache")
    assert DenoiseRequest(**{**request.__dict__, "deep_cache": False}).step_cache == CacheSettings("off")
    assert DenoiseRequest(**{**request.__dict__, "cache": CacheSettings("fbcache")}).step_cache.name == "fbcache"
