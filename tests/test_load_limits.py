"""Small hostile media files cannot take a Load node's memory with the default settings: a few KB
of black 720p frames, an 8K video, a long mostly silent FLAC behind a video or alone, a large
picture. Peak memory is measured in a child process (VmHWM, reset before each load), and what was
loaded is checked with it: the cut, the note saying how to get more, the sound kept to the frames."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import imageio_ffmpeg
import pytest
from PIL import Image

from hunyuan_custom.nodes import comfy
from hunyuan_custom.nodes.load_audio import HunyuanCustomLoadAudio
from hunyuan_custom.nodes.load_image import HunyuanCustomLoadImage
from hunyuan_custom.nodes.load_video import HunyuanCustomLoadVideo
from hunyuan_custom.pipelines.media import limits

ROOT = Path(__file__).resolve().parents[1]
GB = 2**30


def ffmpeg(*args: str) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-nostdin", "-y", *args], check=True)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("input")
    # 400 black 1280x720 frames (16 s) with a 30-minute silent sound track: about 60 KB
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=1280x720:r=25:d=16", "-f", "lavfi", "-i",
           "anullsrc=r=44100:cl=stereo:nb_samples=44100:d=1800", "-map", "0:v", "-map", "1:a", "-c:v", "libx264",
           "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "flac", "-compression_level", "0",
           str(folder / "black720.mkv"))
    # two 8K frames: about 100 KB
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=7680x4320:r=25:d=0.08", "-c:v", "libx264", "-preset", "ultrafast",
           "-pix_fmt", "yuv420p", str(folder / "huge8k.mp4"))
    # a second of tone, then 20 minutes of silence: about 700 KB
    ffmpeg("-f", "lavfi", "-i", "sine=f=440:d=1", "-f", "lavfi", "-i", "anullsrc=r=44100:cl=mono:nb_samples=44100:d=1199",
           "-filter_complex", "[0][1]concat=n=2:v=0:a=1", "-c:a", "flac", "-compression_level", "0",
           str(folder / "long.flac"))
    Image.new("RGBA", (4000, 4000), (0, 0, 0, 0)).save(folder / "big.png")  # 16 megapixels, about 60 KB
    Image.new("L", (8000, 8000)).save(folder / "huge.png")  # 64 megapixels: over the limit
    assert all(f.stat().st_size < 10 << 20 for f in folder.iterdir())
    return folder


CHILD = textwrap.dedent("""
    import importlib.util, json, os, sys
    root, folder = sys.argv[1], sys.argv[2]
    spec = importlib.util.spec_from_file_location("hunyuan_custom", os.path.join(root, "__init__.py"),
                                                  submodule_search_locations=[root])
    package = importlib.util.module_from_spec(spec)
    sys.modules["hunyuan_custom"] = package
    spec.loader.exec_module(package)
    os.environ["HYC_INPUT_DIR"] = folder
    from hunyuan_custom.nodes import comfy
    from hunyuan_custom.nodes.load_audio import HunyuanCustomLoadAudio
    from hunyuan_custom.nodes.load_image import HunyuanCustomLoadImage
    from hunyuan_custom.nodes.load_video import HunyuanCustomLoadVideo
    import gc, torch

    notes = []
    comfy.note = lambda message, node_id=None: notes.append(message)

    def peak_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024

    results = {}
    for label, call in [
        ("video720", lambda: HunyuanCustomLoadVideo().load("black720.mkv")),
        ("video8k", lambda: HunyuanCustomLoadVideo().load("huge8k.mp4")),
        ("flac", lambda: HunyuanCustomLoadAudio().load("long.flac")),
        ("image16mp", lambda: HunyuanCustomLoadImage().load("big.png")),
        ("image64mp", lambda: HunyuanCustomLoadImage().load("huge.png")),
    ]:
        gc.collect()
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # the peak starts again from what is resident now
        before, notes[:] = peak_mb(), []
        try:
            out = call()
            shapes = [list(v.shape) if hasattr(v, "shape") else
                      (list(v["waveform"].shape) if isinstance(v, dict) else v) for v in out]
            error = None
        except ValueError as exc:
            shapes, error = None, str(exc)
        out = None
        results[label] = {"peak_mb": peak_mb(), "before_mb": before, "shapes": shapes, "error": error,
                          "notes": list(notes)}
    print(json.dumps(results))
