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


CONVERT_FRAMES = 16  # frames converted to uint8 at a time when writing


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
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise VideoError(f"expected frames shaped [frames, height, width, 3], got {tuple(frames.shape)}")
    count, height, width, _ = frames.shape
    # Converted a few frames at a time: a long float32 video is never copied whole (60 s of 720p
    # IMAGE is 16.6 GB; a whole-video conversion would add its float temporaries and a uint8 copy).
    with VideoWriter(path, width, height, fps, crf=crf, metadata=metadata, audio_path=audio_path) as writer:
        for i in range(0, count, CONVERT_FRAMES):
            data = frames_to_uint8(frames[i:i + CONVERT_FRAMES])
            for j in range(data.shape[0]):
                if should_cancel is not None:
                    should_cancel()
                writer.write(data[j:j + 1])
    return writer.path


class VideoWriter:
    """An mp4 written as its frames come (uint8 [f, H, W, 3] parts): a long video never has to be held
    whole. Same file rules as write_video: a temporary file renamed when the `with` block ends without
    an error, removed otherwise; an existing file is never overwritten."""

    def __init__(self, path: str | os.PathLike, width: int, height: int, fps: float, crf: int = 19,
                 metadata: Mapping[str, str] | None = None, audio_path: str | None = None):
        self.path = Path(path)
        if self.path.exists():
            raise VideoError(f"{self.path} already exists; refusing to overwrite it")
        if width % 2 or height % 2:
            raise VideoError(f"H.264/yuv420p needs even width and height, got {width}x{height} for {self.path}")
        self.size, self.fps, self.crf, self.metadata, self.audio_path = (width, height), fps, crf, metadata, audio_path
        self.frames = 0
        self._writer = None
        self._tmp = None

    def __enter__(self) -> "VideoWriter":
        import imageio_ffmpeg

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = new_partial_file(self.path.parent, ".mp4")
        try:
            self._writer = imageio_ffmpeg.write_frames(
                self._tmp, self.size, fps=float(self.fps), codec="libx264", pix_fmt_out="yuv420p",
                quality=None, macro_block_size=1,
                output_params=["-crf", str(int(self.crf)), "-movflags", "+faststart"], ffmpeg_log_level="error",
                audio_path=self.audio_path, audio_codec="aac" if self.audio_path else None,
            )
            self._writer.send(None)
        except (RuntimeError, OSError, BrokenPipeError) as exc:
            self._cleanup()
            raise VideoError(f"could not write video {self.path}: {exc}") from exc
        return self

    def write(self, frames: torch.Tensor | np.ndarray) -> None:
        """uint8 frames [f, H, W, 3] (a float tensor in 0..1 is converted as write_video does)."""
        data = frames if isinstance(frames, np.ndarray) else (
            frames.numpy() if frames.dtype == torch.uint8 else frames_to_uint8(frames))
        if data.ndim != 4 or tuple(data.shape[1:]) != (self.size[1], self.size[0], 3):
            raise VideoError(f"expected frames [f, {self.size[1]}, {self.size[0]}, 3], got {tuple(data.shape)}")
        try:
            for frame in data:
                self._writer.send(np.ascontiguousarray(frame))
                self.frames += 1
        except (RuntimeError, OSError, BrokenPipeError) as exc:
            raise VideoError(f"could not write video {self.path}: {exc}") from exc

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._finish()
        finally:
            self._cleanup()

    def _finish(self) -> None:
        try:
            self._writer.close()
            self._writer = None
            if os.path.getsize(self._tmp) == 0:
                raise VideoError(f"ffmpeg wrote nothing for {self.path}")
            if self.metadata:
                _add_metadata(self._tmp, self.metadata, self.path)
            os.link(self._tmp, self.path)  # fails instead of replacing if the target appeared meanwhile
        except FileExistsError:
            raise VideoError(f"{self.path} already exists; refusing to overwrite it") from None
        except (RuntimeError, OSError, BrokenPipeError) as exc:
            if isinstance(exc, VideoError):
                raise
            raise VideoError(f"could not write video {self.path}: {exc}") from exc

    def _cleanup(self) -> None:
        if self._writer is not None:  # stop ffmpeg before removing its half-written file
            try:
                self._writer.close()
            except Exception:
                pass
            self._writer = None
        if self._tmp is not None:
            try:
                os.unlink(self._tmp)
            except OSError:
                pass


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
