"""Video editing end to end on CPU with the tiny editing checkpoint: mp4 source and mask in, through
the node classes and the CLI, to an mp4 of the expected size, length and sound; and every unusual
input of the issue (sizes that differ, 2 frames, empty / all-white masks, odd sizes, no frames)."""

from __future__ import annotations

import subprocess

import pytest
import torch

from _cli_run import error_line, local_argv, run_cli
from _tiny_model_set import build_tiny_model_set
from hunyuan_custom import NODE_CLASS_MAPPINGS
from hunyuan_custom.pipelines.conditioning.base import ConditionError
from hunyuan_custom.pipelines.conditioning.edit import EditCondition
from hunyuan_custom.pipelines.conditioning.prompt_spec import PromptSpec
from hunyuan_custom.pipelines.generate import CheckpointModeError, LocalGenerator, ModelFiles, RuntimeOptions
from hunyuan_custom.pipelines.job import Job
from hunyuan_custom.pipelines.media import video_io
from hunyuan_custom.pipelines.media.wav_io import write_wav

Prompt, Edit = NODE_CLASS_MAPPINGS["HunyuanCustomPrompt"], NODE_CLASS_MAPPINGS["HunyuanCustomEdit"]
Loader, Sampler = NODE_CLASS_MAPPINGS["HunyuanCustomModelLoader"], NODE_CLASS_MAPPINGS["HunyuanCustomSampler"]
Save, Remote = NODE_CLASS_MAPPINGS["HunyuanCustomSaveVideo"], NODE_CLASS_MAPPINGS["HunyuanCustomWaveSpeed"]
EDITING = "hunyuancustom_editing_720P/mp_rank_00_model_states.pt"
RATE = 16000


def _source(frames: int, h: int = 48, w: int = 64) -> torch.Tensor:
    """A moving colour gradient: [F, H, W, 3] float 0..1."""
    t = torch.arange(frames, dtype=torch.float32).view(-1, 1, 1) / max(frames, 1)
    y = torch.linspace(0, 1, h).view(1, -1, 1)
    x = torch.linspace(0, 1, w).view(1, 1, -1)
    shape = (frames, h, w)
    return torch.stack([((x + t) % 1).expand(shape), y.expand(shape), ((x * y + t) % 1).expand(shape)], dim=-1)


def _mask(frames: int, h: int = 48, w: int = 64, box=(0.3, 0.7, 0.25, 0.75)) -> torch.Tensor:
    """White rectangle (sliding right) on black, as IMAGE frames [F, H, W, 3]."""
    out = torch.zeros(frames, h, w, 3)
    for f in range(frames):
        shift = f * w // (4 * frames)
        out[f, int(box[0] * h):int(box[1] * h), int(box[2] * w) + shift:int(box[3] * w) + shift] = 1.0
    return out


def _audio(seconds: float = 1.5) -> dict:
    t = torch.arange(int(seconds * RATE)) / RATE
    return {"waveform": (0.4 * torch.sin(2 * torch.pi * 330 * t)).view(1, 1, -1).repeat(1, 2, 1), "sample_rate": RATE}


def _reference() -> torch.Tensor:
    ref = torch.ones(1, 40, 32, 3)
    ref[:, 8:32, 6:24] = torch.tensor([0.8, 0.2, 0.1])
    return ref


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return build_tiny_model_set(tmp_path_factory.mktemp("models"))


@pytest.fixture
def comfy(models, tmp_path, monkeypatch):
    from hunyuan_custom.nodes import comfy as comfy_module

    monkeypatch.setenv("HYC_MODELS_DIR", str(models.transformer.parents[2]))
    monkeypatch.setenv("HYC_OUTPUT_DIR", str(tmp_path / "output"))
    monkeypatch.setattr(comfy_module, "temp_directory", lambda: str(tmp_path / "temp"))
    return tmp_path / "output"


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """An mp4 source with sound (19 frames, 64x48), its mask video at half size and a 70x50 source."""
    folder = tmp_path_factory.mktemp("clips")
    write_wav(_audio(), folder / "sound.wav")
    source = video_io.write_video(folder / "source.mp4", _source(19), 25, audio_path=str(folder / "sound.wav"))
    mask = video_io.write_video(folder / "mask.mp4", _mask(19, 24, 32), 25)
    odd = video_io.write_video(folder / "odd.mp4", _source(11, 50, 70), 25)
    odd_mask = video_io.write_video(folder / "odd_mask.mp4", _mask(11, 50, 70), 25)
    empty = video_io.write_video(folder / "empty_mask.mp4", torch.zeros(19, 48, 64, 3), 25)
    return {"source": source, "mask": mask, "odd": odd, "odd_mask": odd_mask, "empty": empty,
            "sound": folder / "sound.wav"}


