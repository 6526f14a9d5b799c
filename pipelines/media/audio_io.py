"""Audio in: a file (decoded by imageio-ffmpeg's ffmpeg) or ComfyUI's AUDIO value, and the
16 kHz mono waveform Whisper takes, made the way upstream's `librosa.load(path, sr=16000)` makes it.

No torchaudio and no librosa: ffmpeg decodes any container to float32 PCM keeping the file's
sample rate and channels, and `soxr` (the library librosa calls) resamples at its 'HQ' quality,
which is librosa's default `soxr_hq`. A different resampler would not reproduce upstream's numbers.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from .limits import MAX_AUDIO_BYTES

WHISPER_RATE = 16000
SOXR_QUALITY = "HQ"  # librosa.load's default res_type "soxr_hq"
MAX_CHANNELS = 16  # more than any real track has (7.1.4 is 12); more means a [batch, samples, channels] mix-up
SILENCE_PEAK = 1.0 / 32768.0  # below one step of 16-bit audio


class AudioInputError(ValueError):
    """Audio that cannot be used; the message names the file or value and says what to do."""


@dataclass(frozen=True, eq=False)
class AudioClip:
    """One sound track: float32 samples [channels, samples] at `sample_rate` Hz."""

    samples: np.ndarray
    sample_rate: int

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[1])

    @property
    def seconds(self) -> float:
        return self.num_samples / self.sample_rate

    def fitted(self, seconds: float) -> AudioClip:
        """The track cut to `seconds`, or padded with silence up to it (the video's length)."""
        wanted = max(1, int(round(seconds * self.sample_rate)))
        if wanted <= self.num_samples:
            return AudioClip(self.samples[:, :wanted], self.sample_rate)
        pad = np.zeros((self.channels, wanted - self.num_samples), dtype=np.float32)
        return AudioClip(np.concatenate([self.samples, pad], axis=1), self.sample_rate)

    def to_comfy(self) -> dict[str, Any]:
        """ComfyUI's AUDIO value: {"waveform": float32 [1, channels, samples], "sample_rate": int}."""
        waveform = torch.from_numpy(np.array(self.samples, dtype=np.float32)).unsqueeze(0)  # a copy: ours stays ours
        return {"waveform": waveform, "sample_rate": int(self.sample_rate)}


def checked_clip(samples: np.ndarray, sample_rate: Any, what: str) -> AudioClip:
    """An AudioClip after the checks every input goes through; `what` names it in errors."""
    whole = isinstance(sample_rate, numbers.Real) and not isinstance(sample_rate, bool)
    if not whole or not float(sample_rate).is_integer():
        raise AudioInputError(f"{what}: sample_rate = {sample_rate!r} is not valid; it must be a whole number of Hz "
                              "(e.g. 44100).")
    rate = int(sample_rate)
    if rate <= 0:
        raise AudioInputError(f"{what}: sample_rate = {rate} is not valid; it must be above 0 Hz (e.g. 44100).")
    if samples.ndim != 2 or samples.shape[1] == 0:
        raise AudioInputError(f"{what}: holds no audio samples (shape {list(samples.shape)}); use a clip with sound.")
    if not np.isfinite(samples).all():
        raise AudioInputError(f"{what}: holds NaN or infinite samples; the audio is corrupt.")
    peak = float(np.abs(samples).max())
    if peak < SILENCE_PEAK:
        raise AudioInputError(f"{what}: is silent ({samples.shape[1]} samples, peak {peak:.2g}); the audio drives "
                              "the mouth and body, so use a clip with a voice or a song.")
    return AudioClip(np.ascontiguousarray(samples, dtype=np.float32), rate)


def clip_from_comfy(audio: Any, what: str = "audio") -> AudioClip:
    """The one clip in a ComfyUI AUDIO value {"waveform": [1, channels, samples], "sample_rate": Hz}."""
    if not isinstance(audio, Mapping) or "waveform" not in audio or "sample_rate" not in audio:
        raise AudioInputError(f'{what}: expected ComfyUI AUDIO {{"waveform": [batch, channels, samples], '
                              f'"sample_rate": Hz}}, got {type(audio).__name__}; connect a Load Audio node.')
    waveform = audio["waveform"]
    if not isinstance(waveform, torch.Tensor):
        raise AudioInputError(f"{what}: waveform is a {type(waveform).__name__}, "
                              "not a tensor [batch, channels, samples].")
    shape = list(waveform.shape)
    if waveform.ndim != 3:
        hint = (" (a [channels, samples] tensor without the batch axis?)" if waveform.ndim == 2
                else " (a bare list of samples without batch and channel axes?)" if waveform.ndim == 1 else "")
        raise AudioInputError(f"{what}: waveform has shape {shape}; ComfyUI's AUDIO is "
                              f"[batch, channels, samples]{hint}.")
    batch, channels, count = shape
    if batch != 1:
        raise AudioInputError(f"{what}: waveform holds a batch of {batch} clips (shape {shape}); the video takes one "
                              "sound track: pass a single clip (batch 1).")
    if channels > MAX_CHANNELS:
        if count <= MAX_CHANNELS:
            raise AudioInputError(f"{what}: waveform has shape {shape}, which looks like [batch, samples, channels]; "
                                  "ComfyUI's AUDIO is [batch, channels, samples] (transpose the last two axes).")
        raise AudioInputError(f"{what}: waveform has {channels} channels (shape {shape}); expected mono or stereo "
                              f"(at most {MAX_CHANNELS} channels).")
    samples = waveform[0].detach().to("cpu", torch.float32).numpy().copy()  # later edits of the input don't reach us
    return checked_clip(samples, audio["sample_rate"], what)


def load_audio_file(path: str | os.PathLike, what: str | None = None, max_seconds: float | None = None,
                    max_bytes: int = MAX_AUDIO_BYTES) -> AudioClip:
    """read_audio_file()'s clip; a cut is logged."""
    clip, cut = read_audio_file(path, what, max_seconds=max_seconds, max_bytes=max_bytes)
    if cut:
        logging.getLogger(__name__).warning("%s", cut)
    return clip


def read_audio_file(path: str | os.PathLike, what: str | None = None, max_seconds: float | None = None,
                    max_bytes: int = MAX_AUDIO_BYTES) -> tuple[AudioClip, str | None]:
    """Decode the first audio stream of any file ffmpeg reads (wav, mp3, flac, m4a, a video...), at
    most `max_seconds` and `max_bytes` of float32 samples: (clip, None), or (clip, a note saying
    what was cut) when the file holds more.

    ffmpeg writes float32 PCM to a pipe in a WAV container: the container's header is the one place
    that reliably says the sample rate and channel count it kept (its stderr wording varies), and it
    comes first, so the byte budget is known before the samples arrive. They are read into one
    buffer and ffmpeg is stopped when it is full."""
    import imageio_ffmpeg

    path = Path(path)
    what = what or str(path)
    if not path.is_file():
        raise AudioInputError(f"{what}: no such file; give the path of an audio file (wav, mp3, flac, m4a...).")
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path), "-map", "0:a:0",
           "-f", "wav", "-c:a", "pcm_f32le", "-bitexact", "-"]
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors)
        try:
            channels, rate, data, cut = _read_capped(proc.stdout, what, max_seconds, max_bytes)
        except AudioInputError:
            proc.kill()
            proc.wait()
            errors.seek(0)
            _raise_ffmpeg_error(errors.read(), proc.returncode, what)
            raise
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()
            proc.wait()
        if not cut and proc.returncode != 0:
            errors.seek(0)
            _raise_ffmpeg_error(errors.read(), proc.returncode, what)
    samples = data[: data.size // (4 * channels) * 4 * channels].view("<f4")
    clip = checked_clip(samples.reshape(-1, channels).T, rate, what)
    note = None
    if cut:
        seconds = clip.seconds
        note = (f"{what}: loaded the first {seconds:g} s; raise max_seconds to load more."
                if cut == "seconds" else
                f"{what}: loaded the first {seconds:g} s, which fill the {max_bytes / 2**30:g} GB the decoded sound "
                "may take; convert the file to fewer channels or a lower sample rate to load more.")
    return clip, note


def _raise_ffmpeg_error(stderr: bytes, returncode: int | None, what: str) -> None:
    detail = stderr.decode("utf-8", "replace").strip().splitlines()
    if not detail and not returncode:
        return
    detail = detail[-1] if detail else f"ffmpeg exit code {returncode}"
    if "matches no streams" in detail:
        raise AudioInputError(f"{what}: holds no audio stream.")
    raise AudioInputError(f"{what}: cannot be decoded as audio ({detail}).")


def _read_capped(stream, what: str, max_seconds: float | None, max_bytes: int) -> tuple[int, int, np.ndarray, str | None]:
    """(channels, rate, PCM bytes, why cut or None) from ffmpeg's streamed float WAV."""
    head = stream.read(4096)
    try:
        channels, rate, first = _parse_float_wav(head, what)
    except AudioInputError:
        if len(head) < 4096:
            raise
        raise AudioInputError(f"{what}: ffmpeg returned no audio data.") from None
    if not 0 < channels <= MAX_CHANNELS or rate <= 0:
        raise AudioInputError(f"{what}: has {channels} channels at {rate} Hz; expected mono or stereo "
                              f"(at most {MAX_CHANNELS} channels).")
    frame = 4 * channels
    budget, why = max_bytes // frame * frame, "memory"
    if max_seconds:
        wanted = int(math.ceil(float(max_seconds) * rate)) * frame
        if wanted <= budget:
            budget, why = wanted, "seconds"
    buffer = np.empty(budget, dtype=np.uint8)  # untouched pages cost nothing until written
    filled = min(len(first), budget)
    buffer[:filled] = np.frombuffer(first, dtype=np.uint8, count=filled)
    view = memoryview(buffer)
    while filled < budget:
        got = stream.readinto(view[filled:])
        if not got:
            return channels, rate, buffer[:filled], None
        filled += got
    more = len(first) > budget or bool(stream.read(1))
    return channels, rate, buffer[:filled], why if more else None


def _parse_float_wav(blob: bytes, what: str) -> tuple[int, int, bytes]:
    """(channels, sample rate, PCM bytes so far) of the start of the float WAV ffmpeg streams (its
    sizes are unknown: 0xFFFFFFFF)."""
    if blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
        raise AudioInputError(f"{what}: ffmpeg returned no audio data.")
    pos, channels, rate = 12, None, None
    while pos + 8 <= len(blob):
        chunk, size = blob[pos:pos + 4], struct.unpack("<I", blob[pos + 4:pos + 8])[0]
        if chunk == b"fmt ":
            channels, rate = struct.unpack("<HI", blob[pos + 10:pos + 16])
        elif chunk == b"data":
            if not channels:
                break
            end = len(blob) if size == 0xFFFFFFFF else min(len(blob), pos + 8 + size)
            return channels, rate, blob[pos + 8:end]
        pos += 8 + size + (size & 1)
    raise AudioInputError(f"{what}: ffmpeg returned no audio data.")


def whisper_waveform(clip: AudioClip) -> np.ndarray:
    """16 kHz mono float32, as `librosa.load(path, sr=16000)`: channels averaged FIRST, then soxr
    'HQ', then the length fixed to ceil(n * 16000 / sr) (cut or zero-padded). 16 kHz is not resampled."""
    mono = np.mean(clip.samples, axis=0) if clip.channels > 1 else clip.samples[0]
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if clip.sample_rate == WHISPER_RATE:
        return mono
    import soxr

    resampled = soxr.resample(mono, clip.sample_rate, WHISPER_RATE, quality=SOXR_QUALITY)
    # librosa computes the target length with its float ratio; the same expression keeps its rounding.
    wanted = int(math.ceil(mono.shape[-1] * (float(WHISPER_RATE) / clip.sample_rate)))
    if resampled.shape[-1] >= wanted:
        return np.ascontiguousarray(resampled[:wanted], dtype=np.float32)
    return np.concatenate([resampled, np.zeros(wanted - resampled.shape[-1], dtype=resampled.dtype)]).astype(np.float32)
