"""Window parallel: the windows of a long video's step (pipelines/windows.py) over ranks.

The windows of one step are independent, so `size` ranks each run the windows with
`window.index % size == index`, accumulate their velocities (and how many windows covered each
latent frame) into full-length tensors as one process does, and sum both over the ranks after the
step (sampling.denoise calls `owns` and `combine`): every rank then holds the one-process velocity
sum and counts, and takes the same Euler step. One all_reduce of a latent-sized tensor per step.
Exact: a latent is covered by at most two windows (the cyclic wrap), and a sum of two numbers (or
of one and zeros) does not depend on the order.
"""

from __future__ import annotations

from typing import Iterable, Protocol, TypeVar

import torch
import torch.distributed as dist


class _Window(Protocol):
    index: int


W = TypeVar("W", bound=_Window)


class WindowSplit:
    def __init__(self, index: int, size: int, group=None) -> None:
        self.index, self.size, self.group = index, size, group
        self.bytes_exchanged = 0

    def owns(self, window: _Window) -> bool:
        return window.index % self.size == self.index

    def mine(self, windows: Iterable[W]) -> list[W]:
        """This rank's windows of the step (round robin by window index)."""
        return [w for w in windows if self.owns(w)]

    def combine(self, velocity: torch.Tensor | None, counts: torch.Tensor | None, latents: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """The step's summed velocity [1, C, T, h, w] and per-frame window counts [T], over all ranks
        (a rank that ran no window adds zeros)."""
        if velocity is None:
            velocity = torch.zeros_like(latents)
        if counts is None:
            counts = torch.zeros(latents.shape[2], device=latents.device, dtype=torch.float32)
        both = torch.cat([velocity.flatten(), counts.to(velocity.dtype)])
        dist.all_reduce(both, group=self.group)
        self.bytes_exchanged += both.numel() * both.element_size()
        return both[: velocity.numel()].view_as(velocity), both[velocity.numel():].to(counts.dtype)
