"""CFG parallel: the unconditional pass on one rank, the conditional on another, one all_gather a step.

Each rank runs exactly the pass a single process runs (same inputs, same pass object with its own
deep cache and step-cache state), and every rank then holds both velocities, so the guidance mix and
the Euler step are the single process's, bit for bit; the latents stay identical on all ranks.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.distributed as dist


class CfgSplit:
    """A `parallel` object for sampling.denoise: runs this rank's share of the step's passes."""

    def __init__(self, index: int, group=None) -> None:
        self.index, self.group = index, group
        self.bytes_received = 0  # per rank, over the run (benchmarks)

    def run_passes(self, passes: Sequence, run: Callable[[object], torch.Tensor]) -> torch.Tensor:
        if len(passes) != 2:
            raise RuntimeError(f"CFG parallel needs the two batch-1 CFG passes, got {len(passes)} pass(es)")
        mine = run(passes[self.index]).contiguous()
        gathered = [torch.empty_like(mine) for _ in range(2)]
        dist.all_gather(gathered, mine, group=self.group)
        self.bytes_received += mine.numel() * mine.element_size()
        return torch.cat(gathered, dim=0)