""")


@pytest.fixture(scope="module")
def measured(hostile) -> dict:
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux's /proc/self/clear_refs to measure a peak per load")
    run = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), str(hostile)], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout.strip().splitlines()[-1])
    for label, result in results.items():  # the figures, for whoever reads the test log
        print(f"{label}: peak {result['peak_mb']:.0f} MB (from {result['before_mb']:.0f} MB)")
    return results


def test_many_black_720p_frames_stop_at_the_default_cap_with_the_sound_of_those_frames(measured):
    result = measured["video720"]
    frames, audio, fps = result["shapes"]
    assert frames == [limits.DEFAULT_MAX_FRAMES, 720, 1280, 3] and fps == 25.0
    assert abs(audio[2] - 44100 * limits.DEFAULT_MAX_FRAMES / 25) < 2048  # 5.16 s of the 30-minute track
    assert result["notes"] and "frame_load_cap" in result["notes"][0]
    # the frames themselves take 1.4 GB (129 * 1280*720*12 bytes); nothing more than about one copy
    assert result["peak_mb"] - result["before_mb"] < 1.2 * 129 * 1280 * 720 * 12 / 2**20 + 300


def test_an_8k_video_is_refused_before_a_frame_is_decoded(measured):
    result = measured["video8k"]
    assert result["shapes"] is None and "7680x4320" in result["error"] and "scale the video down" in result["error"]
    assert "/" not in result["error"].split("'huge8k.mp4'", 1)[1]  # no server path in the message
    assert result["peak_mb"] - result["before_mb"] < 150


def test_a_long_flac_is_cut_at_the_default_ten_minutes(measured):
    result = measured["flac"]
    assert result["shapes"][0] == [1, 1, 44100 * limits.DEFAULT_MAX_SECONDS]
    assert result["notes"] and "max_seconds" in result["notes"][0]
    assert result["peak_mb"] - result["before_mb"] < 4 * 44100 * 600 * 4 / 2**20 + 200  # a few copies of 106 MB


def test_a_big_picture_is_converted_without_float64(measured):
    result = measured["image16mp"]
    assert result["shapes"] == [[1, 4000, 4000, 3], [1, 4000, 4000]]
    assert result["peak_mb"] - result["before_mb"] < 16e6 * 30 / 2**20  # float64 alone took 32 bytes a pixel
    huge = measured["image64mp"]
    assert huge["shapes"] is None and "too large" in huge["error"] and huge["peak_mb"] - huge["before_mb"] < 100


def test_the_limits_are_widgets_that_raise_or_lower_them(hostile, monkeypatch):
    monkeypatch.setenv("HYC_INPUT_DIR", str(hostile))
    notes = []
    monkeypatch.setattr(comfy, "note", lambda message, node_id=None: notes.append(message))
    frames, audio, _ = HunyuanCustomLoadVideo().load("black720.mkv", frame_load_cap=5)
    assert frames.shape[0] == 5 and abs(audio["waveform"].shape[2] - 44100 * 5 / 25) < 2048
    frames, _, _ = HunyuanCustomLoadVideo().load("black720.mkv", frame_load_cap=0, memory_limit_gb=0.05)
    assert frames.shape[0] == int(0.05 * GB) // (1280 * 720 * 12)
    assert "memory_limit_gb" in notes[-1]
    (clip,) = HunyuanCustomLoadAudio().load("long.flac", max_seconds=2)
    assert clip["waveform"].shape == (1, 1, 88200) and "max_seconds" in notes[-1]
    with pytest.raises(ValueError, match="memory limit"):
        HunyuanCustomLoadVideo().load("black720.mkv", memory_limit_gb=0.005)


def test_the_defaults_are_what_the_widgets_show():
    types = HunyuanCustomLoadVideo.INPUT_TYPES()
    video = {**types["required"], **types["optional"]}
    assert video["frame_load_cap"][1]["default"] == limits.DEFAULT_MAX_FRAMES == 129
    assert video["memory_limit_gb"][1]["default"] == limits.DEFAULT_MEMORY_GB
    assert video["frame_load_cap"][1]["max"] >= 1501  # a 60 s video at 25 fps, when raised
    audio = HunyuanCustomLoadAudio.INPUT_TYPES()["optional"]
    assert audio["max_seconds"][1]["default"] == limits.DEFAULT_MAX_SECONDS == 600
