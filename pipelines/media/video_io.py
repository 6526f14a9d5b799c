"""Video files in and out with imageio-ffmpeg (its bundled ffmpeg; no system install needed).

Frames are ComfyUI IMAGE batches: float32 [F, H, W, 3] in 0..1.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, Mapping, NamedTuple

import numpy as np
import torch

from .limits import MAX_FRAME_PIXELS


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
    """[F,H,W,3] float 0..1 -> contiguous uint8 array (rounded, clamped); 8-bit frames as they are."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise VideoError(f"expected frames shaped [frames, height, width, 3], got {tuple(frames.shape)}")
    if frames.dtype == torch.uint8:
        return np.ascontiguousarray(frames.detach().cpu().numpy())
    arr = (frames.detach().to("cpu", torch.float32).clamp(0, 1) * 255.0).round().to(torch.uint8)
    return np.ascontiguousarray(arr.numpy())


# Frames converted to 8-bit at a time: a long float video is never copied whole (60 s of 720p
# would be another 4 GB as uint8).
ENCODE_CHUNK_FRAMES = 16


def frames_to_uint8_tensor(frames: torch.Tensor) -> torch.Tensor:
    """A float IMAGE [F,H,W,3] as a uint8 tensor, converted ENCODE_CHUNK_FRAMES at a time (no whole
    float temporary beside the output)."""
    out = torch.empty(tuple(frames.shape), dtype=torch.uint8)
    for start in range(0, frames.shape[0], ENCODE_CHUNK_FRAMES):
        chunk = frames[start:start + ENCODE_CHUNK_FRAMES]
        out[start:start + chunk.shape[0]] = torch.from_numpy(frames_to_uint8(chunk))
    return out


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
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise VideoError(f"expected frames shaped [frames, height, width, 3], got {tuple(frames.shape)}")
    count, height, width, _ = frames.shape
    if width % 2 or height % 2:
        raise VideoError(f"H.264/yuv420p needs even width and height, got {width}x{height} for {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_name = None
    try:
        tmp_name = new_partial_file(path.parent, ".mp4")
        _encode(tmp_name, frames, float(fps), int(crf), audio_path, should_cancel, path)
        if metadata:
            _add_metadata(tmp_name, metadata, path)
        _check_written(tmp_name, count, path)
        os.link(tmp_name, path)  # fails instead of replacing if the target appeared meanwhile
    except FileExistsError:
        raise VideoError(f"{path} already exists; refusing to overwrite it") from None
    except OSError as exc:  # e.g. no space left for the temporary file itself
        raise VideoError(f"could not write video {path}: {exc}; nothing was saved") from exc
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass
    return path


def _encode(tmp_name: str, frames: torch.Tensor, fps: float, crf: int, audio_path: str | None,
            should_cancel: Callable[[], None] | None, target: Path) -> None:
    """Pipe the frames through imageio-ffmpeg's ffmpeg into `tmp_name`, H.264/yuv420p (+ AAC audio),
    converting them to 8-bit ENCODE_CHUNK_FRAMES at a time.

    Why not imageio_ffmpeg.write_frames: it drops ffmpeg's exit status and its error output, so a
    full disk ("Error writing trailer: No space left on device") looked like success and left a
    broken mp4. Here ffmpeg's status and its error lines decide, and a failure names its cause."""
    import subprocess

    import imageio_ffmpeg

    count, height, width, _ = frames.shape
    rate = str(Fraction(fps).limit_denominator())  # 24000/1001 stays exact
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{width}x{height}", "-r", rate, "-i", "-"]
    cmd += ["-i", audio_path, "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac"] if audio_path else ["-an"]
    cmd += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", str(crf), "-movflags", "+faststart", tmp_name]
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a chatty ffmpeg can never block on it
        # Its own process group: Ctrl-C reaches only us, and we stop ffmpeg ourselves (below).
        process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log,
                                   start_new_session=True)
        try:
            try:
                for start in range(0, count, ENCODE_CHUNK_FRAMES):
                    data = frames_to_uint8(frames[start:start + ENCODE_CHUNK_FRAMES])
                    for frame in data:
                        if should_cancel is not None:
                            should_cancel()
                        process.stdin.write(frame.tobytes())
            except BrokenPipeError:
                pass  # ffmpeg quit early: its status and error lines below say why
            finally:
                try:
                    process.stdin.close()
                except BrokenPipeError:
                    pass
            status = process.wait()
        except BaseException:  # a cancel, Ctrl-C or a failed write: stop ffmpeg before its file is removed
            process.kill()
            process.wait()
            raise
        log.seek(0)
        errors = log.read().decode("utf-8", errors="replace")
    if status != 0 or _WRITE_ERROR.search(errors):
        raise VideoError(f"could not write video {target}: {_ffmpeg_reason(status, errors)}; nothing was saved")


