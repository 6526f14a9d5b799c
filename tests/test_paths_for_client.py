"""What our nodes say goes to whoever queued the prompt over HTTP: files are named relative to
ComfyUI's folders, never by their absolute server paths."""

from __future__ import annotations

import os

import pytest

from hunyuan_custom.nodes import comfy
from hunyuan_custom.nodes.load_audio import HunyuanCustomLoadAudio
from hunyuan_custom.nodes.load_image import HunyuanCustomLoadImage
from hunyuan_custom.nodes.load_video import HunyuanCustomLoadVideo
from hunyuan_custom.nodes.model_loader import HunyuanCustomModelLoader
from hunyuan_custom.nodes.validation import NodeInputProblem


@pytest.fixture
def folders(tmp_path, monkeypatch):
    for name in ("input", "output", "models/diffusion_models", "models/vae", "models/text_encoders"):
        (tmp_path / name).mkdir(parents=True)
    monkeypatch.setenv("HYC_INPUT_DIR", str(tmp_path / "input"))
    monkeypatch.setenv("HYC_OUTPUT_DIR", str(tmp_path / "output"))
    monkeypatch.setenv("HYC_MODELS_DIR", str(tmp_path / "models"))
    return tmp_path


@pytest.mark.parametrize("node, name", [(HunyuanCustomLoadImage, "broken.png"), (HunyuanCustomLoadAudio, "broken.wav"),
                                        (HunyuanCustomLoadVideo, "broken.mp4")])
def test_a_broken_picked_file_is_named_without_the_servers_folders(folders, node, name):
    (folders / "input" / name).write_bytes(b"not media at all" * 10)
    with pytest.raises(ValueError) as info:
        node().load(name)
    assert name in str(info.value) and str(folders) not in str(info.value)


def test_model_loader_problems_name_model_folders_not_paths(folders):
    with pytest.raises(NodeInputProblem) as info:
        HunyuanCustomModelLoader.VALIDATE_INPUTS(transformer="gone.safetensors", vae="gone", text_encoder="gone",
                                                 text_encoder_2="gone", llava_vision="auto")
    assert "gone.safetensors" in str(info.value) and str(folders) not in str(info.value)


def test_home_and_folders_become_labels(folders):
    home = os.path.expanduser("~")
    text = comfy.for_client(f"read {home}/.config/hunyuan_custom/wavespeed.json and {comfy.input_directory()}/a.png")
    assert text == "read ~/.config/hunyuan_custom/wavespeed.json and input/a.png"
    assert comfy.for_client("/elsewhere/input2/x") == "/elsewhere/input2/x"


def test_cancel_passes_the_wrapper_untouched(folders, monkeypatch):
    class Interrupted(Exception):
        pass

    monkeypatch.setattr(comfy, "is_cancel", lambda exc: isinstance(exc, Interrupted))

    def cancelled():
        raise Interrupted(str(folders))

    monkeypatch.setattr(comfy, "throw_if_cancelled", cancelled)
    with pytest.raises(Interrupted, match=str(folders)):
        HunyuanCustomLoadAudio().load("x.wav")
