"""/prompt validation as a real ComfyUI server does it, applied to our node classes.

Found by running the pack in ComfyUI (tools/comfyui_smoke.py): ComfyUI's execution.validate_inputs
(1) skips its own combo and min/max checks for every input that VALIDATE_INPUTS names, and for ALL
inputs when it takes **kwargs; (2) repeats a message that VALIDATE_INPUTS returns once per named
input that is present, each under that input's name (the frontend marks each of them). So a
VALIDATE_INPUTS taking every widget blamed guidance_scale, seed, ... for a bad size, and the model
loader's **kwargs let dtype='float64' through; (3) reports an exception that VALIDATE_INPUTS raises
once, on that node, when it validates the node consuming it ("Exception when validating inner node").
`comfy_errors` below follows that code.
"""

from __future__ import annotations

import inspect

import pytest

from hunyuan_custom import NODE_CLASS_MAPPINGS


def comfy_errors(cls, inputs: dict) -> list[tuple[str | None, str]]:
    """(input name, details) for each error ComfyUI would report for these literal inputs; the name
    is None for a raised problem, reported once on the node."""
    declared = cls.INPUT_TYPES()
    specs = {**declared.get("required", {}), **declared.get("optional", {})}
    validate = getattr(cls, "VALIDATE_INPUTS", None)
    argspec = inspect.getfullargspec(validate) if validate else None
    named = set(argspec.args if argspec else ())
    takes_all = bool(argspec and argspec.varkw)
    errors = []
    for name, value in inputs.items():
        kind, opts = specs[name][0], (specs[name][1] if len(specs[name]) > 1 else {})
        if name in named or takes_all:
            continue
        if "min" in opts and value < opts["min"] or "max" in opts and value > opts["max"]:
            errors.append((name, "out of range"))
        elif isinstance(kind, list) and value not in kind:
            errors.append((name, "value not in list"))
    if named or takes_all:
        passed = {k: v for k, v in inputs.items() if k in named or takes_all}
        try:
            answer = validate(**passed)
        except Exception as exc:  # everything collected so far is dropped, as in ComfyUI
            return [(None, str(exc))]
        if answer is not True:
            errors += [(name, f"{name} - {answer}") for name in passed]
    return errors


MODEL_NAMES = dict(transformer="hunyuancustom_720P/mp_rank_00_model_states.pt", vae="hyvae_v1_0801/",
                   text_encoder="llava-llama-3-8b-v1_1/", text_encoder_2="openai_clip-vit-large-patch14/")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from _tiny_model_set import build_tiny_model_set

    root = tmp_path_factory.mktemp("models")
    build_tiny_model_set(root)
    return root


@pytest.fixture
def models(model_dir, monkeypatch):
    monkeypatch.setenv("HYC_MODELS_DIR", str(model_dir))
    return model_dir


def test_no_validate_inputs_takes_kwargs():
    for node, cls in NODE_CLASS_MAPPINGS.items():
        validate = getattr(cls, "VALIDATE_INPUTS", None)
        if validate is not None:
            assert inspect.getfullargspec(validate).varkw is None, f"{node}.VALIDATE_INPUTS takes **kwargs"


def test_one_missing_model_file_is_reported_once_naming_its_input(models):
    loader = NODE_CLASS_MAPPINGS["HunyuanCustomModelLoader"]
    good = dict(MODEL_NAMES, dtype="float32", fp8_mode="keep", offload="model", attention="default")
    ((where, details),) = comfy_errors(loader, dict(good, vae="gone_vae/"))
    assert where is None and details.startswith("vae: 'gone_vae/' was not found")
    ((_, details),) = comfy_errors(loader, dict(good, vae="gone_vae/", text_encoder="gone_llava/"))
    assert "vae: 'gone_vae/'" in details and "text_encoder: 'gone_llava/'" in details


def test_a_missing_picture_is_reported_once(tmp_path, monkeypatch):
    monkeypatch.setenv("HYC_INPUT_DIR", str(tmp_path))
    image = NODE_CLASS_MAPPINGS["HunyuanCustomLoadImage"]
    ((where, details),) = comfy_errors(image, {"image": "example_subject.png", "url": ""})
    assert where is None and details.startswith("image: file 'example_subject.png' not found")
    ((where, details),) = comfy_errors(image, {"image": "example_subject.png", "url": "ftp://x/a.png"})
    assert details.startswith("url: ")
    assert comfy_errors(image, {"image": "example_subject.png", "url": "https://x/a.png"}) == []


def test_loader_combos_are_still_checked_by_comfyui(models):
    loader = NODE_CLASS_MAPPINGS["HunyuanCustomModelLoader"]
    good = dict(MODEL_NAMES, dtype="float32", fp8_mode="keep", offload="model", attention="default")
    assert comfy_errors(loader, good) == []
    assert comfy_errors(loader, dict(good, dtype="float64", attention="bogus")) == [
        ("dtype", "value not in list"), ("attention", "value not in list")]


def test_a_bad_value_is_reported_once_under_its_own_input():
    sampler = NODE_CLASS_MAPPINGS["HunyuanCustomSampler"]
    literal = dict(size="50*64", guidance_scale=7.5, flow_shift=13.0, seed=1, num_frames=9, steps=2)
    errors = comfy_errors(sampler, literal)
    assert [name for name, _ in errors] == ["size"] and "multiples of 16" in errors[0][1]
    assert not errors[0][1].startswith("size - size")  # ComfyUI names the input once
    assert comfy_errors(sampler, dict(literal, size="48*64")) == []  # any W*H of 16s locally
    assert comfy_errors(sampler, dict(literal, size="48*64", steps=0)) == [("steps", "out of range")]

    prompt = NODE_CLASS_MAPPINGS["HunyuanCustomPrompt"]
    errors = comfy_errors(prompt, dict(prompt="", negative_prompt="", subject="man"))
    assert [name for name, _ in errors] == ["prompt"]

    save = NODE_CLASS_MAPPINGS["HunyuanCustomSaveVideo"]
    assert [n for n, _ in comfy_errors(save, dict(fps=25.0, filename_prefix="../out", crf=19))] == ["filename_prefix"]
    assert comfy_errors(save, dict(fps=25.0, filename_prefix="ok/video", crf=60)) == [("crf", "out of range")]

    remote = NODE_CLASS_MAPPINGS["HunyuanCustomWaveSpeed"]
    errors = comfy_errors(remote, dict(size="960*544", guidance_scale=7.5, flow_shift=13.0, seed=1,
                                       enable_safety_checker=True))
    assert [name for name, _ in errors] == ["size"] and "WaveSpeed accepts" in errors[0][1]
