"""Video files: round trip, no overwrite, no partial file, clear errors."""

from __future__ import annotations

import pytest
import torch

from hunyuan_custom.pipelines.media import video_io


def _frames(n=9, h=48, w=80):
    g = torch.Generator().manual_seed(0)
    base = torch.rand(1, h, w, 3, generator=g)
    ramp = torch.linspace(0, 1, n).view(n, 1, 1, 1)
    return (base * 0.5 + ramp * 0.5).clamp(0, 1)


def test_round_trip_keeps_count_size_and_fps(tmp_path):
    frames = _frames()
    out = video_io.write_video(tmp_path / "a.mp4", frames, fps=25, crf=10, metadata={"comment": "hello"})
    info = video_io.video_info(out)
    assert (info["width"], info["height"], info["frames"], info["fps"]) == (80, 48, 9, 25.0)
    back, fps = video_io.read_video(out)
    assert back.shape == frames.shape and fps == 25.0
    # Lossy codec, but the content must survive (mean brightness per frame follows the ramp).
    assert torch.allclose(back.mean(dim=(1, 2, 3)), frames.mean(dim=(1, 2, 3)), atol=0.03)
    assert [p.name for p in tmp_path.iterdir()] == ["a.mp4"]


def test_never_overwrites(tmp_path):
    target = tmp_path / "keep.mp4"
    target.write_bytes(b"user data")
    with pytest.raises(video_io.VideoError, match="already exists"):
        video_io.write_video(target, _frames(), fps=25)
    assert target.read_bytes() == b"user data"


def test_cancel_leaves_no_partial_file(tmp_path):
    calls = []

    def cancel():
        calls.append(1)
        if len(calls) > 3:
            raise KeyboardInterrupt("cancelled")

    with pytest.raises(KeyboardInterrupt):
        video_io.write_video(tmp_path / "x.mp4", _frames(), fps=25, should_cancel=cancel)
    assert list(tmp_path.iterdir()) == []


def test_odd_size_and_bad_files_are_named(tmp_path):
    with pytest.raises(video_io.VideoError, match="even width"):
        video_io.write_video(tmp_path / "odd.mp4", _frames(w=81), fps=25)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(video_io.VideoError, match="bad.mp4"):
        video_io.read_video(bad)
    with pytest.raises(video_io.VideoError, match="not found"):
        video_io.read_video(tmp_path / "missing.mp4")
