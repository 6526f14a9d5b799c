"""Whisper features -> per-video-frame windows, the input of the audio projection.

Upstream rule (25 fps video, whisper's 50 feature rows per second): stack the encoder's hidden
states on a new axis, prepend 4 zero rows, and give video frame f the rows [2f, 2f+10). Only the
frames the audio lasts for get a window: n = min(frames, samples_16k // 640); the frames after
the audio's end are EXACT zeros (upstream's dataset appends zero frames; the windows of Whisper's
padding there would be silence as Whisper hears it, not zeros).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

ZERO_ROWS_PREPENDED = 4
ROWS_PER_FRAME = 2
WINDOW_ROWS = 10
SAMPLES_PER_FRAME = 640  # 16 kHz / 25 fps: upstream hard-codes it (its fps argument is not used)


def frames_with_audio(num_frames: int, samples_16k: int) -> int:
    """How many of the video's frames the audio reaches: min(frames, samples // 640)."""
    return max(0, min(int(num_frames), int(samples_16k) // SAMPLES_PER_FRAME))


def window_whisper_states(states: Sequence[torch.Tensor] | torch.Tensor, num_frames: int,
                          audio_frames: int | None = None) -> torch.Tensor:
    """Windows of whisper encoder states for `num_frames` video frames.

    states: the encoder's hidden states, a sequence of L tensors [B, N, C] (whisper-tiny: 5 of
    [1, 1500, 384]) or one already stacked tensor [B, N, L, C].
    audio_frames: frames that have audio (frames_with_audio); later frames are all zeros. None: all.
    Returns [B, num_frames, 10, L, C].
    Upstream crashes when the last window runs past the features (videos beyond ~30 s); here the
    missing rows are zeros, like the dataset's zero padding of short audio.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    stacked = states if isinstance(states, torch.Tensor) else torch.stack(list(states), dim=2)
    if stacked.ndim != 4:
        raise ValueError(f"expected hidden states [B, N, C] each (or stacked [B, N, L, C]), got {list(stacked.shape)}")
    batch, rows, layers, channels = stacked.shape
    needed = ROWS_PER_FRAME * (num_frames - 1) + WINDOW_ROWS
    pad_after = max(0, needed - (rows + ZERO_ROWS_PREPENDED))
    padded = torch.cat(
        [
            stacked.new_zeros(batch, ZERO_ROWS_PREPENDED, layers, channels),
            stacked,
            stacked.new_zeros(batch, pad_after, layers, channels),
        ],
        dim=1,
    )
    # unfold gives every window of 10 rows with stride 2: [B, n_windows, L, C, 10]
    windows = padded.unfold(1, WINDOW_ROWS, ROWS_PER_FRAME)[:, :num_frames]
    windows = windows.permute(0, 1, 4, 2, 3).contiguous()
    if audio_frames is not None and audio_frames < num_frames:
        windows[:, max(0, audio_frames):] = 0
    return windows
