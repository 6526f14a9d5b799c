"""The Sampler's frames_8bit output into Save Video: a long video that never exists as float32.

ComfyUI gives the node the queued API prompt (hidden PROMPT); the sampler makes the float32 IMAGE only
when some node takes `frames`, and the 8-bit frames only when some node takes `frames_8bit`."""

from __future__ import annotations

import pytest
import torch

from _tiny_model_set import LOADER_PICKS, blue_square_spec, build_tiny_model_set
from hunyuan_custom import NODE_CLASS_MAPPINGS
from hunyuan_custom.nodes import comfy
from hunyuan_custom.nodes.sampler import FRAMES, FRAMES_8BIT, linked_outputs
from hunyuan_custom.pipelines.media import video_io

Loader = NODE_CLASS_MAPPINGS["HunyuanCustomModelLoader"]
Sampler = NODE_CLASS_MAPPINGS["HunyuanCustomSampler"]
SaveVideo = NODE_CLASS_MAPPINGS["HunyuanCustomSaveVideo"]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    build_tiny_model_set(root)
    return root


def _prompt(*slots: int) -> dict:
    """An API prompt whose saver takes the given outputs of sampler node "5"."""
    inputs = {f"in{slot}": ["5", slot] for slot in slots}
    return {"5": {"class_type": "HunyuanCustomSampler", "inputs": {}},
            "9": {"class_type": "HunyuanCustomSaveVideo", "inputs": inputs}}


def _run(models_dir, monkeypatch, api_prompt):
    monkeypatch.setenv("HYC_MODELS_DIR", str(models_dir))
    (model,) = Loader().load(*LOADER_PICKS, dtype="float32")
    spec = blue_square_spec()
    return Sampler().sample(model, spec, size="64*48", guidance_scale=7.5, flow_shift=13.0, seed=3, num_frames=9,
                            steps=2, unique_id="5", api_prompt=api_prompt)


def test_linked_outputs_are_read_from_the_queued_prompt():
    assert linked_outputs(_prompt(FRAMES, 1), "5") == {FRAMES, 1}
    assert linked_outputs(_prompt(FRAMES_8BIT), 5) == {FRAMES_8BIT}
    assert linked_outputs(None, "5") is None  # outside ComfyUI: the float frames, as before


def test_frames_8bit_alone_never_makes_float_frames_and_saves_the_same_video(models_dir, monkeypatch, tmp_path):
    both = _run(models_dir, monkeypatch, _prompt(FRAMES, FRAMES_8BIT))["result"]
    assert both[0].dtype == torch.float32 and both[0].shape == (9, 48, 64, 3)
    assert torch.equal(both[4], torch.from_numpy(video_io.frames_to_uint8(both[0])))

    only = _run(models_dir, monkeypatch, _prompt(FRAMES_8BIT))["result"]
    assert only[0].shape[0] == 0  # the IMAGE output is empty: nobody takes it
    assert torch.equal(only[4], both[4])  # the same video, decoded straight into 8 bits
    assert only[4].dtype == torch.uint8

    monkeypatch.setattr(comfy, "output_directory", lambda: str(tmp_path))
    assert "HYC_FRAMES" in SaveVideo.INPUT_TYPES()["required"]["frames"][0].split(",")
    path = SaveVideo().save(only[4], only[1], "long/song", 19, audio=only[3])["result"][0]
    assert video_io.video_info(path)["frames"] == 9
