"""Conditions as data: what a prompt carries, how a job is made from it, and the checks that stop a
job whose checkpoint and conditions do not go together before anything loads."""

from __future__ import annotations

import argparse

import pytest
import torch
from safetensors.torch import load_file

from conftest import reference_root
from hunyuan_custom.nodes.sampler import HunyuanCustomSampler
from hunyuan_custom.nodes.wavespeed import HunyuanCustomWaveSpeed
from hunyuan_custom.pipelines import cli, schema
from hunyuan_custom.pipelines.conditioning.base import Condition, ConditionError, checkpoint_mismatch
from hunyuan_custom.pipelines.conditioning.prompt_spec import PromptSpec
from hunyuan_custom.pipelines.conditioning.reference import ReferenceCondition
from hunyuan_custom.pipelines.generate import CheckpointModeError, LocalGenerator, ModelFiles, RuntimeOptions
from hunyuan_custom.pipelines.job import Job

REF = torch.rand(1, 24, 32, 3, generator=torch.Generator().manual_seed(0))


class FakeAudio(Condition):
    kind = "audio"
    checkpoint = "audio"
    node_name = "HunyuanCustom Audio"
    cli_flag = "--audio FILE"
    remote_refusal = "WaveSpeed's hunyuan-custom-ref2v takes no audio track."


class FakeEdit(Condition):
    kind = "edit"
    checkpoint = "editing"
    node_name = "HunyuanCustom Edit"
    cli_flag = "--video FILE --mask FILE"
    remote_refusal = "WaveSpeed cannot edit a video."

    def __init__(self, frames: int = 17):
        self.frames = frames

    def plan(self, job):
        used = min(job.num_frames, self.frames)
        return job.with_frames(used), f"source: {self.frames} frames -> {used}"


def spec() -> PromptSpec:
    return PromptSpec.create("a cat walks", "", "cat", REF)


def test_a_prompt_carries_its_reference_as_a_condition():
    s = spec()
    assert [type(c) for c in s.conditions] == [ReferenceCondition]
    assert s.reference is REF and s.mode == "ref2v" and s.condition("audio") is None


def test_with_condition_adds_or_replaces_and_leaves_the_input_alone():
    s = spec()
    first, second = FakeAudio(), FakeAudio()
    a = s.with_condition(first)
    b = a.with_condition(second)
    assert s.conditions == (s.conditions[0],)  # one Prompt node can feed several mode nodes
    assert a.mode == b.mode == "audio" and b.condition("audio") is second and len(b.conditions) == 2
    with pytest.raises(ConditionError, match="HunyuanCustom Audio and HunyuanCustom Edit cannot be combined"):
        a.with_condition(FakeEdit())


def test_mode_defaults_fill_what_the_user_left_out():
    edit = spec().with_condition(FakeEdit())
    job = Job.from_params(edit, {"size": "64*48", "seed": 3})
    assert (job.steps, job.flow_shift, job.num_frames) == (50, 5.0, 129)  # upstream's editing scripts
    plain = Job.from_params(spec(), {"size": "64*48", "seed": 3})
    assert (plain.steps, plain.flow_shift) == (30, 13.0)
    given = Job.from_params(edit, {"size": "64*48", "seed": 3, "steps": 30, "flow_shift": 7.0})
    assert (given.steps, given.flow_shift) == (30, 7.0)  # what the user set always wins
    assert schema.FIELDS["steps"].default_for("editing") == 50 and schema.FIELDS["steps"].default_for(None) == 30
    assert Job.from_params(spec(), {"size": "64*48", "seed": -1}).seed >= 0  # -1 is resolved once, here
    with pytest.raises(schema.ParameterError, match="num_frames"):
        Job.from_params(spec(), {"size": "64*48", "num_frames": 10})


def test_conditions_plan_the_job_before_anything_loads():
    job = Job.from_params(spec().with_condition(FakeEdit(frames=9)), {"size": "64*48", "seed": 1, "num_frames": 17})
    planned, notes = job.planned()
    assert planned.num_frames == 9 and job.num_frames == 17 and notes == ["source: 9 frames -> 9"]


