"""TeaCache for our transformer: skip every block on steps whose first-block input barely changed.

Why our own: diffusers (0.42) ships FirstBlockCache, MagCache and TaylorSeer hooks but no TeaCache.
This follows TeaCache's published rule (Liu et al., "Timestep Embedding Tells: It's Time to Cache
for Video Diffusion Model", arXiv 2411.19108, HunyuanVideo variant):

  m_t  = the first double block's modulated input: LayerNorm(image tokens) * (1 + scale) + shift,
         with shift/scale from that block's norm1 on the timestep embedding;
  acc += poly(mean|m_t - m_prev| / mean|m_prev|)   (the polynomial its authors fitted for HunyuanVideo);
  acc < threshold  -> skip every block: image tokens = block-0 input + the residual of the last
                      computed step (that step's last-block image output minus its block-0 input);
  otherwise        -> run every block, acc = 0, keep the new residual.
  The first and the last step always run every block.

The polynomial was fitted on HunyuanVideo T2V outputs, not on HunyuanCustom's weights; the
threshold therefore means roughly, not exactly, what it means there.

Written as diffusers hooks (HookRegistry / ModelHook / StateManager, as its FirstBlockCache and
MagCache are) so it composes with group offloading the same way and keeps one state per
`cache_context` name, i.e. per CFG pass.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from diffusers.hooks import HookRegistry, ModelHook
from diffusers.hooks.hooks import BaseState, StateManager
from torch import nn

# TeaCache's rescaling polynomial for HunyuanVideo, highest power first (from the TeaCache authors).
HUNYUAN_VIDEO_POLYNOMIAL = (7.33226126e02, -4.01131952e02, 6.75869174e01, -3.14987800e00, 9.61237896e-02)

HEAD_HOOK = "hyc_teacache_head"
BLOCK_HOOK = "hyc_teacache_block"


@dataclass
class TeaCacheSchedule:
    """Shared by the hooks of one run; the sampler moves it along (see step_cache.py)."""

    threshold: float  # this step's: -inf outside the user's start/end window (never skip), +inf forces a skip
    num_steps: int
    step_index: int = 0
    polynomial: tuple[float, ...] = HUNYUAN_VIDEO_POLYNOMIAL
    # Under sequence parallel each rank holds a share of the tokens: `reduce` sums a tensor over the
    # ranks (all_reduce), so every rank measures the whole change and takes the same decision (a rank
    # that skipped while another computed would leave that one waiting in attention's all-to-all).
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None

    def relative_change(self, modulated: torch.Tensor, previous: torch.Tensor) -> float:
        if self.reduce is None:
            return ((modulated - previous).abs().mean() / previous.abs().mean()).item()
        sums = torch.stack([(modulated - previous).abs().sum(), previous.abs().sum()]).float()
        sums = self.reduce(sums)
        return (sums[0] / sums[1]).item()

    def rescale(self, relative_change: float) -> float:
        value = 0.0
        for coefficient in self.polynomial:  # Horner
            value = value * relative_change + coefficient
        return value


class _PassState(BaseState):
    def __init__(self) -> None:
        self.previous_modulated: torch.Tensor | None = None
        self.accumulated = 0.0
        self.residual: torch.Tensor | None = None
        self.head_input: torch.Tensor | None = None
        self.compute = True

    def reset(self) -> None:
        self.__init__()


def _block_inputs(args: tuple, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden_states, encoder_hidden_states) of a HunyuanVideo block call."""
    hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
    text = kwargs["encoder_hidden_states"] if "encoder_hidden_states" in kwargs else args[1]
    return hidden, text


