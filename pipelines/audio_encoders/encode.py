"""16 kHz waveform -> Whisper features -> stacked encoder states -> per-frame windows, as upstream.

The WHOLE clip is cut into 30 s chunks (each zero-padded to 480000 samples by the feature
extractor and normalised on its own). The clip is never cut to the video first: through
self-attention the windows of the video's frames depend on the audio after its end.

Audio longer than 30 s. Whisper's encoder takes 3000 feature frames (30 s) and gives 1500 rows
(50 per second). Upstream HunyuanCustom and HunyuanVideo-Avatar both cut the features into 30 s
chunks as above (Avatar: `get_audio_feature`, chunks of 750 * 640 samples) but then feed the
encoder only the FIRST 3000 frames (Avatar's `encode_audio` slices `[:, :, :3000]` and caps the video
at 400 frames), so nothing after 30 s is ever heard. We go on the way their chunking points: every
further 30 s chunk the video needs goes through the encoder ON ITS OWN and its 1500 rows follow the
previous chunk's, so row r is still time r / 50 s. A video of at most 748 frames (~30 s: the first chunk
covers their windows) gets exactly upstream's numbers; later frames hear their own chunk, whose
attention sees only that chunk's 30 s.
"""

from __future__ import annotations

import numpy as np
import torch

from .whisper import Whisper
from .windows import (ROWS_PER_FRAME, WINDOW_ROWS, ZERO_ROWS_PREPENDED, frames_with_audio,
                      window_whisper_states)

WHISPER_RATE = 16000


def input_features(waveform_16k: np.ndarray, feature_extractor) -> torch.Tensor:
    """Log-mel features [1, mels, 3000 * chunks] of every 30 s chunk of the clip, concatenated."""
    chunk = int(feature_extractor.n_samples)
    starts = range(0, max(1, len(waveform_16k)), chunk)
    feats = [feature_extractor(waveform_16k[i:i + chunk], sampling_rate=WHISPER_RATE,
                               return_tensors="pt").input_features for i in starts]
    return torch.cat(feats, dim=-1)


@torch.no_grad()
def stacked_states(whisper: Whisper, features: torch.Tensor, chunks: int = 1) -> torch.Tensor:
    """Encoder hidden states [1, 1500 * chunks, layers+1, C] of the first `chunks` 30 s chunks of the
    features, each encoded on its own (float32, CPU): the embeddings, every layer's output, the last
    one after the final LayerNorm. chunks=1 is upstream's: the first 3000 feature frames only."""
    frames = int(whisper.feature_extractor.nb_max_frames)
    chunks = max(1, min(int(chunks), features.shape[-1] // frames))
    out = []
    for k in range(chunks):
        part = features[:, :, k * frames:(k + 1) * frames].to(whisper.device, torch.float32)
        hidden = whisper.encoder(part, output_hidden_states=True).hidden_states
        out.append(torch.stack(tuple(hidden), dim=2).float().cpu())
    return torch.cat(out, dim=1)


def chunks_needed(num_frames: int, rows_per_chunk: int = 1500) -> int:
    """30 s chunks whose rows the windows of `num_frames` video frames read: frame f reads rows
    [2f - 4, 2f + 6) of the states (4 zero rows are prepended)."""
    last_row = ROWS_PER_FRAME * (num_frames - 1) + WINDOW_ROWS - ZERO_ROWS_PREPENDED  # exclusive
    return max(1, -(-last_row // rows_per_chunk))


def audio_windows(waveform_16k: np.ndarray, whisper: Whisper, num_frames: int) -> torch.Tensor:
    """What the audio transformer takes for a video of `num_frames`: [1, num_frames, 10, layers+1, C];
    frames past the audio's end are exact zeros."""
    states = stacked_states(whisper, input_features(waveform_16k, whisper.feature_extractor),
                            chunks_needed(num_frames))
    return window_whisper_states(states, num_frames, frames_with_audio(num_frames, len(waveform_16k)))