# ffmpeg's words for a write that did not complete (it exits non-zero too; older builds did not).
_WRITE_ERROR = re.compile(r"Error (writing trailer|closing file|submitting a packet to the muxer)|"
                          r"No space left|File too large|Disk quota", re.IGNORECASE)


def _ffmpeg_reason(status: int, errors: str) -> str:
    """ffmpeg's last error line without its '[out#0/mp4 @ 0x..]' prefix, plus a hint for a full disk."""
    lines = [re.sub(r"^\[[^\]]*\]\s*", "", line).strip() for line in errors.splitlines()]
    lines = [line for line in lines if line]
    first_write_error = next((line for line in lines if _WRITE_ERROR.search(line)), None)
    reason = first_write_error or (lines[-1] if lines else f"ffmpeg stopped with exit status {status}")
    if re.search(r"No space left|File too large|Disk quota", reason, re.IGNORECASE):
        reason += " (free some space or choose another folder)"
    return f"ffmpeg: {reason[:300]}"


def _check_written(tmp_name: str, expected_frames: int, target: Path) -> None:
    """The finished file must hold every frame: the last guard against a short or unreadable mp4
    (ffmpeg's stream copy reads the index only, a few milliseconds)."""
    import imageio_ffmpeg

    try:
        frames, _ = imageio_ffmpeg.count_frames_and_secs(tmp_name)
    except (RuntimeError, OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise VideoError(f"could not write video {target}: the written file is not readable ({first}); "
                         "nothing was saved") from exc
    if frames != expected_frames:
        raise VideoError(f"could not write video {target}: the written file holds {frames} of {expected_frames} "
                         "frames; nothing was saved")


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
        run = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
        if run.returncode != 0 or _WRITE_ERROR.search(run.stderr) or os.path.getsize(tagged_name) == 0:
            raise VideoError(f"could not write the metadata of {target}: {_ffmpeg_reason(run.returncode, run.stderr)}; "
                             "nothing was saved")
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


class DecodedVideo(NamedTuple):
    frames: torch.Tensor  # [F, H, W, 3], float32 0..1 or uint8
    fps: float
    cut: str | None  # why frames were left out ("frame_load_cap", "memory"), None when all were read


def frame_bytes(width: int, height: int, dtype: torch.dtype = torch.float32) -> int:
    return width * height * 3 * (1 if dtype == torch.uint8 else 4)


def _unreadable(path: str | os.PathLike, exc: BaseException) -> VideoError:
    """The error for a file ffmpeg could not read as a video: says so plainly when it holds only sound."""
    if _stream_kinds(path) == {"Audio"}:
        return VideoError(f"{path} has no video stream (it holds only sound); give a video file")
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]  # not ffmpeg's whole banner
    return VideoError(f"{path} is not a readable video ({first})")


