"""Video files in and out with imageio-ffmpeg (its bundled ffmpeg; no system install needed).

Frames are ComfyUI IMAGE batches: float32 [F, H, W, 3] in 0..1.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np
import torch


class VideoError(RuntimeError):
    """A video file could not be read or written; the message names the file."""


def new_partial_file(folder: str | os.PathLike, suffix: str) -> str:
    """Create an empty, uniquely named `.partial-*` file in `folder` and return its path.

    Why not tempfile.mkstemp: its files are private (0600), and a finished video is this file
    renamed, so the user's umask must decide, as for any file a program saves (0644 with the
    usual umask 022), or a server or another user cannot read the output folder."""
    name = os.path.join(os.fspath(folder), f".partial-{uuid.uuid4().hex}{suffix}")
    os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # the kernel applies the umask
    return name


def frames_to_uint8(frames: torch.Tensor) -> np.ndarray:
    """[F,H,W,3] float 0..1 -> contiguous uint8 array (rounded, clamped)."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise VideoError(f"expected frames shaped [frames, height, width, 3], got {tuple(frames.shape)}")
    arr = (frames.detach().to("cpu", torch.float32).clamp(0, 1) * 255.0).round().to(torch.uint8)
    return np.ascontiguousarray(arr.numpy())


def write_video(
    path: str | os.PathLike,
    frames: torch.Tensor,
    fps: float,
    crf: int = 19,
    metadata: Mapping[str, str] | None = None,
    audio_path: str | None = None,
    should_cancel: Callable[[], None] | None = None,
) -> Path:
    """Encode frames to an H.264/yuv420p mp4 at `path`.

    Written to a temporary file beside the target and renamed at the end, so a failure or a
    cancel never leaves a partial file, and an existing file is never overwritten.
    `metadata` becomes mp4 tags (any key: `prompt`, `workflow`, ... like ComfyUI's savers).
    """
    path = Path(path)
    if path.exists():
        raise VideoError(f"{path} already exists; refusing to overwrite it")
    data = frames_to_uint8(frames)
    count, height, width, _ = data.shape
    if width % 2 or height % 2:
        raise VideoError(f"H.264/yuv420p needs even width and height, got {width}x{height} for {path}")
    output_params = ["-crf", str(int(crf)), "-movflags", "+faststart"]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_name = new_partial_file(path.parent, ".mp4")
    import imageio_ffmpeg

    writer = None
    try:
        writer = imageio_ffmpeg.write_frames(
            tmp_name, (width, height), fps=float(fps), codec="libx264", pix_fmt_out="yuv420p",
            quality=None, macro_block_size=1, output_params=output_params, ffmpeg_log_level="error",
            audio_path=audio_path, audio_codec="aac" if audio_path else None,
        )
        writer.send(None)
        for i in range(count):
            if should_cancel is not None:
                should_cancel()
            writer.send(data[i])
        writer.close()
        writer = None
        if os.path.getsize(tmp_name) == 0:
            raise VideoError(f"ffmpeg wrote nothing for {path}")
        if metadata:
            _add_metadata(tmp_name, metadata, path)
        os.link(tmp_name, path)  # fails instead of replacing if the target appeared meanwhile
    except FileExistsError:
        raise VideoError(f"{path} already exists; refusing to overwrite it") from None
    except (RuntimeError, OSError, BrokenPipeError) as exc:
        if isinstance(exc, VideoError):
            raise
        raise VideoError(f"could not write video {path}: {exc}") from exc
    finally:
        if writer is not None:  # stop ffmpeg before removing its half-written file
            try:
                writer.close()
            except Exception:
                pass
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
    return path


def _ffmetadata_escape(text: str) -> str:
    return "".join("\\" + c if c in "=;#[\\\n" else c for c in text)


def _add_metadata(video_file: str, metadata: Mapping[str, str], target: Path) -> None:
    """Rewrite `video_file` in place with `metadata` as mp4 tags (stream copy, no re-encode).

    Why not `-metadata k=v` while encoding: a workflow JSON can exceed Linux's 128 KiB limit
    for one command-line argument, so the tags go through an FFMETADATA file instead; and the
    mp4 muxer keeps custom keys (`prompt`, `workflow`) only with `use_metadata_tags`.
    """
    import subprocess

    import imageio_ffmpeg

    folder = os.path.dirname(video_file)
    fd, meta_name = tempfile.mkstemp(prefix=".partial-", suffix=".txt", dir=folder)
    tagged_name = new_partial_file(folder, ".mp4")  # becomes the video: the usual permissions
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(";FFMETADATA1\n")
            for key, value in metadata.items():
                handle.write(f"{_ffmetadata_escape(str(key))}={_ffmetadata_escape(str(value))}\n")
        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", video_file, "-f", "ffmetadata",
            "-i", meta_name, "-map", "0", "-map_metadata", "1", "-c", "copy",
            "-movflags", "+faststart+use_metadata_tags", tagged_name,
        ]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode != 0 or os.path.getsize(tagged_name) == 0:
            raise VideoError(f"could not write the metadata of {target}: {run.stderr.strip()[-500:]}")
        os.replace(tagged_name, video_file)  # both are our own temporary files
    finally:
        for name in (meta_name, tagged_name):
            try:
                os.unlink(name)
            except OSError:
                pass


