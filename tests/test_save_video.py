"""HunyuanCustomSaveVideo: what lands on disk (size, frames, fps, audio, metadata, names)."""

from __future__ import annotations

import json
import math
import os
import re
import stat
import subprocess

import pytest
import torch

from _full_disk import full_disk_ffmpeg
from hunyuan_custom.nodes.save_video import HunyuanCustomSaveVideo, file_size, video_metadata
from hunyuan_custom.pipelines.media import save_paths
from hunyuan_custom.pipelines.media import video_io
from hunyuan_custom.pipelines.media.metadata_scrub import REDACTED, is_secret_name, scrub

KEY_MARKER = "wsk-TEST-MARKER-8c1f0e7d"


@pytest.fixture
def output_dir(tmp_path, monkeypatch):
    out = tmp_path / "output"
    monkeypatch.setenv("HYC_OUTPUT_DIR", str(out))
    monkeypatch.setenv("WAVESPEED_CONFIG_FILE", str(tmp_path / "no-config.json"))
    monkeypatch.delenv("WAVESPEED_API_KEY", raising=False)
    return out


def _frames(n=5, h=32, w=48):
    ramp = torch.linspace(0, 1, n).view(n, 1, 1, 1)
    return ramp.expand(n, h, w, 3).contiguous()


def _save(**kwargs):
    args = {"frames": _frames(), "fps": 25.0, "filename_prefix": "HunyuanCustom/video", "crf": 19}
    args.update(kwargs)
    return HunyuanCustomSaveVideo().save(**args)


def test_written_file_has_the_frames_size_and_fps_and_ui_answer(output_dir):
    out = _save(frames=_frames(7, 32, 48), fps=12.5)
    path = out["result"][0]
    assert path == str(output_dir / "HunyuanCustom" / "video_00001_.mp4")
    info = video_io.video_info(path)
    assert (info["width"], info["height"], info["frames"], info["fps"]) == (48, 32, 7, 12.5)
    assert out["ui"] == {"images": [{"filename": "video_00001_.mp4", "subfolder": "HunyuanCustom", "type": "output"}],
                         "animated": (True,), "text": [
                             "saved HunyuanCustom/video_00001_.mp4",
                             f"7 frames, 48*32, 12.5 fps, {round(os.path.getsize(path) / 1e3)} KB"]}
    assert (file_size(2_345_678), file_size(41_200), file_size(300)) == ("2.3 MB", "41 KB", "1 KB")
    # Nothing else left behind (no partial or temporary files).
    assert sorted(p.name for p in (output_dir / "HunyuanCustom").iterdir()) == ["video_00001_.mp4"]


def test_counter_increments_and_never_overwrites(output_dir):
    folder = output_dir / "clips"
    folder.mkdir(parents=True)
    (folder / "shot_00003_.mp4").write_bytes(b"user file 3")
    (folder / "shot_00001_.png").write_bytes(b"user file 1")
    (folder / "other_00009_.mp4").write_bytes(b"other prefix")
    first = _save(filename_prefix="clips/shot")["result"][0]
    second = _save(filename_prefix="clips/shot")["result"][0]
    assert first.endswith("shot_00004_.mp4") and second.endswith("shot_00005_.mp4")
    assert (folder / "shot_00003_.mp4").read_bytes() == b"user file 3"
    assert (folder / "other_00009_.mp4").read_bytes() == b"other prefix"


def test_a_name_taken_meanwhile_is_skipped_not_replaced(output_dir, monkeypatch):
    # Simulate another run creating our chosen file between numbering and writing.
    real = video_io.write_video
    taken = []

    def racing_write(path, *a, **k):
        if not taken:
            taken.append(path)
            output_dir.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as f:
                f.write(b"the other run's video")
        return real(path, *a, **k)

    monkeypatch.setattr(video_io, "write_video", racing_write)
    path = _save(filename_prefix="race")["result"][0]
    assert path.endswith("race_00002_.mp4")
    assert open(taken[0], "rb").read() == b"the other run's video"


def test_prefix_outside_output_folder_is_refused(output_dir):
    with pytest.raises(save_paths.SavePathError, match="outside the output folder"):
        _save(filename_prefix="../escape/video")
    message = HunyuanCustomSaveVideo.VALIDATE_INPUTS(filename_prefix="/abs/video")
    assert isinstance(message, str) and "outside" in message
    assert HunyuanCustomSaveVideo.VALIDATE_INPUTS(filename_prefix="ok/video") is True
    assert HunyuanCustomSaveVideo.VALIDATE_INPUTS(filename_prefix=None) is True  # linked: checked at run time


def test_fps_and_crf_are_checked_at_run_time_when_linked(output_dir):
    # Not named in VALIDATE_INPUTS (ComfyUI checks literal values against min/max), so a linked
    # value must be refused when the node runs.
    with pytest.raises(ValueError, match="crf"):
        _save(crf=60)
    with pytest.raises(ValueError, match="fps"):
        _save(fps=0.0)


def test_odd_size_is_cropped_to_even(output_dir):
    path = _save(frames=_frames(3, 33, 51))["result"][0]
    info = video_io.video_info(path)
    assert (info["width"], info["height"], info["frames"]) == (50, 32, 3)


