"""Queue-time checks of a whole graph: a prompt with our nodes runs whole or not at all, the WaveSpeed
key and the audio encoder are checked when it is queued, and our messages name the input."""

from __future__ import annotations

import asyncio
import json
import sys
import types

import pytest

from hunyuan_custom.nodes import queue_checks, routes


def _hybrid(audio_encoder: str = "none", with_audio: bool = False) -> dict:
    prompt = {
        "1": {"class_type": "HunyuanCustomModelLoader", "inputs": {"transformer": "t.safetensors", "audio_encoder": audio_encoder}},
        "2": {"class_type": "HunyuanCustomPrompt", "inputs": {"prompt": "a man", "image": ["9", 0]}},
        "3": {"class_type": "HunyuanCustomSampler", "inputs": {"model": ["1", 0], "prompt": ["2", 0], "size": "480*272"}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
        "5": {"class_type": "HunyuanCustomWaveSpeed", "inputs": {"prompt": ["2", 0], "size": "1280*720"}},
        "6": {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}},
        "9": {"class_type": "LoadImage", "inputs": {"image": "man.png"}},
    }
    if with_audio:
        prompt["7"] = {"class_type": "HunyuanCustomAudio", "inputs": {"prompt": ["2", 0], "audio": ["8", 0]}}
        prompt["8"] = {"class_type": "LoadAudio", "inputs": {"audio": "song.mp3"}}
        prompt["3"]["inputs"]["prompt"] = ["7", 0]
    return prompt


VAE_AS_TRANSFORMER = {"1": {"errors": [{
    "type": "exception_during_inner_validation", "message": "Exception when validating inner node",
    "details": "transformer: t.safetensors holds a VAE, not the transformer.",
    "extra_info": {"input_name": "model"}}], "dependent_outputs": ["4"], "class_type": "HunyuanCustomModelLoader"}}


def test_a_failing_branch_refuses_the_whole_prompt_with_every_problem_named():
    # ComfyUI's answer: valid (output 6, the WaveSpeed final, would run), output 4 dropped.
    answer = queue_checks.check(_hybrid(), (True, None, ["6"], VAE_AS_TRANSFORMER), lambda: True)
    assert answer is not None
    assert answer["error"]["type"] == "prompt_outputs_failed_validation"
    assert "Nothing was run" in answer["error"]["details"]
    assert "HunyuanCustomModelLoader #1" in answer["error"]["details"]
    assert "holds a VAE" not in answer["error"]["details"]  # in node_errors, which the frontends list: once
    (reason,) = answer["node_errors"]["1"]["errors"]
    # Our words, under the input at fault, not "Exception when validating inner node" under `model`.
    assert reason["type"] == "custom_validation_failed"
    assert reason["details"].startswith("transformer: ")
    assert reason["extra_info"]["input_name"] == "transformer"


def test_a_clean_graph_goes_to_comfyui_unchanged():
    assert queue_checks.check(_hybrid(), (True, None, ["4", "6"], {}), lambda: True) is None
    # Refused for a reason of ComfyUI's own (e.g. no outputs): its answer stays.
    assert queue_checks.check(_hybrid(), (False, {"type": "prompt_no_outputs"}, [], {}), lambda: True) is None


def test_a_missing_wavespeed_key_refuses_before_the_local_preview_runs():
    answer = queue_checks.check(_hybrid(), (True, None, ["4", "6"], {}), lambda: False)
    (reason,) = answer["node_errors"]["5"]["errors"]
    assert answer["node_errors"]["5"]["class_type"] == "HunyuanCustomWaveSpeed"
    assert "WAVESPEED_API_KEY" in reason["details"] and "restart ComfyUI" in reason["details"]


def test_running_only_the_local_preview_needs_no_wavespeed_key():
    # The frontend's "run selected outputs" sends partial_execution_targets: the WaveSpeed node does not run.
    assert queue_checks.check(_hybrid(), (True, None, ["4"], {}), lambda: False, targets=["4"]) is None
    assert queue_checks.check(_hybrid(), (True, None, ["6"], {}), lambda: False, targets=["6"]) is not None


def test_no_audio_encoder_is_reported_on_the_model_loader_when_the_graph_has_an_audio_node():
    answer = queue_checks.check(_hybrid(with_audio=True), (True, None, ["4", "6"], {}), lambda: True)
    (reason,) = answer["node_errors"]["1"]["errors"]
    assert answer["node_errors"]["1"]["class_type"] == "HunyuanCustomModelLoader"
    assert reason["extra_info"]["input_name"] == "audio_encoder"
    assert "HunyuanCustom Audio (node #7)" in reason["details"] and "whisper-tiny" in reason["details"]
    assert "CLI" not in reason["details"] and "--audio-encoder" not in reason["details"]
    # With Whisper picked, or without an Audio node, nothing to say.
    assert queue_checks.check(_hybrid("whisper-tiny/", with_audio=True), (True, None, ["4", "6"], {}), lambda: True) is None
    assert queue_checks.check(_hybrid(), (True, None, ["4", "6"], {}), lambda: True) is None


def test_graphs_without_our_nodes_are_not_ours_to_check():
    assert queue_checks.has_our_nodes({"1": {"class_type": "KSampler", "inputs": {}}}) is False
    assert queue_checks.has_our_nodes(_hybrid()) is True
    assert queue_checks.has_our_nodes("not a prompt") is False


# -- the middleware in front of ComfyUI's POST /prompt ------------------------------------------------

class _Request:
    def __init__(self, body: dict, path: str = "/prompt"):
        self.method, self.path, self._body = "POST", path, body

    async def json(self):
        return self._body


@pytest.fixture
def fake_web(monkeypatch):
    web = types.ModuleType("aiohttp.web")
    web.middleware = lambda f: f
    web.json_response = lambda data, status=200: {"status": status, "body": data}
    return web


def _run(web, body, validation, monkeypatch, key=True):
    async def fake_validate(prompt, targets):
        return validation

    monkeypatch.setattr(routes.comfy, "validate_prompt", fake_validate)
    monkeypatch.setattr(routes, "key_status", lambda: {"configured": key})
    handled = []

    async def handler(request):
        handled.append(request)
        return "queued by ComfyUI"

    answer = asyncio.run(routes.queue_middleware(web)(_Request(body), handler))
    return answer, handled


def test_the_middleware_refuses_a_partly_failing_prompt_and_passes_a_clean_one(fake_web, monkeypatch):
    answer, handled = _run(fake_web, {"prompt": _hybrid()}, (True, None, ["6"], VAE_AS_TRANSFORMER), monkeypatch)
    assert answer["status"] == 400 and not handled
    json.dumps(answer["body"])  # what the frontends parse
    answer, handled = _run(fake_web, {"prompt": _hybrid()}, (True, None, ["4", "6"], {}), monkeypatch)
    assert answer == "queued by ComfyUI" and handled


def test_the_middleware_never_blocks_comfyui_when_its_own_check_breaks(fake_web, monkeypatch):
    async def broken(prompt, targets):
        raise RuntimeError("boom")

    monkeypatch.setattr(routes.comfy, "validate_prompt", broken)

    async def handler(request):
        return "queued by ComfyUI"

    assert asyncio.run(routes.queue_middleware(fake_web)(_Request({"prompt": _hybrid()}), handler)) == "queued by ComfyUI"
