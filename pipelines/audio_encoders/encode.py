"""16 kHz waveform -> Whisper features -> stacked encoder states -> per-frame windows, as upstream.

The WHOLE clip is cut into 30 s chunks (each zero-padded to 480000 samples by the feature
extractor and normalised on its own) and only the first 3000 feature frames (30 s) reach the
encoder. The clip is never cut to the video first: through self-attention the windows of the
video's frames depend on the audio after its end.
"""

from __future__ import annotations

import numpy as np
import torch

from .whisper import Whisper
from .windows import frames_with_audio, window_whisper_states

WHISPER_RATE = 16000


def input_features(waveform_16k: np.ndarray, feature_extractor) -> torch.Tensor:
    """Log-mel features [1, mels, 3000 * chunks] of every 30 s chunk of the clip, concatenated."""
    chunk = int(feature_extractor.n_samples)
    starts = range(0, max(1, len(waveform_16k)), chunk)
    feats = [feature_extractor(waveform_16k[i:i + chunk], sampling_rate=WHISPER_RATE,
                               return_tensors="pt").input_features for i in starts]
    return torch.cat(feats, dim=-1)


@torch.no_grad()
def stacked_states(whisper: Whisper, features: torch.Tensor) -> torch.Tensor:
    """Encoder hidden states [1, 1500, layers+1, C] of the first 3000 feature frames (float32, CPU):
    the embeddings, every layer's output, the last one after the final LayerNorm."""
    frames = int(whisper.feature_extractor.nb_max_frames)
    out = whisper.encoder(features[:, :, :frames].to(whisper.device, torch.float32), output_hidden_states=True)
    return torch.stack(tuple(out.hidden_states), dim=2).float().cpu()


def audio_windows(waveform_16k: np.ndarray, whisper: Whisper, num_frames: int) -> torch.Tensor:
    """What the audio transformer takes for a video of `num_frames`: [1, num_frames, 10, layers+1, C];
    frames past the audio's end are exact zeros."""
    states = stacked_states(whisper, input_features(waveform_16k, whisper.feature_extractor))
    return window_whisper_states(states, num_frames, frames_with_audio(num_frames, len(waveform_16k)))