def video_info(path: str | os.PathLike) -> dict:
    """Width, height, fps, frame count (as ffmpeg reports them) of a video file."""
    import imageio_ffmpeg

    gen = _open(path)
    try:
        meta = gen.__next__()
    finally:
        gen.close()
    count, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    width, height = meta["size"]
    return {"width": width, "height": height, "fps": float(meta["fps"]), "frames": int(count)}


def _open(path: str | os.PathLike) -> Iterator:
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise VideoError(f"video file not found: {path}")
    try:
        return imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    except Exception as exc:  # pragma: no cover - imageio raises lazily, below
        raise VideoError(f"could not open video {path}: {exc}") from exc


def read_video(
    path: str | os.PathLike, should_cancel: Callable[[], None] | None = None, max_frames: int | None = None
) -> tuple[torch.Tensor, float]:
    """Decode a video file into ([F,H,W,3] float32 0..1, fps)."""
    video, fps = read_video_uint8(path, should_cancel, max_frames)
    return video.to(torch.float32) / 255.0, fps


def read_video_uint8(
    path: str | os.PathLike, should_cancel: Callable[[], None] | None = None, max_frames: int | None = None
) -> tuple[torch.Tensor, float]:
    """Decode a video file (or a single image, as one frame) into ([F,H,W,3] uint8, fps): a quarter
    of the float frames' memory, for long sources."""
    gen = _open(path)
    frames: list[np.ndarray] = []
    try:
        meta = gen.__next__()
        width, height = meta["size"]
        for raw in gen:
            if should_cancel is not None:
                should_cancel()
            frames.append(np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3))
            if max_frames is not None and len(frames) >= max_frames:
                break
    except (RuntimeError, OSError, StopIteration, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]  # not ffmpeg's whole banner
        raise VideoError(f"{path} is not a readable video ({first})") from exc
    finally:
        gen.close()
    if not frames:
        raise VideoError(f"{path} holds no video frames")
    return torch.from_numpy(np.stack(frames)), float(meta.get("fps") or 0.0)


def read_audio(path: str | os.PathLike, sample_rate: int = 44100, channels: int = 2) -> dict | None:
    """The first audio stream of a media file as a ComfyUI AUDIO ({"waveform": [1, C, N] float32,
    "sample_rate": int}), decoded by ffmpeg at `sample_rate` / `channels`; None when it has none."""
    import subprocess

    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise VideoError(f"file not found: {path}")
    run = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:a:0?", "-vn",
         "-ac", str(channels), "-ar", str(sample_rate), "-f", "f32le", "-"],
        capture_output=True,
    )
    if run.returncode != 0 and b"does not contain any stream" in run.stderr:
        return None  # no audio stream ("0:a:0?" mapped nothing)
    if run.returncode != 0:
        raise VideoError(f"could not read the audio of {path}: {run.stderr.decode(errors='replace').strip()[-500:]}")
    samples = np.frombuffer(run.stdout, dtype="<f4")
    if samples.size < channels:
        return None
    waveform = torch.from_numpy(samples[: samples.size - samples.size % channels].copy()).view(-1, channels)
    return {"waveform": waveform.T.contiguous().unsqueeze(0), "sample_rate": sample_rate}


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The container tags of a video file (e.g. `prompt`, `workflow`, `comment`)."""
    import subprocess

    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise VideoError(f"video file not found: {path}")
    run = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "ffmetadata", "-"],
        capture_output=True, text=True, encoding="utf-8",
    )
    if run.returncode != 0:
        raise VideoError(f"could not read the metadata of {path}: {run.stderr.strip()[-500:]}")
    return parse_ffmetadata(run.stdout)


def parse_ffmetadata(text: str) -> dict[str, str]:
    """Global tags of FFMETADATA text, undoing its backslash escapes ('=', ';', '#', '\\', newline).

    Split at the first UNESCAPED '=' (keys and JSON values may hold escaped ones); comment lines
    (';', '#') and anything from the first [SECTION] on are not global tags.
    """
    tags: dict[str, str] = {}
    for raw in _logical_lines(text):
        if raw[:1] in (";", "#"):
            continue  # comment (an escaped ';' or '#' arrives as '\\;' and is data)
        key: list[str] | None = None
        current: list[str] = []
        i = 0
        while i < len(raw):
            c = raw[i]
            if c == "\\" and i + 1 < len(raw):
                current.append(raw[i + 1])
                i += 2
                continue
            if c == "=" and key is None:
                key, current = current, []
            else:
                current.append(c)
            i += 1
        if key is not None:
            tags["".join(key)] = "".join(current)
        elif raw.startswith("["):
            break  # a [STREAM]/[CHAPTER] section header: global tags end here
    return tags


def _logical_lines(text: str) -> list[str]:
    """Split at newlines that are not escaped; escapes stay in place for the caller."""
    lines, start, i = [], 0, 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == "\n":
            lines.append(text[start:i])
            start = i + 1
        i += 1
    if start < len(text):
        lines.append(text[start:])
    return lines
