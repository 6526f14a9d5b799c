"""The HunyuanCustomWaveSpeed node: its interface, and a run against the fake server as ComfyUI
would call it (progress text to a stand-in PromptServer, Cancel through comfy.model_management)."""

from __future__ import annotations

import inspect
import logging
import math
import os
import sys
import threading
import time
import types

import pytest
import torch

import _fake_wavespeed as fw
from _fake_comfy import install_model_management
from hunyuan_custom import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from hunyuan_custom.nodes import comfy, widgets
from hunyuan_custom.nodes.wavespeed import HunyuanCustomWaveSpeed
from hunyuan_custom.pipelines import schema
from hunyuan_custom.pipelines.media import video_io
from hunyuan_custom.pipelines.conditioning.prompt_spec import PromptSpec
from hunyuan_custom.pipelines.wavespeed.client import WaveSpeedError

KEY = "ws-node-test-key-5555aaaa"


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@pytest.fixture(scope="module")
def video_bytes(tmp_path_factory) -> bytes:
    frames = torch.linspace(0, 1, 5).view(5, 1, 1, 1).expand(5, 32, 48, 3).contiguous()
    return video_io.write_video(tmp_path_factory.mktemp("v") / "v.mp4", frames, fps=25).read_bytes()


@pytest.fixture
def fake(video_bytes, monkeypatch, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with fw.FakeWaveSpeed(KEY, video_bytes) as server:
        fw.use_in_env(server, monkeypatch, KEY)
        monkeypatch.setattr(comfy, "temp_directory", lambda: str(tmp_path / "temp"))
        yield server


@pytest.fixture
def comfy_server(monkeypatch):
    """Stand-ins for ComfyUI's `server` (progress text) and `comfy.model_management` (Cancel)."""
    sent: list[tuple[str, str]] = []
    state = {"cancel_at": None}

    class Interrupted(Exception):
        pass

    instance = types.SimpleNamespace(send_progress_text=lambda text, node_id: sent.append((text, node_id)))
    server = types.ModuleType("server")
    server.PromptServer = types.SimpleNamespace(instance=instance)

    def throw():
        if state["cancel_at"] is not None and time.monotonic() >= state["cancel_at"]:
            raise Interrupted("Processing interrupted")

    install_model_management(monkeypatch, throw, InterruptProcessingException=Interrupted)
    monkeypatch.setitem(sys.modules, "server", server)
    return types.SimpleNamespace(sent=sent, state=state, Interrupted=Interrupted)


def spec() -> PromptSpec:
    ref = torch.rand(1, 24, 16, 3, generator=torch.Generator().manual_seed(1))
    return PromptSpec.create("a robot waves", "", "robot", ref)


ARGS = dict(size="832*480", guidance_scale=6.0, flow_shift=9.0, seed=123, enable_safety_checker=False)


def test_registered_with_a_display_name():
    assert NODE_CLASS_MAPPINGS["HunyuanCustomWaveSpeed"] is HunyuanCustomWaveSpeed
    assert "WaveSpeed" in NODE_DISPLAY_NAME_MAPPINGS["HunyuanCustomWaveSpeed"]


def test_interface_matches_the_schema_and_has_tooltips():
    node = HunyuanCustomWaveSpeed
    spec_ = node.INPUT_TYPES()
    required = spec_["required"]
    assert list(required) == ["prompt", *schema.REMOTE_SAMPLER_FIELDS]
    assert required["prompt"][0] == "HYC_PROMPT"
    for name in schema.REMOTE_SAMPLER_FIELDS:  # identical to what the local sampler builds
        assert required[name] == widgets.widget(name, backend=schema.REMOTE)
    for name, (_, opts) in required.items():
        assert opts.get("tooltip"), f"{name} has no tooltip"
    assert spec_["hidden"] == {"unique_id": "UNIQUE_ID"}
    # No key widget: nothing secret can land in workflow JSON or file metadata.
    assert not any("key" in n.lower() or "token" in n.lower() for n in required)
    assert (node.RETURN_TYPES, node.RETURN_NAMES) == (("IMAGE", "FLOAT", "STRING"), ("frames", "fps", "video_path"))
    assert node.CATEGORY.startswith("HunyuanCustom") and node.DESCRIPTION
    assert callable(getattr(node(), node.FUNCTION))


def test_validate_inputs_refuses_local_only_sizes():
    assert list(inspect.signature(HunyuanCustomWaveSpeed.VALIDATE_INPUTS).parameters) == ["size"]
    for size in schema.REMOTE_SIZES:
        assert HunyuanCustomWaveSpeed.VALIDATE_INPUTS(size=size) is True
    message = HunyuanCustomWaveSpeed.VALIDATE_INPUTS(size="960*544")
    assert isinstance(message, str) and "960*544" in message
    assert all(s in message for s in schema.REMOTE_SIZES)
    assert HunyuanCustomWaveSpeed.VALIDATE_INPUTS(size=None) is True  # linked: checked at run time


def test_is_changed_reruns_only_for_random_seed():
    assert math.isnan(HunyuanCustomWaveSpeed.IS_CHANGED(seed=-1, size="1280*720"))
    a = HunyuanCustomWaveSpeed.IS_CHANGED(seed=5, size="1280*720")
    assert a == HunyuanCustomWaveSpeed.IS_CHANGED(seed=5, size="1280*720") and a == a


def test_run_returns_frames_fps_and_path_with_progress_text(fake, comfy_server, tmp_path, caplog):
    answer = HunyuanCustomWaveSpeed().generate(spec(), unique_id="7", **ARGS)
    frames, fps, path = answer["result"]
    assert frames.shape == (5, 32, 48, 3) and fps == 25.0
    assert path.startswith(str(tmp_path / "temp")) and path.endswith(".mp4")
    assert video_io.video_info(path)["frames"] == 5
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~_umask()  # readable like any saved file, not private
    (task_id,) = fake.tasks
    body = fake.submits()[0].json
    assert fake.submits()[0].path.endswith("hunyuan-custom-ref2v-480p")
    assert body["seed"] == 123 and body["enable_safety_checker"] is False and body["guidance_scale"] == 6.0
    assert body["prompt"] == "a robot waves" and body["size"] == "832*480"
    texts = [t for t, node_id in comfy_server.sent if node_id == "7"]
    assert len(texts) == len(comfy_server.sent) > 2
    assert any("processing" in t and task_id in t and "0:0" in t for t in texts)
    assert "seed 123" in texts[-1]
    # The result stays under the node after the job (UI output; 1.58 drops progress text then).
    assert answer["ui"]["text"] == ["5 frames, 48*32, 25 fps", "seed 123",
                                    f"WaveSpeed task {task_id} (wavespeed-ai/hunyuan-custom-ref2v-480p)"]
    # A second run never overwrites the first file.
    _, _, path2 = HunyuanCustomWaveSpeed().generate(spec(), unique_id="7", **ARGS)["result"]
    assert path2 != path
    for text in texts + [caplog.text, path]:
        assert KEY not in text
    assert all("authorization" not in r.headers for r in fake.calls("cdn"))


def test_local_only_size_fails_before_any_request(fake):
    with pytest.raises(schema.ParameterError, match="WaveSpeed accepts"):
        HunyuanCustomWaveSpeed().generate(spec(), **{**ARGS, "size": "544*960"})
    assert fake.requests == []


def test_wrong_prompt_input_is_explained(fake):
    with pytest.raises(TypeError, match="HunyuanCustomPrompt"):
        HunyuanCustomWaveSpeed().generate("just a string", **ARGS)


def test_task_errors_reach_the_user_without_the_key(fake, comfy_server, caplog):
    fake.faults.statuses = ["processing", "failed"]
    fake.faults.task_code = 1200
    fake.faults.task_error = "content flagged by moderation"
    with pytest.raises(WaveSpeedError) as info:
        HunyuanCustomWaveSpeed().generate(spec(), unique_id="3", **ARGS)
    text = str(info.value)
    assert "moderation" in text and "code 1200" in text and next(iter(fake.tasks)) in text
    assert KEY not in text + caplog.text + "".join(t for t, _ in comfy_server.sent)


def test_cancel_stops_within_a_second_and_leaves_no_thread(fake, comfy_server):
    fake.faults.statuses = ["processing"]
    before = set(threading.enumerate())
    comfy_server.state["cancel_at"] = time.monotonic() + 0.4
    with pytest.raises(comfy_server.Interrupted):
        HunyuanCustomWaveSpeed().generate(spec(), unique_id="9", **ARGS)
    assert time.monotonic() - comfy_server.state["cancel_at"] < 1.0
    deadline = time.monotonic() + 1.0
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert set(threading.enumerate()) - before == set()
    assert len(fake.tasks) == 1 and len(fake.submits()) == 1


@pytest.mark.parametrize("fault, words", [
    ({"key": "ws-wrong-key"}, "did not accept the API key while uploading the reference image"),
    ({"submit_failures": [(402, "application/json", '{"code": 402, "message": "Insufficient credits"}')]},
     "insufficient credits"),
    ({"submit_failures": [(500, "application/json", '{"code": 500, "message": "boom"}')]},
     "failed while accepting the job"),
    ({"submit_drop_connection": True}, "it is unknown whether a task was created"),
])
def test_the_status_line_shows_an_early_failure(fake, comfy_server, monkeypatch, fault, words):
    if "key" in fault:
        monkeypatch.setenv("WAVESPEED_API_KEY", fault.pop("key"))
    for name, value in fault.items():
        setattr(fake.faults, name, value)
    with pytest.raises(WaveSpeedError):
        HunyuanCustomWaveSpeed().generate(spec(), unique_id="4", **ARGS)
    last = comfy_server.sent[-1][0]
    assert last.startswith("WaveSpeed: failed · ") and words in last, comfy_server.sent


def test_key_problems_tell_a_comfyui_user_to_restart(fake, comfy_server, monkeypatch, tmp_path):
    monkeypatch.setenv("WAVESPEED_API_KEY", "ws-wrong-key")
    with pytest.raises(WaveSpeedError, match="restart ComfyUI"):
        HunyuanCustomWaveSpeed().generate(spec(), unique_id="4", **ARGS)
    monkeypatch.delenv("WAVESPEED_API_KEY")
    monkeypatch.setenv("WAVESPEED_CONFIG_FILE", str(tmp_path / "none.json"))
    with pytest.raises(Exception, match="No WaveSpeed API key .* restart ComfyUI"):
        HunyuanCustomWaveSpeed().generate(spec(), unique_id="4", **ARGS)
    assert comfy_server.sent[-1][0].startswith("WaveSpeed: failed · No WaveSpeed API key is configured")


def test_the_status_line_says_cancelled(fake, comfy_server):
    fake.faults.statuses = ["processing"]
    comfy_server.state["cancel_at"] = time.monotonic() + 0.3
    with pytest.raises(comfy_server.Interrupted):
        HunyuanCustomWaveSpeed().generate(spec(), unique_id="9", **ARGS)
    assert comfy_server.sent[-1][0].startswith("WaveSpeed: cancelled")


def test_the_node_says_what_wavespeed_does_not_take(fake):
    # The Prompt node's subject word never reaches WaveSpeed; its descriptions must not promise it does.
    assert "subject word" in HunyuanCustomWaveSpeed.DESCRIPTION and "not sent" in HunyuanCustomWaveSpeed.DESCRIPTION
    prompt = NODE_CLASS_MAPPINGS["HunyuanCustomPrompt"]
    assert "local sampler only" in prompt.DESCRIPTION
    assert "Local sampler only" in prompt.INPUT_TYPES()["required"]["subject"][1]["tooltip"]
    HunyuanCustomWaveSpeed().generate(spec(), **ARGS)
    assert "subject" not in fake.submits()[0].json