def _audio_stream(path) -> str:
    import imageio_ffmpeg

    run = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    return next((line for line in run.stderr.splitlines() if "Audio:" in line), "")


def _edit_prompt(video, mask, **kw):
    (spec,) = Prompt().build("a red block walks on a road", "", "block", _reference())
    return Edit().edit(spec, video, mask, expand=kw.pop("expand", 5), box=kw.pop("box", False), **kw)[0]


def test_nodes_edit_an_mp4_source_into_an_mp4_with_its_sound(models, comfy, clips):
    video, fps = video_io.read_video(clips["source"])  # what Get Video Components hands over
    mask, _ = video_io.read_video(clips["mask"])
    sound = video_io.read_audio(clips["source"])
    prompt = _edit_prompt(video, mask, audio=sound)
    assert prompt.mode == "editing" and prompt.condition("edit").frames is None  # planned by the sampler
    (model,) = Loader().load(EDITING, "hyvae_v1_0801/", "llava-llama-3-8b-v1_1/", "openai_clip-vit-large-patch14/",
                             dtype="float32")
    frames, out_fps, seed, audio, _frames_8bit = Sampler().sample(
        model, prompt, size="64*48", guidance_scale=7.5, flow_shift=5.0, seed=11, num_frames=129, steps=2)["result"]
    assert frames.shape == (17, 48, 64, 3) and out_fps == 25.0 and seed == 11  # 19 source frames -> 4n+1
    assert audio["sample_rate"] == sound["sample_rate"] and audio["waveform"].shape[-1] == round(17 / 25 * 44100)
    assert torch.equal(audio["waveform"], sound["waveform"][..., :audio["waveform"].shape[-1]])
    path = Save().save(frames, out_fps, "edit/video", 19, audio=audio)["result"][0]
    info = video_io.video_info(path)
    assert (info["width"], info["height"], info["frames"], info["fps"]) == (64, 48, 17, 25.0)
    assert _audio_stream(path), "the saved mp4 carries the source's sound"


def test_nodes_other_size_single_mask_frame_and_mask_batch(models, comfy):
    # A 45x37 source (odd size), a one-frame MASK for every frame, the sampler asks 32*32 x 5 frames.
    video = _source(7, 37, 45)
    mask = _mask(1, 37, 45)[..., 0]  # MASK [1, H, W]
    (model,) = Loader().load(EDITING, "hyvae_v1_0801/", "llava-llama-3-8b-v1_1/", "openai_clip-vit-large-patch14/",
                             dtype="float32")
    frames, *_ = Sampler().sample(model, _edit_prompt(video, mask), size="32*32", guidance_scale=7.5, flow_shift=5.0,
                                  seed=2, num_frames=5, steps=1)["result"]
    assert frames.shape == (5, 32, 32, 3)


def _job(spec, **params):
    return Job.from_params(spec, {"size": "64*48", "num_frames": 129, "steps": 1, "seed": 3, **params})


def _generator(models, transformer=None):
    return LocalGenerator(ModelFiles(str(transformer or models.editing_transformer), str(models.vae),
                                     str(models.text_encoder), str(models.text_encoder_2)),
                          RuntimeOptions(device="cpu", dtype="float32"))


def test_two_frame_video_gives_one_frame_and_says_so(models):
    said = []
    spec = _edit_prompt(_source(2), _mask(2))
    result = _generator(models).generate(_job(spec), status=said.append)
    assert result.frames.shape == (1, 48, 64, 3)
    assert any("source 64x48, 2 frames -> 64x48, 1 frame (videos come in 4n+1 frames" in s for s in said), said


