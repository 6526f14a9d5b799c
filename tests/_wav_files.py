"""A 16-bit PCM WAV from float samples, for tests that need an audio file on disk."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np


def write_pcm16_wav(path: str | Path, samples: np.ndarray, rate: int) -> Path:
    """Write float samples [channels, n] in [-1, 1] as 16-bit PCM at `rate` Hz; returns the path."""
    pcm = (np.clip(samples, -1, 1) * 32767).round().astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(samples.shape[0])
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(np.ascontiguousarray(pcm.T).tobytes())
    return Path(path)
