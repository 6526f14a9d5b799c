"""The local nodes (model loader + sampler) called as ComfyUI would, with a tiny model set."""

from __future__ import annotations

import math
import re

import pytest
import torch

from _tiny_model_set import LOADER_PICKS, blue_square_spec, build_tiny_model_set
from hunyuan_custom import NODE_CLASS_MAPPINGS
from hunyuan_custom.pipelines import schema
from hunyuan_custom.pipelines.conditioning.prompt_spec import PromptSpec

Loader = NODE_CLASS_MAPPINGS["HunyuanCustomModelLoader"]
Sampler = NODE_CLASS_MAPPINGS["HunyuanCustomSampler"]
Remote = NODE_CLASS_MAPPINGS["HunyuanCustomWaveSpeed"]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    build_tiny_model_set(root)
    return root


@pytest.fixture
def comfy_models(models_dir, monkeypatch):
    monkeypatch.setenv("HYC_MODELS_DIR", str(models_dir))
    return models_dir


def test_shared_fields_have_identical_specs_on_local_and_remote():
    local = Sampler.INPUT_TYPES()["required"]
    remote = Remote.INPUT_TYPES()["required"]
    for name in schema.SHARED_SAMPLER_FIELDS:
        if name == "size":  # locally a text box (any W*H of 16s), on WaveSpeed its four sizes
            assert local[name][0] == "STRING" and remote[name][0] == list(schema.REMOTE_SIZES)
            assert local[name][1]["default"] == remote[name][1]["default"] == "1280*720"
            continue
        (lt, lo), (rt, ro) = local[name], remote[name]
        assert lt == rt
        assert {k: v for k, v in lo.items() if k != "tooltip"} == {k: v for k, v in ro.items() if k != "tooltip"}
    assert Sampler.RETURN_TYPES[:2] == Remote.RETURN_TYPES[:2] == ("IMAGE", "FLOAT")


def test_every_widget_has_a_tooltip(comfy_models):
    for cls in (Loader, Sampler):
        spec = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for name, entry in spec.get(section, {}).items():
                assert entry[1].get("tooltip"), f"{cls.__name__}.{name} has no tooltip"


def test_loader_lists_files_and_model_folders(comfy_models):
    req = Loader.INPUT_TYPES()["required"]
    assert "hunyuancustom_720P/mp_rank_00_model_states.pt" in req["transformer"][0]
    assert "hyvae_v1_0801/" in req["vae"][0]
    assert "llava-llama-3-8b-v1_1/" in req["text_encoder"][0]
    assert "openai_clip-vit-large-patch14/" in req["text_encoder_2"][0]
    names = dict(transformer="hunyuancustom_720P/mp_rank_00_model_states.pt", vae="hyvae_v1_0801/",
                 text_encoder="llava-llama-3-8b-v1_1/", text_encoder_2="openai_clip-vit-large-patch14/")
    assert Loader.VALIDATE_INPUTS(**names) is True
    with pytest.raises(ValueError, match="transformer: 'missing.pt' was not found"):
        Loader.VALIDATE_INPUTS(**dict(names, transformer="missing.pt"))
    # A workflow saved with the form the list no longer shows still validates (the loader resolves it).
    assert Loader.VALIDATE_INPUTS(**dict(names, vae="hyvae_v1_0801/pytorch_model.pt")) is True


def test_loader_lists_each_model_once_in_the_form_that_loads(tmp_path, monkeypatch):
    files = [
        "diffusion_models/hunyuancustom_720P/config.json",  # constructor arguments beside .pt checkpoints
        "diffusion_models/hunyuancustom_720P/mp_rank_00_model_states.pt",
        "diffusion_models/hunyuancustom_720P/mp_rank_00_model_states_fp8.pt",
        "diffusion_models/hunyuancustom_720P/mp_rank_00_model_states_fp8_map.pt",
        "diffusion_models/hyc_diffusers/config.json",
        "diffusion_models/hyc_diffusers/diffusion_pytorch_model-00001-of-00002.safetensors",
        "diffusion_models/hyc_diffusers/diffusion_pytorch_model-00002-of-00002.safetensors",
        "diffusion_models/hunyuan_video_custom_720p_bf16.safetensors",
        "vae/hyvae_v1_0801/config.json",
        "vae/hyvae_v1_0801/pytorch_model.pt",
        "vae/hunyuan_video_vae_bf16.safetensors",
        "text_encoders/llava-llama-3-8b-v1_1/config.json",
        "text_encoders/llava-llama-3-8b-v1_1/model-00001-of-00004.safetensors",
        "text_encoders/clip_l.safetensors",
    ]
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setenv("HYC_MODELS_DIR", str(tmp_path))
    req = Loader.INPUT_TYPES()["required"]
    assert req["transformer"][0] == ["hunyuan_video_custom_720p_bf16.safetensors",
                                     "hunyuancustom_720P/mp_rank_00_model_states.pt",
                                     "hunyuancustom_720P/mp_rank_00_model_states_fp8.pt", "hyc_diffusers/"]
    assert req["vae"][0] == ["hunyuan_video_vae_bf16.safetensors", "hyvae_v1_0801/"]
    assert req["text_encoder"][0] == req["text_encoder_2"][0] == ["clip_l.safetensors", "llava-llama-3-8b-v1_1/"]