def test_all_white_mask_regenerates_everything_and_says_so(models):
    said = []
    spec = _edit_prompt(_source(5), torch.ones(5, 48, 64))
    result = _generator(models).generate(_job(spec), status=said.append)
    assert result.frames.shape == (5, 48, 64, 3)
    assert any("the mask covers every pixel, so the whole video is regenerated" in s for s in said), said


def test_video_and_mask_of_different_sizes_are_resized_not_refused_and_a_stretch_is_said(caplog):
    condition = EditCondition(_source(9), _mask(12, 20, 36))
    with caplog.at_level("WARNING"):
        job, note = _job(PromptSpec.create("p", "", "s", _reference()).with_condition(condition)).planned()
    assert job.num_frames == 9 and note == [
        "source 64x48, 9 frames -> 64x48, 9 frames; mask 36x20 has another aspect ratio than the source 64x48: "
        "it is stretched to fit, so it may miss the subject; make the mask from the source video itself"]
    assert "mask 36x20 has another aspect ratio" in caplog.text  # the console too
    assert job.spec.condition("edit").pixels.mask.shape == (9, 48, 64)
    same_aspect = EditCondition(_source(9), _mask(9, 24, 32))
    _, note = _job(PromptSpec.create("p", "", "s", _reference()).with_condition(same_aspect)).planned()
    assert note == ["source 64x48, 9 frames -> 64x48, 9 frames; mask 32x24 scaled to the source's 64x48"]


def test_empty_masks_are_refused_before_anything_loads(models, monkeypatch):
    with pytest.raises(ValueError, match="HunyuanCustom Edit: mask: it is empty in every frame .*nothing to replace"):
        _edit_prompt(_source(5), torch.zeros(5, 48, 64, 3))
    # Not empty, but an erosion leaves nothing: refused when the sampler plans the job.
    thin = torch.zeros(5, 48, 64)
    thin[:, 20:22, 10:50] = 1.0
    spec = _edit_prompt(_source(5), thin, expand=-9)
    from hunyuan_custom.pipelines.text_encoders import cache

    monkeypatch.setattr(cache, "encode_text_conditioning", lambda *a, **k: pytest.fail("the text stage ran"))
    with pytest.raises(ConditionError, match="empty in every frame after expand -9"):
        _generator(models).generate(_job(spec))


def test_a_video_without_frames_and_bad_values_are_named():
    for empty in (torch.zeros(0, 48, 64, 3), torch.zeros(0, 3, 0, 0)):  # the latter: core GetVideoComponents'
        with pytest.raises(ValueError, match="HunyuanCustom Edit: video: has no frames"):
            _edit_prompt(empty, _mask(1))
    with pytest.raises(ValueError, match="HunyuanCustom Edit: expand = 31 is not valid"):
        _edit_prompt(_source(5), _mask(5), expand=31)
    with pytest.raises(ValueError, match="pose: has 2 frames but the edit uses 5"):
        (spec,) = Prompt().build("p", "", "s", _reference())
        prompt = Edit().edit(spec, _source(5), _mask(5), 5, False, pose=_source(2))[0]
        prompt.condition("edit").plan(_job(prompt))


def test_integer_pcm_sound_is_passed_on_as_floats():
    pcm = {"waveform": torch.tensor([[[0, 16384, -32768, 32767]]], dtype=torch.int16), "sample_rate": 4}
    audio = EditCondition(_source(5), _mask(5), audio=pcm).output_audio(num_frames=5, fps=25.0)
    assert audio["waveform"].dtype == torch.float32 and audio["waveform"].tolist() == [[[0.0]]]  # 0.2 s at 4 Hz -> 1
    full = EditCondition(_source(5), _mask(5), audio=pcm).output_audio(num_frames=25, fps=25.0)
    assert full["waveform"].tolist() == [[[0.0, 0.5, -1.0, 32767 / 32768]]]


