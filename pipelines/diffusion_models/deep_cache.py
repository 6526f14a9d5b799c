"""Upstream's "deepcache": on some steps re-run only the last single-stream block.

On a full step the transformer keeps the INPUT of its last single block. On a reuse step it skips
everything before that block, runs the block on the stored input with the CURRENT timestep
embedding, then the output layers. Upstream does this only for 30-step runs (reuse steps below);
its cache lives on the model, so the split uncond/cond passes of its CPU-offload path overwrite
each other. Here the cache is an explicit object: keep one per separate forward stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

DeepCacheMode = Literal["off", "store", "reuse"]

# Steps (0-based) upstream runs from the cache when it samples with exactly 30 steps.
UPSTREAM_REUSE_STEPS: dict[int, tuple[int, ...]] = {30: (11, 12, 14, 15, 17, 18, 20, 21)}


def upstream_deep_cache_mode(step_index: int, num_steps: int) -> DeepCacheMode:
    """The mode at `step_index` of a `num_steps` run (deepcache on) that gives upstream's result.

    Upstream stores the block input on EVERY full step; only the store right before a reuse step is
    ever read, and each stored input costs ~0.75 GB per CFG pass at 720p x 129. So store only when
    the next step reuses, and run "off" otherwise (other step counts never store anything).
    """
    reuse = UPSTREAM_REUSE_STEPS.get(num_steps, ())
    if step_index in reuse:
        return "reuse"
    return "store" if step_index + 1 in reuse else "off"


@dataclass
class StoredBlockInput:
    """Everything the last single block and the output layers need besides the timestep."""

    image_tokens: torch.Tensor  # [B, ref + video tokens, hidden]
    text_tokens: torch.Tensor  # [B, text tokens, hidden]
    attention_mask: torch.Tensor | None
    rotary_emb: tuple[torch.Tensor, torch.Tensor]
    reference_tokens: int
    latent_shape: tuple[int, ...]  # shape of the noisy latent that produced it


class DeepCache:
    """Pass to the transformer's forward as `deep_cache=`; set `mode` before each call.

    mode "store": normal forward, keeps the last single block's input.
    mode "reuse": runs only the last single block on the stored input, then the output layers.
    mode "off": normal forward, nothing kept.
    """

    def __init__(self, mode: DeepCacheMode = "store") -> None:
        self.mode: DeepCacheMode = mode
        self.stored: StoredBlockInput | None = None

    def clear(self) -> None:
        self.stored = None

    def stored_for(self, latent_shape: tuple[int, ...]) -> StoredBlockInput:
        if self.stored is None:
            raise RuntimeError("DeepCache mode 'reuse' needs a previous forward in mode 'store'; run a full step first")
        if tuple(self.stored.latent_shape) != tuple(latent_shape):
            raise RuntimeError(
                f"DeepCache holds the block input of a latent {list(self.stored.latent_shape)} but this call's latent "
                f"is {list(latent_shape)}; use one DeepCache per batch/size and run a full step first"
            )
        return self.stored
