"""HunyuanCustom's audio conditioning modules (our own code; diffusers has no equivalent).

`AudioProjection` turns per-video-frame windows of whisper features into a few context tokens;
`AudioCrossAttention` lets each latent frame's video tokens attend to that frame's audio tokens.
Parameter names (proj1/proj2/proj3/norm, norm1/norm2/to_q/to_kv/to_out) match upstream's
AudioProjNet2 / PerceiverAttentionCA so checkpoints load without renaming.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AudioProjection(nn.Module):
    """[B, F, window, layers, channels] whisper windows -> [B, F, context_tokens, output_dim]."""

    def __init__(
        self,
        seq_len: int = 10,
        blocks: int = 5,
        channels: int = 384,
        intermediate_dim: int = 1024,
        output_dim: int = 3072,
        context_tokens: int = 4,
    ) -> None:
        super().__init__()
        self.seq_len, self.blocks, self.channels = seq_len, blocks, channels
        self.context_tokens, self.output_dim = context_tokens, output_dim
        self.proj1 = nn.Linear(seq_len * blocks * channels, intermediate_dim)
        self.proj2 = nn.Linear(intermediate_dim, intermediate_dim)
        self.proj3 = nn.Linear(intermediate_dim, context_tokens * output_dim)
        self.norm = nn.LayerNorm(output_dim)

    def forward(self, audio_windows: torch.Tensor) -> torch.Tensor:
        expected = (self.seq_len, self.blocks, self.channels)
        if audio_windows.ndim != 5 or tuple(audio_windows.shape[2:]) != expected:
            raise ValueError(
                f"audio windows must be [batch, frames, {expected[0]}, {expected[1]}, {expected[2]}], "
                f"got {list(audio_windows.shape)} (Whisper windows: [frames, 10, encoder layers + 1, Whisper width]; "
                "the released audio checkpoint takes whisper-tiny's: 5 states of 384 channels)"
            )
        batch, frames = audio_windows.shape[:2]
        hidden = audio_windows.reshape(batch * frames, -1)
        hidden = torch.relu(self.proj1(hidden))
        hidden = torch.relu(self.proj2(hidden))
        tokens = self.proj3(hidden).reshape(batch * frames, self.context_tokens, self.output_dim)
        return self.norm(tokens).reshape(batch, frames, self.context_tokens, self.output_dim)


class AudioCrossAttention(nn.Module):
    """Per-frame cross-attention: queries from video tokens, keys/values from audio tokens.

    x: audio tokens [B, T, n_audio, dim]; latents: video tokens [B, T, n_video, dim].
    Returns the update for the video tokens [B, T, n_video, dim] (not yet added or scaled).
    """

    def __init__(self, dim: int = 3072, dim_hidden: int = 1024, dim_head: int = 1024) -> None:
        super().__init__()
        if dim_hidden % dim_head != 0:
            raise ValueError(f"dim_hidden ({dim_hidden}) must be a multiple of dim_head ({dim_head})")
        self.dim_head = dim_head
        self.heads = dim_hidden // dim_head
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim_hidden, bias=False)
        self.to_kv = nn.Linear(dim, dim_hidden * 2, bias=False)
        self.to_out = nn.Linear(dim_hidden, dim, bias=False)

    def forward(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        batch, frames = latents.shape[:2]
        audio = self.norm1(x.flatten(0, 1))
        video = self.norm2(latents.flatten(0, 1))
        query = self.to_q(video)
        key, value = self.to_kv(audio).chunk(2, dim=-1)
        # [(B T), n, heads*dim_head] -> [(B T), heads, n, dim_head]; SDPA's default scale
        # 1/sqrt(dim_head) equals upstream's (q*s)@(k*s)^T with s = dim_head**-0.25.
        query, key, value = (t.unflatten(-1, (self.heads, self.dim_head)).transpose(1, 2) for t in (query, key, value))
        out = F.scaled_dot_product_attention(query, key, value)
        out = self.to_out(out.transpose(1, 2).flatten(2))
        return out.unflatten(0, (batch, frames))
