"""Cancel between transformer blocks, not only between steps.

One 720p step is tens of seconds on a mid-range GPU (minutes on a CPU): a check before each step
left Cancel waiting that long. For the run, a forward pre-hook on every double and single block
calls the same `check_cancel` the loop calls between steps (ComfyUI's is a flag read, so 60 calls
per forward cost nothing), and its exception stops the forward where it is. A plain torch hook,
outside any compiled block and beside diffusers' offload and cache hooks, removed after the run.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from torch import nn


def _blocks(model: nn.Module) -> list[nn.Module]:
    return [*getattr(model, "transformer_blocks", []), *getattr(model, "single_transformer_blocks", [])]


@contextmanager
def cancel_between_blocks(model: nn.Module, check_cancel: Callable[[], None] | None) -> Iterator[None]:
    """While inside, every transformer block first calls `check_cancel` (nothing when it is None)."""
    if check_cancel is None:
        yield
        return

    def before_block(_module: nn.Module, _args: tuple) -> None:
        check_cancel()

    handles = [block.register_forward_pre_hook(before_block) for block in _blocks(model)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
