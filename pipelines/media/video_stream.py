"""An mp4 written as its frames come: the command line's long videos are never held whole.

generate.py hands the decoded frames part by part (uint8 [f, H, W, 3], one VAE decode tile at a time);
`VideoStream` pipes them into ffmpeg as they arrive. The file rules are video_io.write_video's: a
temporary file beside the target, renamed only when the `with` block ends without an error and ffmpeg
reported success (its exit status and its error lines decide: a full disk is a failure, not a short
mp4), removed otherwise; an existing file is never overwritten.

Why not video_io.write_video: it takes the whole video at once, which at 60 s of 720p is 4.1 GB as
8-bit frames (16.6 GB as float). Why not imageio_ffmpeg.write_frames: it drops ffmpeg's exit status.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from .video_io import VideoError, new_partial_file


class VideoStream:
    """`with VideoStream(path, width, height, fps, audio_path=wav) as out: out.write(part)`: H.264/yuv420p
    (+ the audio file as AAC), parts of uint8 frames [f, H, W, 3]."""

    def __init__(self, path: str | os.PathLike, width: int, height: int, fps: float, crf: int = 19,
                 audio_path: str | None = None):
        self.path = Path(path)
        if self.path.exists():
            raise VideoError(f"{self.path} already exists; refusing to overwrite it")
        if width % 2 or height % 2:
            raise VideoError(f"H.264/yuv420p needs even width and height, got {width}x{height} for {self.path}")
        self.width, self.height, self.fps, self.crf, self.audio_path = width, height, fps, crf, audio_path
        self.frames = 0
        self._process: subprocess.Popen | None = None
        self._log = None
        self._tmp: str | None = None

    def __enter__(self) -> "VideoStream":
        import imageio_ffmpeg

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = new_partial_file(self.path.parent, ".mp4")
        rate = str(Fraction(self.fps).limit_denominator())
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{self.width}x{self.height}", "-r", rate, "-i", "-"]
        cmd += ["-i", self.audio_path, "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac"] \
            if self.audio_path else ["-an"]
        cmd += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", str(int(self.crf)), "-movflags", "+faststart",
                self._tmp]
        self._log = tempfile.TemporaryFile()  # a file, not a pipe: a chatty ffmpeg can never block on it
        # Its own process group: Ctrl-C reaches only us, and we stop ffmpeg ourselves.
        self._process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log,
                                         start_new_session=True)
        return self

    def write(self, frames: torch.Tensor | np.ndarray) -> None:
        """Append uint8 frames [f, H, W, 3]."""
        data = frames.numpy() if isinstance(frames, torch.Tensor) else frames
        if data.dtype != np.uint8 or data.ndim != 4 or tuple(data.shape[1:]) != (self.height, self.width, 3):
            raise VideoError(f"expected uint8 frames [f, {self.height}, {self.width}, 3], got "
                             f"{data.dtype} {tuple(data.shape)}")
        try:
            self._process.stdin.write(np.ascontiguousarray(data).tobytes())
        except BrokenPipeError:
            self._fail("ffmpeg stopped while frames were still coming")
        self.frames += data.shape[0]

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._finish()
        finally:
            self._cleanup()

    def _finish(self) -> None:
        try:
            self._process.stdin.close()
        except BrokenPipeError:
            pass
        status = self._process.wait()
        if status != 0:
            self._fail(f"ffmpeg stopped with exit status {status}")
        if self.frames == 0 or os.path.getsize(self._tmp) == 0:
            raise VideoError(f"could not write video {self.path}: no frames came; nothing was saved")
        try:
            os.link(self._tmp, self.path)  # fails instead of replacing if the target appeared meanwhile
        except FileExistsError:
            raise VideoError(f"{self.path} already exists; refusing to overwrite it") from None
        except OSError as exc:
            raise VideoError(f"could not write video {self.path}: {exc}; nothing was saved") from exc

    def _fail(self, what: str) -> None:
        self._log.seek(0)
        lines = [line.strip() for line in self._log.read().decode("utf-8", errors="replace").splitlines() if line.strip()]
        reason = lines[-1][:300] if lines else what
        raise VideoError(f"could not write video {self.path}: ffmpeg: {reason}; nothing was saved")

    def _cleanup(self) -> None:
        if self._process is not None and self._process.poll() is None:  # a cancel or an error: stop ffmpeg
            self._process.kill()
            self._process.wait()
        if self._log is not None:
            self._log.close()
        if self._tmp is not None:
            try:
                os.unlink(self._tmp)
            except OSError:
                pass
