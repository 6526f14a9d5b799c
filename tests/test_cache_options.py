"""The step cache and compile as users set them: schema fields, the Job, the sampler's widgets (old
deep_cache values included), the CLI flags, and tiny end-to-end generations."""

from __future__ import annotations

import pytest
import torch

from _cli_run import local_argv, run_cli
from _tiny_model_set import build_tiny_model_set
from hunyuan_custom import NODE_CLASS_MAPPINGS
from hunyuan_custom.nodes.sampler import legacy_cache
from hunyuan_custom.pipelines import schema
from hunyuan_custom.pipelines.conditioning.prompt_spec import PromptSpec
from hunyuan_custom.pipelines.diffusion_models import compile_blocks
from hunyuan_custom.pipelines.diffusion_models.step_cache import CacheSettings
from hunyuan_custom.pipelines.generate import GenerationError, LocalGenerator, ModelFiles, RuntimeOptions
from hunyuan_custom.pipelines.job import Job

Sampler = NODE_CLASS_MAPPINGS["HunyuanCustomSampler"]
SMALL = {"size": "64*48", "num_frames": 5, "steps": 3, "seed": 3}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return build_tiny_model_set(tmp_path_factory.mktemp("models"))


def _spec() -> PromptSpec:
    reference = torch.rand(1, 40, 30, 3, generator=torch.Generator().manual_seed(0))
    return PromptSpec.create("a red block dances", "", "block", reference)


def _generator(models) -> LocalGenerator:
    files = ModelFiles(str(models.transformer), str(models.vae), str(models.text_encoder), str(models.text_encoder_2))
    return LocalGenerator(files, RuntimeOptions(device="cpu", dtype="float32"))


# ------------------------------------------------------------------ schema and Job


def test_cache_fields_are_local_sampler_fields_with_truthful_tooltips():
    f = schema.FIELDS
    assert f["cache"].options == schema.CACHE_NAMES and f["cache"].default == "deepcache"
    assert all(f[name].backends == (schema.LOCAL,) for name in schema.LOCAL_CACHE_FIELDS)
    tooltip = f["cache"].tooltip
    assert "HunyuanVideo T2V" in tooltip and "not HunyuanCustom's" in tooltip and len(tooltip) <= 300
    assert "Upstream-exact: off, and deepcache at 30 steps" in tooltip
    assert "0 never skips" in f["cache_threshold"].tooltip and "-1" in f["cache_threshold"].tooltip
    with pytest.raises(schema.ParameterError, match="cache = 'fastcache' is not valid: one of off, deepcache"):
        schema.check_value("cache", "fastcache")
    with pytest.raises(schema.ParameterError, match="cache_threshold"):
        schema.check_value("cache_threshold", 11.0)


def test_job_carries_the_cache_settings():
    job = Job.from_params(_spec(), {**SMALL, "cache": "teacache", "cache_threshold": 0.1, "cache_end": 0.8})
    assert job.cache == CacheSettings("teacache", 0.1, 0.0, 0.8)
    assert Job.from_params(_spec(), SMALL).cache == CacheSettings("deepcache")
    assert Job.from_params(_spec(), {**SMALL, "cache": "fbcache", "cache_threshold": -1}).cache.threshold is None
    assert Job.from_params(_spec(), SMALL, deep_cache=False).cache.name == "off"  # the older keyword
    with pytest.raises(schema.ParameterError, match="start 0.7 and end 0.2"):
        Job.from_params(_spec(), {**SMALL, "cache": "magcache", "cache_start": 0.7, "cache_end": 0.2})


# ------------------------------------------------------------------ nodes


def test_sampler_cache_widgets_sit_where_deep_cache_was_and_take_its_old_values():
    spec = Sampler.INPUT_TYPES()
    assert "deep_cache" not in spec["required"] and list(spec["optional"])[0] == "cache"
    kind, options = spec["optional"]["cache"]
    # ComfyUI's COMBO-with-options form: its server does no "value not in list" check, so an old
    # workflow's true/false reaches the node (an old list-form combo would be refused before running).
    assert kind == "COMBO" and options["options"] == list(schema.CACHE_NAMES) and options["default"] == "deepcache"
    assert list(spec["optional"]) == list(schema.LOCAL_SPEED_FIELDS)
    assert (legacy_cache(True), legacy_cache(False), legacy_cache("true")) == ("deepcache", "off", "deepcache")
    assert legacy_cache("magcache") == "magcache" and legacy_cache("bogus") == "bogus"  # refused by the schema
    assert list(spec["optional"])[-1] == "compile" and spec["optional"]["compile"][1]["default"] is False


def test_sampler_refuses_an_unknown_cache_before_anything_loads():
    class NeverLoaded:
        def generate(self, *_a, **_k):
            raise AssertionError("must not load")

    with pytest.raises(schema.ParameterError, match="cache = 'bogus'"):
        Sampler().sample(NeverLoaded(), _spec(), "64*48", 7.5, 13.0, 1, 5, 2, cache="bogus")


# ------------------------------------------------------------------ tiny generations


