"""Video files: round trip, no overwrite, no partial file, clear errors."""

from __future__ import annotations

import pytest
import torch

from _full_disk import full_disk_ffmpeg
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


@pytest.mark.parametrize("metadata", [None, {"workflow": "x" * 50_000}], ids=["video", "metadata"])
def test_a_full_disk_is_an_error_and_leaves_no_file(tmp_path, monkeypatch, metadata):
    """ffmpeg says 'Error writing trailer: ...' and exits non-zero: that is a failure, never a
    broken mp4 in place of the output (the first limit stops the encode, the second the tags)."""
    tools = tmp_path / "tools"
    tools.mkdir()
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", full_disk_ffmpeg(tools, 1024 if metadata is None else 8192))
    out = tmp_path / "out"
    with pytest.raises(video_io.VideoError) as caught:
        video_io.write_video(out / "a.mp4", _frames(), fps=25, metadata=metadata)
    message = str(caught.value)
    assert "a.mp4" in message and "File too large" in message and "nothing was saved" in message, message
    assert "free some space" in message
    assert list(out.iterdir()) == []  # neither the output nor a temporary file


def test_an_ffmpeg_that_quits_early_is_an_error_with_its_reason(tmp_path, monkeypatch):
    """A broken pipe while sending frames is no success either: ffmpeg's own last line says why."""
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\necho \"Unknown encoder 'libx264'\" >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(fake))
    out = tmp_path / "out"
    with pytest.raises(video_io.VideoError, match="Unknown encoder 'libx264'"):
        video_io.write_video(out / "a.mp4", _frames(n=40, h=256, w=256), fps=25)
    assert list(out.iterdir()) == []


def test_a_file_short_of_frames_is_not_saved(tmp_path, monkeypatch):
    """The last guard: the written file must hold every frame sent (e.g. an encoder that stopped early
    but exited 0)."""
    import imageio_ffmpeg

    monkeypatch.setattr(imageio_ffmpeg, "count_frames_and_secs", lambda path: (3, 0.12))
    with pytest.raises(video_io.VideoError, match="holds 3 of 9 frames"):
        video_io.write_video(tmp_path / "a.mp4", _frames(), fps=25)
    assert list(tmp_path.iterdir()) == []


def test_a_long_video_is_made_8_bit_a_few_frames_at_a_time(tmp_path, monkeypatch):
    """Save Video's path: the float frames are never copied whole (60 s of 720p would be 4 GB more)."""
    frames = torch.rand(40, 16, 16, 3)
    sizes = []
    convert = video_io.frames_to_uint8

    def spy(part):
        sizes.append(part.shape[0])
        return convert(part)

    monkeypatch.setattr(video_io, "frames_to_uint8", spy)
    path = video_io.write_video(tmp_path / "long.mp4", frames, fps=25, crf=0)
    assert sum(sizes) == 40 and max(sizes) <= video_io.ENCODE_CHUNK_FRAMES
    monkeypatch.undo()
    back, _fps = video_io.read_video(path)
    assert back.shape == frames.shape