def test_audio_is_muxed_as_aac_and_trimmed_to_the_video(output_dir):
    rate = 16000
    t = torch.arange(rate * 3) / rate  # 3 s of audio for a 1 s video
    wave = torch.sin(2 * math.pi * 440 * t).view(1, 1, -1).repeat(1, 2, 1) * 0.5
    answer = _save(frames=_frames(25), fps=25.0, audio={"waveform": wave, "sample_rate": rate})
    path = answer["result"][0]
    assert answer["ui"]["text"][1].endswith(", with audio")
    import imageio_ffmpeg

    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", path], capture_output=True, text=True).stderr
    assert re.search(r"Stream #0:\d.*Audio: aac", probe), probe
    duration = re.search(r"Duration: (\d+):(\d+):([\d.]+)", probe)
    seconds = int(duration[1]) * 3600 + int(duration[2]) * 60 + float(duration[3])
    assert seconds < 1.5  # trimmed, not the 3 s of input audio
    assert video_io.video_info(path)["frames"] == 25


def test_metadata_holds_prompt_workflow_parameters_and_never_the_key(output_dir, monkeypatch):
    monkeypatch.setenv("WAVESPEED_API_KEY", KEY_MARKER)
    prompt = {
        "3": {"class_type": "HunyuanCustomWaveSpeed",
              "inputs": {"size": "1280*720", "seed": 42, "prompt": ["2", 0], "note": f"key is {KEY_MARKER}"}},
        "7": {"class_type": "SomeOtherPack", "inputs": {"api_key": "sk-other-secret-1234", "steps": 4}},
        "9": {"class_type": "HunyuanCustomSaveVideo", "inputs": {"frames": ["3", 0], "fps": 25.0}},
    }
    workflow = {"nodes": [{"id": 3, "type": "HunyuanCustomWaveSpeed", "widgets_values": ["1280*720", KEY_MARKER]}],
                "extra": {"token": "ghp-secret-in-workflow"}}
    path = _save(prompt=prompt, extra_pnginfo={"workflow": workflow})["result"][0]
    data = open(path, "rb").read()
    assert KEY_MARKER.encode() not in data
    assert b"sk-other-secret-1234" not in data and b"ghp-secret-in-workflow" not in data
    tags = video_io.read_metadata(path)
    saved_prompt = json.loads(tags["prompt"])
    assert saved_prompt["3"]["inputs"]["size"] == "1280*720" and saved_prompt["3"]["inputs"]["seed"] == 42
    assert saved_prompt["7"]["inputs"] == {"api_key": REDACTED, "steps": 4}
    saved_workflow = json.loads(tags["workflow"])
    assert saved_workflow["nodes"][0]["widgets_values"] == ["1280*720", REDACTED]
    comment = json.loads(tags["comment"])["HunyuanCustom"]
    assert comment["3"]["inputs"]["size"] == "1280*720" and "prompt" not in comment["3"]["inputs"]  # links left out
    assert set(comment) == {"3", "9"}


def test_metadata_can_be_switched_off_like_core(output_dir, monkeypatch):
    from hunyuan_custom.nodes import comfy

    monkeypatch.setattr(comfy, "metadata_disabled", lambda: True)
    path = _save(prompt={"1": {"class_type": "X", "inputs": {}}}, extra_pnginfo={"workflow": {"a": 1}})["result"][0]
    tags = video_io.read_metadata(path)
    assert "prompt" not in tags and "workflow" not in tags


def test_secret_names_and_values():
    assert all(is_secret_name(n) for n in ("api_key", "apiKey", "API-KEY", "token", "wavespeed_token", "secret",
                                           "password", "access_token", "key"))
    assert not any(is_secret_name(n) for n in ("keyframes", "monkey", "size", "seed", "prompt", "tokenizer"))
    assert scrub({"max_tokens": 5, "token": "abc"}) == {"max_tokens": 5, "token": REDACTED}  # numbers are no secret
    assert scrub(["x-SECRETVALUE-y"], secrets=["SECRETVALUE"]) == [f"x-{REDACTED}-y"]
    assert video_metadata(None, None) == {}


def test_empty_or_bad_input_errors_are_clear(output_dir):
    with pytest.raises(ValueError, match="empty"):
        _save(frames=torch.zeros(0, 32, 32, 3))
    with pytest.raises(ValueError, match="fps"):
        _save(fps=0.0)
    from hunyuan_custom.pipelines.media.wav_io import AudioError

    with pytest.raises(AudioError, match="waveform"):
        _save(audio={"waveform": torch.zeros(2, 100), "sample_rate": 16000})
    assert not any(p.suffix == ".mp4" for p in output_dir.rglob("*"))


@pytest.fixture
def umask():
    """Set the process umask for one test (and put the old one back)."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def test_saved_videos_get_the_usual_permissions_for_the_umask(output_dir, tmp_path, umask):
    # Core's SaveVideo writes -rw-r--r-- with umask 022; a private -rw------- file (what mkstemp makes)
    # cannot be read by a server or another user looking at the output folder.
    plain = _save()["result"][0]
    tagged = _save(prompt={"1": {"class_type": "HunyuanCustomSaveVideo", "inputs": {"fps": 25.0}}})["result"][0]
    direct = video_io.write_video(tmp_path / "cli.mp4", _frames(), fps=25)  # the CLI's way
    assert "prompt" in video_io.read_metadata(tagged)
    for path in (plain, tagged, direct):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644, path
    umask(0o077)
    private = video_io.write_video(tmp_path / "private.mp4", _frames(), fps=25)
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600


def test_a_full_disk_is_a_node_error_and_saves_nothing(output_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", full_disk_ffmpeg(tmp_path, 1024))
    with pytest.raises(video_io.VideoError) as caught:
        _save()
    message = str(caught.value)
    assert message.startswith("HunyuanCustom Save Video: could not write video"), message
    assert "File too large" in message and "nothing was saved" in message
    assert [p for p in output_dir.rglob("*") if p.is_file()] == []