class TeaCacheHeadHook(ModelHook):
    """On the first double block: decides, per pass and step, whether the blocks run."""

    _is_stateful = True

    def __init__(self, state_manager: StateManager, schedule: TeaCacheSchedule, norm: nn.Module) -> None:
        super().__init__()
        self.state_manager = state_manager
        self.schedule = schedule
        self.norm = norm  # the block's norm1, or a copy on the compute device when the block is streamed

    @torch.compiler.disable
    def _decide(self, state: _PassState, modulated: torch.Tensor) -> bool:
        s = self.schedule
        previous, state.previous_modulated = state.previous_modulated, modulated
        if previous is None or state.residual is None or s.step_index in (0, s.num_steps - 1):
            state.accumulated = 0.0
            return True
        change = s.relative_change(modulated, previous)
        state.accumulated += s.rescale(change)
        if state.accumulated < s.threshold:
            return False
        state.accumulated = 0.0
        return True

    def new_forward(self, module: nn.Module, *args: Any, **kwargs: Any):
        hidden, text = _block_inputs(args, kwargs)
        temb = kwargs["temb"] if "temb" in kwargs else args[2]
        state: _PassState = self.state_manager.get_state()
        modulated = self.norm(hidden, emb=temb)[0]
        state.compute = self._decide(state, modulated)
        if not state.compute:
            return hidden + state.residual, text
        state.head_input = hidden
        return self.fn_ref.original_forward(*args, **kwargs)

    def reset_state(self, module: nn.Module) -> nn.Module:
        self.state_manager.reset()
        return module


class TeaCacheBlockHook(ModelHook):
    """On every other block: returns its inputs unchanged on a skipped step; the last block
    also records the residual of a computed step."""

    def __init__(self, state_manager: StateManager, is_tail: bool) -> None:
        super().__init__()
        self.state_manager = state_manager
        self.is_tail = is_tail

    def new_forward(self, module: nn.Module, *args: Any, **kwargs: Any):
        state: _PassState = self.state_manager.get_state()
        if not state.compute:
            return _block_inputs(args, kwargs)
        output = self.fn_ref.original_forward(*args, **kwargs)
        if self.is_tail and state.head_input is not None:
            state.residual = output[0] - state.head_input
            state.head_input = None
        return output


def sequence_parallel_sum(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """A sum over the ranks that share `model`'s tokens (diffusers' context parallelism), or None."""
    config = getattr(getattr(model, "_parallel_config", None), "context_parallel_config", None)
    if config is None:
        return None
    import torch.distributed as dist

    group = config._flattened_mesh.get_group()

    def reduce(tensor: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(tensor, group=group)
        return tensor

    return reduce


@dataclass
class TeaCacheHandle:
    """What apply_teacache hooked, for remove_teacache."""

    blocks: list[nn.Module] = field(default_factory=list)


def apply_teacache(model: nn.Module, schedule: TeaCacheSchedule, compute_device: torch.device | None = None
                   ) -> TeaCacheHandle:
    """Hook TeaCache onto `model`'s double and single blocks (call model.cache_context(name) around
    each forward). `compute_device`: where a streamed (group-offloaded) model computes; the
    indicator then uses a copy of block 0's norm1 on that device, since the block's own weights
    arrive there only when the block itself runs."""
    blocks = [*model.transformer_blocks, *model.single_transformer_blocks]
    if len(blocks) < 2:
        raise ValueError("TeaCache needs at least two transformer blocks")
    head_norm = blocks[0].norm1
    if compute_device is not None:
        if compute_device.type == "cuda":
            torch.cuda.synchronize(compute_device)  # no block prefetch may still be writing these weights
        head_norm = copy.deepcopy(head_norm).to(compute_device)
    state_manager = StateManager(_PassState)
    HookRegistry.check_if_exists_or_initialize(blocks[0]).register_hook(
        TeaCacheHeadHook(state_manager, schedule, head_norm), HEAD_HOOK)
    for index, block in enumerate(blocks[1:], start=1):
        HookRegistry.check_if_exists_or_initialize(block).register_hook(
            TeaCacheBlockHook(state_manager, is_tail=index == len(blocks) - 1), BLOCK_HOOK)
    _forget_child_registries(model)
    return TeaCacheHandle(blocks)


def remove_teacache(model: nn.Module, handle: TeaCacheHandle) -> None:
    for block in handle.blocks:
        registry = HookRegistry.check_if_exists_or_initialize(block)
        registry.remove_hook(HEAD_HOOK, recurse=False)
        registry.remove_hook(BLOCK_HOOK, recurse=False)
    _forget_child_registries(model)


def _forget_child_registries(model: nn.Module) -> None:
    """Newer diffusers cache the list of hooked submodules that cache_context walks; hooks were
    added or removed, so drop that list (older versions walk the tree every time)."""
    forget = getattr(HookRegistry.check_if_exists_or_initialize(model), "invalidate_child_registries_cache", None)
    if forget is not None:
        forget()
