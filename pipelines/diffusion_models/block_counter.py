"""Count how many transformer blocks (and their attention layers) actually ran: what a step cache saves.

A block counts when its feed-forward part ran (double blocks: `ff`, single blocks: `proj_mlp`),
its attention when the attention's query projection ran. Forward hooks sit on those leaves, which
run only inside a computed block (or attention), so a cache that skips a block, or returns a
predicted attention output, is not counted. For tests and benchmarks, not for production runs.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from torch import nn


@dataclass
class BlockEvaluations:
    blocks: int = 0  # double + single blocks that ran
    attention: int = 0  # attention layers of those blocks that ran
    per_forward: int = 0  # blocks in one full forward (for ratios)

    def fraction(self, forwards: int) -> float:
        """Share of the blocks `forwards` full forwards would have run."""
        return self.blocks / max(1, forwards * self.per_forward)


@contextmanager
def counting_block_evaluations(model: nn.Module) -> Iterator[BlockEvaluations]:
    counts = BlockEvaluations(per_forward=len(model.transformer_blocks) + len(model.single_transformer_blocks))

    def on_block(*_):
        counts.blocks += 1

    def on_attention(*_):
        counts.attention += 1

    handles = []
    for block in model.transformer_blocks:
        handles += [block.ff.register_forward_hook(on_block), block.attn.to_q.register_forward_hook(on_attention)]
    for block in model.single_transformer_blocks:
        handles += [block.proj_mlp.register_forward_hook(on_block),
                    block.attn.to_q.register_forward_hook(on_attention)]
    try:
        yield counts
    finally:
        for handle in handles:
            handle.remove()