def decode_video(path: str | os.PathLike, *, should_cancel: Callable[[], None] | None = None,
                 max_frames: int | None = None, max_bytes: int | None = None,
                 dtype: torch.dtype = torch.float32, max_frame_pixels: int | None = MAX_FRAME_PIXELS) -> DecodedVideo:
    """Decode at most `max_frames` frames, and no more than fit in `max_bytes`, straight into one
    preallocated tensor (no list of frames, no stacked copy, no float64): the memory is the output
    plus one frame. The frame size comes from ffmpeg's header (imageio-ffmpeg's first answer) and is
    checked before any frame is decoded; `cut` says when frames were left out."""
    gen = _open(path)
    try:
        try:
            meta = gen.__next__()
        except (RuntimeError, OSError, StopIteration, KeyError, IndexError, AttributeError) as exc:
            raise _unreadable(path, exc) from None
        width, height = (int(v) for v in meta["size"])
        if width <= 0 or height <= 0:
            raise VideoError(f"{path} has no usable frame size ({width}x{height})")
        if max_frame_pixels and width * height > max_frame_pixels:
            raise VideoError(f"{path}: its frames are {width}x{height} ({width * height / 1e6:.1f} megapixels), over "
                             f"the {max_frame_pixels / 1e6:.1f} megapixels a frame may have here; scale the video "
                             "down first (e.g. ffmpeg -i in.mp4 -vf scale=1280:-2 out.mp4)")
        per_frame = frame_bytes(width, height, dtype)
        limit = max_frames if max_frames else None
        if max_bytes:
            fit = max_bytes // per_frame
            if fit < 1:
                raise VideoError(f"{path}: one {width}x{height} frame takes {per_frame / 2**30:.2f} GB, over the "
                                 f"{max_bytes / 2**30:.2f} GB memory limit; raise the limit or scale the video down")
            limit = fit if limit is None else min(limit, fit)
        fps = float(meta.get("fps") or 0.0)
        duration = float(meta.get("duration") or 0.0)
        expected = int(duration * fps) + 2 if duration > 0 and fps > 0 else 64
        capacity = max(1, min(limit, expected) if limit else expected)
        out = torch.empty((capacity, height, width, 3), dtype=dtype)
        count, cut = 0, None
        for raw in gen:
            if limit is not None and count >= limit:
                cut = "frame_load_cap" if max_frames and count >= max_frames else "memory"
                break
            if should_cancel is not None:
                should_cancel()
            if count == capacity:  # the header under-stated the length: grow (rare)
                capacity = min(capacity * 2, limit) if limit else capacity * 2
                grown = torch.empty((capacity, height, width, 3), dtype=dtype)
                grown[:count].copy_(out[:count])
                out = grown
            frame = np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)
            if dtype == torch.uint8:
                out[count].numpy()[...] = frame
            else:  # straight into the output, in float32 (the same numbers as uint8 -> float32 / 255)
                np.divide(frame, np.float32(255.0), out=out[count].numpy(), dtype=np.float32)
            count += 1
    except (RuntimeError, OSError, KeyError) as exc:
        if isinstance(exc, VideoError):
            raise
        raise _unreadable(path, exc) from exc
    finally:
        gen.close()
    if count == 0:
        raise VideoError(f"{path} holds no video frames")
    return DecodedVideo(out[:count], fps, cut)


def read_video(
    path: str | os.PathLike, should_cancel: Callable[[], None] | None = None, max_frames: int | None = None,
    max_bytes: int | None = None,
) -> tuple[torch.Tensor, float]:
    """Decode a video file into ([F,H,W,3] float32 0..1, fps)."""
    decoded = decode_video(path, should_cancel=should_cancel, max_frames=max_frames, max_bytes=max_bytes)
    return decoded.frames, decoded.fps


def read_video_uint8(
    path: str | os.PathLike, should_cancel: Callable[[], None] | None = None, max_frames: int | None = None
) -> tuple[torch.Tensor, float]:
    """Decode a video file (or a single image, as one frame) into ([F,H,W,3] uint8, fps): a quarter
    of the float frames' memory, for long sources."""
    decoded = decode_video(path, should_cancel=should_cancel, max_frames=max_frames, dtype=torch.uint8,
                           max_frame_pixels=None)
    return decoded.frames, decoded.fps


def _stream_kinds(path: str | os.PathLike) -> set[str]:
    """The kinds of stream ffmpeg finds in a file ({"Video", "Audio"}, ...; empty when it reads none):
    asked only after a read failed, to say why."""
    import subprocess

    import imageio_ffmpeg

    run = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True,
                         text=True, errors="replace")  # no output file: ffmpeg lists the streams and exits 1
    return set(re.findall(r"^\s*Stream #\d+:\d+\S*: (\w+):", run.stderr, re.MULTILINE))


def read_audio(path: str | os.PathLike, sample_rate: int = 44100, channels: int = 2,
               max_seconds: float | None = None) -> dict | None:
    """The first audio stream of a media file as a ComfyUI AUDIO ({"waveform": [1, C, N] float32,
    "sample_rate": int}), decoded by ffmpeg at `sample_rate` / `channels`; None when it has none.
    `max_seconds` stops ffmpeg there (e.g. the length of the frames kept)."""
    import subprocess

    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise VideoError(f"file not found: {path}")
    limit = ["-t", f"{max(float(max_seconds), 0.001):.6f}"] if max_seconds else []
    run = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path), "-map", "0:a:0?", "-vn",
         *limit, "-ac", str(channels), "-ar", str(sample_rate), "-f", "f32le", "-"],
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
