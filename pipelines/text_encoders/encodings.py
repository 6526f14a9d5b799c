"""Encoded prompts: one row (PromptEncoding) and the rows the transformer gets (TextConditioning,
[uncond, cond] under CFG with upstream's negative-mask rewrite). Plain data, no transformers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from . import prompt_template as pt


@dataclass(frozen=True)
class PromptEncoding:
    """One prompt's encoding (one batch row), in upstream's layout after the template crop."""

    states: torch.Tensor  # [1, L, D] LLaVA hidden_states[-3]: [text][image features][padding]
    mask: torch.Tensor  # [1, L] int64: [1]*(n-crop) + [0]*(max_len-n) + [1]*image_extra
    pooled: torch.Tensor  # [1, D2] CLIP pooler_output
    image_extra: int  # image features - 1 (575 for the real model)

    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> "PromptEncoding":
        return PromptEncoding(
            self.states.to(device=device, dtype=dtype), self.mask.to(device=device),
            self.pooled.to(device=device, dtype=dtype), self.image_extra,
        )


@dataclass(frozen=True)
class TextConditioning:
    """What the transformer takes as text: batch order [uncond, cond] under CFG, else [cond]."""

    states: torch.Tensor  # [B, L, D]
    mask: torch.Tensor  # [B, L] int64 (uncond row already rewritten as upstream does)
    pooled: torch.Tensor  # [B, D2]

    @property
    def batch_size(self) -> int:
        return int(self.states.shape[0])

    @property
    def has_uncond(self) -> bool:
        return self.batch_size == 2

    def cond_only(self) -> "TextConditioning":
        """The conditional row alone (guidance 1: one pass)."""
        return TextConditioning(self.states[-1:], self.mask[-1:], self.pooled[-1:])

    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> "TextConditioning":
        return TextConditioning(
            self.states.to(device=device, dtype=dtype), self.mask.to(device=device),
            self.pooled.to(device=device, dtype=dtype),
        )


def cfg_conditioning(cond: PromptEncoding, uncond: PromptEncoding) -> TextConditioning:
    """Stack [uncond, cond] and apply upstream's negative-row mask rewrite."""
    if cond.states.shape != uncond.states.shape:
        raise ValueError(f"positive and negative encodings differ in shape: {tuple(cond.states.shape)} vs {tuple(uncond.states.shape)}")
    neg_mask = pt.cfg_negative_mask(uncond.mask, uncond.image_extra)
    return TextConditioning(
        states=torch.cat([uncond.states, cond.states.to(uncond.states)], dim=0),
        mask=torch.cat([neg_mask, cond.mask.to(neg_mask)], dim=0),
        pooled=torch.cat([uncond.pooled, cond.pooled.to(uncond.pooled)], dim=0),
    )


def single_conditioning(cond: PromptEncoding) -> TextConditioning:
    """Guidance 1: only the conditional row, its mask unchanged."""
    return TextConditioning(cond.states, cond.mask, cond.pooled)