def test_sampler_validation_and_rerun_rules():
    assert Sampler.VALIDATE_INPUTS(size="48*64") is True  # any multiple of 16 locally
    assert "multiples of 16" in Sampler.VALIDATE_INPUTS(size="50*64")
    assert "WaveSpeed accepts" in Remote.VALIDATE_INPUTS(size="960*544")

    class NeverLoaded:  # num_frames is not in VALIDATE_INPUTS: refused when the node runs, before loading
        def generate(self, **_):
            raise AssertionError("generate must not be reached")

    with pytest.raises(schema.ParameterError, match="num_frames"):
        Sampler().sample(NeverLoaded(), None, size="64*48", guidance_scale=7.5, flow_shift=13.0, seed=3,
                         num_frames=10, steps=2)
    assert math.isnan(Sampler.IS_CHANGED(seed=-1)) and Sampler.IS_CHANGED(seed=5) == 5


def test_loader_and_sampler_make_frames(comfy_models):
    (model,) = Loader().load(*LOADER_PICKS, dtype="float32")
    spec = blue_square_spec()
    answer = Sampler().sample(model, spec, size="64*48", guidance_scale=7.5, flow_shift=13.0, seed=3,
                              num_frames=9, steps=2)
    frames, fps, seed, _audio, _frames_8bit = answer["result"]
    assert frames.shape == (9, 48, 64, 3) and frames.dtype == torch.float32
    assert 0.0 <= frames.min() and frames.max() <= 1.0
    assert fps == 25.0 and seed == 3
    # Result lines the frontend keeps after the job (1.58 drops progress text when the job ends).
    lines = answer["ui"]["text"]
    assert lines[:2] == ["seed 3", "9 frames, 64*48, 25 fps (0.4 s of video)"]
    assert re.fullmatch(r"generated in \d+:\d\d", lines[2])
    with pytest.raises(schema.ParameterError, match="steps"):
        Sampler().sample(model, spec, size="64*48", guidance_scale=7.5, flow_shift=13.0, seed=3, num_frames=9, steps=0)


def test_cancel_is_honoured(comfy_models, monkeypatch):
    from hunyuan_custom.nodes import comfy

    (model,) = Loader().load(*LOADER_PICKS, dtype="float32")
    spec = PromptSpec.create("x", "", "object", torch.ones(1, 32, 32, 3))
    calls = []

    def cancel():
        calls.append(1)
        if len(calls) > 3:
            raise InterruptedError("cancelled by user")

    monkeypatch.setattr(comfy, "throw_if_cancelled", cancel)
    monkeypatch.setattr(comfy, "is_cancel", lambda exc: isinstance(exc, InterruptedError))
    said = []
    monkeypatch.setattr(comfy.Progress, "text", lambda self, message: said.append(message))
    with pytest.raises(InterruptedError):
        Sampler().sample(model, spec, size="64*48", guidance_scale=7.5, flow_shift=13.0, seed=1, num_frames=9, steps=20)
    assert len(calls) == 4  # stopped at the first check after the cancel, long before 20 steps
    assert said[-1] == "cancelled"  # the live status does not keep saying "sampling ..."


def test_comfy_models_unloaded_first_and_our_memory_released_after_cancel_and_error(comfy_models, monkeypatch):
    """Inside ComfyUI: unload ComfyUI's models before ours load; give our VRAM back afterwards,
    also when the run is cancelled or fails."""
    from _fake_comfy import install_model_management
    from hunyuan_custom.pipelines.generate import LocalGenerator

    events: list[str] = []
    state = {"interrupt": False}

    def throw():
        if state["interrupt"]:
            raise InterruptedError("Processing interrupted")

    install_model_management(monkeypatch, throw, unload_all_models=lambda: events.append("unload_comfy"),
                             soft_empty_cache=lambda: events.append("empty_cache"),
                             get_torch_device=lambda: torch.device("cpu"))
    real_release = LocalGenerator.release
    monkeypatch.setattr(LocalGenerator, "release", lambda self: (events.append("release"), real_release(self)))

    (model,) = Loader().load(*LOADER_PICKS, dtype="float32")
    spec = PromptSpec.create("x", "", "object", torch.ones(1, 32, 32, 3))
    args = dict(size="64*48", guidance_scale=7.5, flow_shift=13.0, seed=1, num_frames=5, steps=2)

    Sampler().sample(model, spec, **args)
    assert events[0] == "unload_comfy" and "release" in events and events[-1] == "empty_cache"

    events.clear()
    state["interrupt"] = True
    with pytest.raises(InterruptedError):
        Sampler().sample(model, spec, **args)
    assert events[0] == "unload_comfy" and "release" in events and events[-1] == "empty_cache"

    events.clear()
    state["interrupt"] = False
    monkeypatch.setattr("hunyuan_custom.pipelines.sampling.denoise",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("CUDA out of memory")))
    with pytest.raises(RuntimeError, match="out of memory"):
        Sampler().sample(model, spec, **args)
    assert "release" in events and events[-1] == "empty_cache"