@pytest.mark.parametrize("name", schema.CACHE_NAMES)
def test_every_cache_option_runs_a_tiny_generation(models, name):
    said: list[str] = []
    result = _generator(models).generate(Job.from_params(_spec(), {**SMALL, "cache": name}), status=said.append)
    assert result.frames.shape == (5, 48, 64, 3) and torch.isfinite(result.frames).all()
    line = next(s for s in said if s.startswith("sampling"))
    assert f"cache {name}" in line
    if name == "deepcache":
        assert "acts only at 30 steps" in line


def test_threshold_zero_generates_offs_video_exactly(models):
    generator = _generator(models)
    off = generator.generate(Job.from_params(_spec(), {**SMALL, "cache": "off"}))
    for name in schema.ADAPTIVE_CACHES:
        got = generator.generate(Job.from_params(_spec(), {**SMALL, "cache": name, "cache_threshold": 0.0}))
        assert torch.equal(got.latents, off.latents), name


def test_compile_says_why_it_cannot_and_runs_uncompiled(models, monkeypatch):
    monkeypatch.setattr(compile_blocks, "compile_unavailable_reason", lambda _device: "torch.compile needs a test")
    said: list[str] = []
    generator = _generator(models)
    result = generator.generate(Job.from_params(_spec(), {**SMALL, "compile": True}), status=said.append)
    assert result.frames.shape == (5, 48, 64, 3)
    assert any("compile is on, but torch.compile needs a test" in s and "uncompiled" in s for s in said)
    assert not compile_blocks.blocks_compiled(generator._transformer)


def test_compile_compiles_the_blocks_before_offload_and_gives_the_same_video(models, monkeypatch):
    real = compile_blocks.compile_blocks
    monkeypatch.setattr(compile_blocks, "compile_unavailable_reason", lambda _device: None)
    monkeypatch.setattr(compile_blocks, "compile_blocks", lambda model: real(model, backend="eager"))  # no codegen
    said: list[str] = []
    generator = _generator(models)
    plain = generator.generate(Job.from_params(_spec(), {**SMALL, "cache": "teacache"}), status=said.append)
    assert not compile_blocks.blocks_compiled(generator._transformer)
    got = generator.generate(Job.from_params(_spec(), {**SMALL, "cache": "teacache", "compile": True}),
                             status=said.append)
    assert compile_blocks.blocks_compiled(generator._transformer)
    assert any("compile turned on: loading the transformer again" in s for s in said)
    assert any("compile during the first step" in s for s in said)
    torch.testing.assert_close(got.latents, plain.latents, rtol=0, atol=0)
    generator.generate(Job.from_params(_spec(), SMALL), status=said.append)  # off again: eager blocks
    assert not compile_blocks.blocks_compiled(generator._transformer)


def test_a_compiler_failure_is_one_clear_error(models, monkeypatch):
    from torch._dynamo.exc import TorchDynamoException

    from hunyuan_custom.pipelines import sampling

    def failing(*_a, **_k):
        raise TorchDynamoException("C compiler exploded")

    monkeypatch.setattr(compile_blocks, "compile_unavailable_reason", lambda _device: None)
    monkeypatch.setattr(compile_blocks, "compile_blocks", lambda model: 0)
    monkeypatch.setattr(sampling, "denoise", failing)
    with pytest.raises(GenerationError, match="compile: torch could not compile .*turn compile off"):
        _generator(models).generate(Job.from_params(_spec(), {**SMALL, "compile": True}))
    with pytest.raises(TorchDynamoException):  # without compile it is not ours to explain
        _generator(models).generate(Job.from_params(_spec(), SMALL))


# ------------------------------------------------------------------ CLI


def _cli(models, ref_png, out, *extra):
    return run_cli(local_argv(models, ref_png, out, "--size", "64*48", "--num-frames", "5", "--steps", "3", "--seed",
                              "7", *extra))


def test_cli_cache_flags_reach_the_sampler(models, ref_png, tmp_path):
    run = _cli(models, ref_png, tmp_path / "v.mp4", "--cache", "teacache", "--cache-threshold", "0.1",
               "--cache-start", "0.2")
    assert run.returncode == 0, run.stderr
    assert "cache teacache (threshold 0.1, steps 0.2-1)" in run.stderr


@pytest.mark.parametrize("extra, message", [
    (("--cache", "fastcache"), "invalid choice: 'fastcache'"),
    (("--cache", "teacache", "--cache-start", "0.8", "--cache-end", "0.5"), "start 0.8 and end 0.5"),
    (("--cache-threshold", "-3"), "cache_threshold"),
    (("--cache", "teacache", "--no-deep-cache"), "--no-deep-cache (= --cache off) contradicts --cache teacache"),
])
def test_cli_bad_cache_flags_end_with_one_line_before_loading(models, ref_png, tmp_path, extra, message):
    out = tmp_path / "bad.mp4"
    run = _cli(models, ref_png, out, *extra)
    assert run.returncode == 2 and message in run.stderr, run.stderr
    assert "loading" not in run.stderr and not out.exists()


def test_a_diffusers_without_the_cache_is_refused_before_loading(models, monkeypatch):
    import diffusers.hooks

    monkeypatch.delattr(diffusers.hooks, "MagCacheConfig")
    job = Job.from_params(_spec(), {**SMALL, "cache": "magcache"})
    generator = _generator(models)
    with pytest.raises(GenerationError, match="needs diffusers' MagCacheConfig.*choose another cache"):
        generator.generate(job)
    assert generator._transformer is None  # nothing was loaded