def test_mismatch_messages_speak_the_place_they_appear_in():
    ref_only = spec().conditions
    ui = checkpoint_mismatch("audio", ref_only)
    assert "audio checkpoint" in ui and "connect a HunyuanCustom Audio node" in ui
    assert "pass --audio FILE" in checkpoint_mismatch("audio", ref_only, cli=True)
    wrong = spec().with_condition(FakeEdit()).conditions
    assert "the HunyuanCustom Edit node needs the editing checkpoint" in checkpoint_mismatch("ref2v", wrong)
    assert "--video FILE --mask FILE needs the editing checkpoint" in checkpoint_mismatch("ref2v", wrong, cli=True)
    assert checkpoint_mismatch("ref2v", ref_only) is None and checkpoint_mismatch("editing", wrong) is None


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from _tiny_model_set import build_tiny_model_set

    return build_tiny_model_set(tmp_path_factory.mktemp("models"))


@pytest.fixture()
def editing_checkpoint(tmp_path):
    """The tiny editing transformer in upstream's .pt layout (bg_in / bg_proj inside)."""
    import shutil

    weights = load_file(str(reference_root() / "transformer_editing" / "weights.safetensors"))
    path = tmp_path / "mp_rank_00_model_states.pt"
    torch.save({"module": weights}, path)
    shutil.copy(reference_root() / "transformer_editing" / "config.json", tmp_path / "config.json")  # tiny sizes
    return path


def _generator(models, transformer) -> LocalGenerator:
    return LocalGenerator(ModelFiles(str(transformer), str(models.vae), str(models.text_encoder),
                                     str(models.text_encoder_2)), RuntimeOptions(device="cpu", dtype="float32"))


def _nothing_loads(monkeypatch):
    from hunyuan_custom.pipelines.text_encoders import cache

    monkeypatch.setattr(cache, "encode_text_conditioning", lambda *a, **k: pytest.fail("the text stage ran"))


def test_a_mode_checkpoint_without_its_node_stops_before_the_text_stage(models, editing_checkpoint, monkeypatch):
    _nothing_loads(monkeypatch)
    job = Job.from_params(spec(), {"size": "64*48", "num_frames": 5, "steps": 1, "seed": 1})
    with pytest.raises(CheckpointModeError, match="editing checkpoint.*connect a HunyuanCustom Edit node") as info:
        _generator(models, editing_checkpoint).generate(job)
    assert "--video FILE --mask FILE" in info.value.cli_message


def test_a_mode_node_with_the_wrong_checkpoint_stops_before_the_text_stage(models, monkeypatch):
    _nothing_loads(monkeypatch)
    job = Job.from_params(spec().with_condition(FakeAudio()), {"size": "64*48", "num_frames": 5, "steps": 1})
    with pytest.raises(CheckpointModeError, match="HunyuanCustom Audio node needs the audio checkpoint"):
        _generator(models, models.transformer).generate(job)


def test_wavespeed_refuses_what_it_cannot_render_before_any_request(monkeypatch):
    import requests

    monkeypatch.setattr(requests.Session, "request", lambda *a, **k: pytest.fail("a request was sent"))
    args = dict(size="1280*720", guidance_scale=7.5, flow_shift=13.0, seed=1, enable_safety_checker=True)
    with pytest.raises(ValueError, match="takes no audio track.*Sampler \\(local\\)"):
        HunyuanCustomWaveSpeed().generate(spec().with_condition(FakeAudio()), **args)


def test_the_sampler_always_outputs_a_track_the_length_of_the_video():
    class Finished:
        def generate(self, job, **_):
            from hunyuan_custom.pipelines.generate import GenerationResult

            return GenerationResult(frames=torch.zeros(50, 48, 64, 3), fps=25.0, seed=job.seed)

    out = HunyuanCustomSampler().sample(Finished(), spec(), size="64*48", guidance_scale=7.5, flow_shift=13.0,
                                        seed=4, num_frames=49, steps=2)["result"]
    # audio is the 4th output: outputs added later (frames_8bit) go after it, so saved links keep their slots
    assert HunyuanCustomSampler.RETURN_NAMES[3] == "audio" and len(out) == len(HunyuanCustomSampler.RETURN_TYPES) == 5
    audio = out[3]
    assert audio["waveform"].shape == (1, 1, 2 * audio["sample_rate"]) and not audio["waveform"].any()


def test_cli_help_shows_the_schema_defaults_per_mode():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["generate"]
    text = sub.format_help()
    assert "default 30; 50 for editing" in text and "default 13.0; 5.0 for editing" in text


def test_widget_tooltips_say_the_mode_defaults_from_the_schema():
    from hunyuan_custom.nodes.widgets import widget

    steps = widget("steps")[1]["tooltip"]
    shift = widget("flow_shift")[1]["tooltip"]
    assert "Upstream's editing scripts use 50." in steps and steps.startswith(schema.FIELDS["steps"].tooltip)
    assert "Upstream's editing scripts use 5." in shift
