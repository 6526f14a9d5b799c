"""ComfyUI AUDIO -> a 16-bit PCM wav file, with the standard library's `wave` (no torchaudio)."""

from __future__ import annotations

import os
import wave
from typing import Any, Mapping

import numpy as np
import torch


class AudioError(ValueError):
    """The AUDIO value is not {"waveform": [B, C, T] tensor, "sample_rate": int}."""


def write_wav(audio: Mapping[str, Any], path: str | os.PathLike, max_seconds: float | None = None) -> int:
    """Write the first item of an AUDIO batch to `path`; returns the number of samples written.

    `max_seconds` trims the audio (to the video's length: the mp4 should not outlast its frames).
    """
    if not isinstance(audio, Mapping) or "waveform" not in audio or "sample_rate" not in audio:
        raise AudioError('audio must be {"waveform": tensor [batch, channels, samples], "sample_rate": int}')
    waveform = audio["waveform"]
    rate = audio["sample_rate"]
    if not isinstance(waveform, torch.Tensor) or waveform.ndim != 3 or waveform.shape[0] < 1:
        shape = tuple(waveform.shape) if isinstance(waveform, torch.Tensor) else type(waveform).__name__
        raise AudioError(f"audio waveform must be a tensor [batch, channels, samples], got {shape}")
    if not isinstance(rate, int) or isinstance(rate, bool) or rate <= 0:
        raise AudioError(f"audio sample_rate must be a positive integer, got {rate!r}")
    channels = waveform[0].detach().to("cpu", torch.float32)
    if max_seconds is not None:
        channels = channels[:, : max(int(round(max_seconds * rate)), 1)]
    if channels.shape[0] < 1 or channels.shape[1] < 1:
        raise AudioError(f"audio has no samples (shape {tuple(waveform.shape)})")
    pcm = (channels.clamp(-1, 1) * 32767.0).round().to(torch.int16).numpy()
    interleaved = np.ascontiguousarray(pcm.T).astype("<i2")  # [samples, channels], little-endian
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(int(pcm.shape[0]))
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(interleaved.tobytes())
    return int(pcm.shape[1])