def test_edit_with_another_checkpoint_or_remotely_is_refused_before_anything_runs(models, monkeypatch):
    import requests

    spec = _edit_prompt(_source(5), _mask(5))
    with pytest.raises(CheckpointModeError, match="HunyuanCustom Edit node needs the editing checkpoint") as info:
        _generator(models, models.transformer).generate(_job(spec))
    assert "--video FILE --mask FILE needs the editing checkpoint" in info.value.cli_message
    monkeypatch.setattr(requests.Session, "request", lambda *a, **k: pytest.fail("a request was sent"))
    with pytest.raises(ValueError, match="cannot edit a video.*Sampler \\(local\\)"):
        Remote().generate(spec, size="1280*720", guidance_scale=7.5, flow_shift=5.0, seed=1, enable_safety_checker=True)


# ------------------------------------------------------------------------------------------ CLI

def _cli(models, ref_png, out, *extra):
    return run_cli(local_argv(models, ref_png, out, "--steps", "1", "--seed", "5", *extra,
                              transformer=models.editing_transformer, prompt="a red block"))


def test_cli_edits_at_the_sources_size_and_length_with_its_sound(models, ref_png, clips, tmp_path):
    out = tmp_path / "edit.mp4"
    run = _cli(models, ref_png, out, "--video", clips["source"], "--mask", clips["mask"])
    assert run.returncode == 0, run.stderr
    info = video_io.video_info(out)
    assert (info["width"], info["height"], info["frames"], info["fps"]) == (64, 48, 17, 25.0)
    assert "source 64x48, 19 frames -> 64x48, 17 frames" in run.stderr
    assert _audio_stream(out)


def test_cli_says_when_the_mask_is_the_limit_and_when_the_frame_rate_changes(models, ref_png, clips, tmp_path):
    """A 5-frame mask cuts the edit to 5 frames, a 30 fps source plays at 25 fps: both said, not silent."""
    source = video_io.write_video(tmp_path / "at30.mp4", _source(13), 30)
    short_mask = video_io.write_video(tmp_path / "short_mask.mp4", _mask(5), 30)
    out = tmp_path / "edit.mp4"
    run = _cli(models, ref_png, out, "--video", source, "--mask", short_mask)
    assert run.returncode == 0, run.stderr
    assert video_io.video_info(out)["frames"] == 5
    assert "source 64x48, 13 frames -> 64x48, 5 frames; the mask has only 5 frames, so the edit ends there" in run.stderr
    assert ("note: the source is 30 fps; the edit keeps every frame at 25 fps, so it plays 1.2x slower than the "
            "source") in run.stderr


def test_cli_rounds_an_odd_size_down_to_16s_with_a_notice_and_takes_a_pose(models, ref_png, clips, tmp_path):
    out = tmp_path / "odd.mp4"
    run = _cli(models, ref_png, out, "--video", clips["odd"], "--mask", clips["odd_mask"], "--expand", "-2",
               "--mask-box", "--pose", clips["odd"])
    assert run.returncode == 0, run.stderr
    assert "note: the source is 70x50; the edit is 64x48" in run.stderr
    info = video_io.video_info(out)
    assert (info["width"], info["height"], info["frames"]) == (64, 48, 9)
    assert not _audio_stream(out)  # the source has no sound


@pytest.mark.parametrize("case, words", [
    ("empty", "--mask {empty}: it is empty in every frame"),
    ("no-frames", "--video: {sound} has no video stream (it holds only sound)"),
    ("mask-only", "editing needs both --video FILE and --mask FILE"),
    ("no-mask-file", "--mask: video file not found: {source}.missing"),
    ("no-pose-file", "--pose: video file not found: {source}.missing"),
])
def test_cli_bad_edit_inputs_one_line_exit_2(models, ref_png, clips, tmp_path, case, words):
    missing = str(clips["source"]) + ".missing"
    args = {"empty": ["--video", str(clips["source"]), "--mask", str(clips["empty"])],
            "no-frames": ["--video", str(clips["sound"]), "--mask", str(clips["mask"])],
            "mask-only": ["--mask", str(clips["mask"])],
            "no-mask-file": ["--video", str(clips["source"]), "--mask", missing],
            "no-pose-file": ["--video", str(clips["source"]), "--mask", str(clips["mask"]), "--pose", missing]}[case]
    out = tmp_path / "bad.mp4"
    line = error_line(_cli(models, ref_png, out, *args))
    assert words.format(**{k: str(v) for k, v in clips.items()}) in line
    assert not out.exists()
