"""LoRAs applied at run time: a branch beside each trained Linear, the base weights never touched.

Strategy, and why (the choice the README's LoRA section repeats):
  * each trained Linear gets a forward hook adding (x @ D^T) @ U^T to its output, where D stacks the
    `down` matrices of every LoRA on that layer and U their `up` matrices scaled by
    strength * alpha / rank (a fused upstream layer's `up` split by rows, lora_keys.py). That is exactly
    x @ (W + sum strength * up @ down * alpha / rank)^T + b, the hand-merged layer, up to rounding;
  * changing the LoRA list or a strength removes the hooks and adds new ones: the 26 GB transformer
    stays in RAM as loaded and the checkpoint is not read again; taking every LoRA off gives the base
    model back bit for bit (nothing was merged, so nothing has to be un-merged);
  * it works the same on every load path: bf16/fp16/fp32 weights, fp8 'keep' (Fp8ScaledLinear is a
    Linear; its float8 weight is never dequantized, merged or requantized), group offload (the hooks sit
    on Linears inside the streamed blocks; the LoRA tensors are not module parameters, so diffusers'
    hooks never move them: they go to the compute device once, when sampling starts, and back when the
    GPU is given back) and compiled blocks: dynamo traces the hooks into the block's graph, but does not
    guard on hooks (torch._dynamo.config.skip_nnmodule_hook_guards), so a graph traced before a LoRA
    change would silently keep the old LoRAs. A change on a compiled model therefore resets torch's
    compiled code (torch.compiler.reset): the blocks compile again during the next first step.
Costs: CPU RAM about twice the LoRA file (its pairs kept in float32), VRAM the LoRA in the compute dtype
(a rank-32 LoRA over every layer of the 13B model: ~0.3 GB in bf16), and per step two thin matmuls per
trained layer (rank 32 on a 3072-wide layer: ~2 % of that layer's work). Merging into the weights would
run without the extra matmuls, but un-merging bf16 or fp8 weights is not exact unless a copy of every
touched weight is kept (up to the model's own 26 GB), and a merge into fp8 weights needs a requantization
that changes the model's numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import weights_io
from . import lora_keys
from .lora_files import MOSTLY, LoraChoice, LoraError, partial_warning, read_lora

log = logging.getLogger(__name__)
_STATE = "_hyc_lora_state"


class LoraBranch:
    """The forward hook of one Linear: output + (x @ down^T) @ up^T (every LoRA on it, stacked by rank)."""

    def __init__(self, down: torch.Tensor, up: torch.Tensor) -> None:
        self.down, self.up = down, up  # float32 on the CPU; `up` already scaled
        self._placed: tuple[torch.device, torch.dtype, torch.Tensor, torch.Tensor] | None = None

    def place(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """The pair on `device` in `dtype` (one copy, kept until drop() or another device/dtype)."""
        placed = self._placed
        if placed is None or placed[0] != device or placed[1] != dtype:
            placed = (device, dtype, self.down.to(device, dtype), self.up.to(device, dtype))
            self._placed = placed
        return placed[2], placed[3]

    def drop(self) -> None:
        self._placed = None

    def bytes_on(self, device: torch.device) -> int:
        """Bytes of the pair placed on `device` (0 when it is not there)."""
        from ..offload_policy import on_device

        if self._placed is None or not on_device(self._placed[2], device):
            return 0
        return sum(t.numel() * t.element_size() for t in self._placed[2:])

    def __call__(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        x = args[0]
        down, up = self.place(x.device, x.dtype)
        return output + F.linear(F.linear(x, down), up)

    @property
    def nbytes(self) -> int:
        return self.down.numel() + self.up.numel()


@dataclass
class _State:
    key: tuple
    branches: dict[str, LoraBranch] = field(default_factory=dict)
    handles: list = field(default_factory=list)


def _key(choices: Sequence[LoraChoice]) -> tuple:
    return tuple((str(Path(c.path).expanduser().resolve()), weights_io.file_stamp(c.path), float(c.strength))
                 for c in choices)


def applied_loras(model: nn.Module) -> dict[str, LoraBranch]:
    """Module name -> its branch, for the LoRAs now on `model`."""
    state = getattr(model, _STATE, None)
    return dict(state.branches) if state is not None else {}


def remove_loras(model: nn.Module) -> bool:
    """Take every LoRA branch off (the base model as loaded); True if there were any."""
    state = getattr(model, _STATE, None)
    if state is None:
        return False
    for handle in state.handles:
        handle.remove()
    delattr(model, _STATE)
    return bool(state.branches)


def drop_device_copies(model: nn.Module) -> None:
    """Free the LoRA tensors' device copies (the GPU is given back after a run)."""
    for branch in applied_loras(model).values():
        branch.drop()


def placed_bytes(model: nn.Module, device: torch.device) -> int:
    """Bytes the LoRA branches now on `model` hold on `device` (placed for an earlier job)."""
    return sum(branch.bytes_on(device) for branch in applied_loras(model).values())


def place_loras(model: nn.Module, device: torch.device | str, dtype: torch.dtype) -> None:
    """Put every branch's tensors on the compute device before sampling (not inside a compiled step)."""
    for branch in applied_loras(model).values():
        branch.place(torch.device(device), dtype)


def _deltas(model: nn.Module, choice: LoraChoice, say: Callable[[str], None],
            into: dict[str, list[tuple[torch.Tensor, torch.Tensor]]]) -> str:
    """Add one LoRA's (down, scaled up) pairs per target module to `into`; the console line for it."""
    lora = read_lora(choice.path)
    total = len(lora.pairs) + len(lora.unrecognised)
    missing, layers = list(lora.unrecognised), 0
    found_pairs = []
    for name, (down, up, alpha) in lora.pairs.items():
        try:
            found = lora_keys.targets(model, name, down, up)
        except lora_keys.ShapeMismatch as exc:
            raise LoraError(f"{lora.path.name} does not fit this transformer: {exc}. It is a LoRA for a model of "
                            "another size (HunyuanVideo 1.5?); HunyuanCustom takes HunyuanVideo (13B) LoRAs.") from None
        if found is None:
            missing.append(name)
            continue
        scale = float(choice.strength) * (float(alpha) / down.shape[0] if alpha is not None else 1.0)
        found_pairs += [(target.module, down.float(), target.up.float() * scale) for target in found]
        layers += 1
    if layers < MOSTLY * total:
        shown = ", ".join(sorted(missing)[:3])
        raise LoraError(f"{lora.path.name}: only {layers} of its {total} layers exist in this transformer (missing "
                        f"e.g. {shown}); is it for another HunyuanVideo variant or model size?")
    warning = partial_warning(lora.path, total, missing)
    if warning:
        say(warning)
        log.warning("HunyuanCustom: %s", warning)
    for module, down, up in found_pairs:
        into.setdefault(module, []).append((down, up))
    return f"{lora.path.name} ({lora.format}, {layers} layers, strength {choice.strength:g})"


def _recompile(model: nn.Module, say: Callable[[str], None]) -> None:
    """Compiled blocks traced with other (or no) LoRA hooks must be traced again (see the module docstring)."""
    from .compile_blocks import blocks_compiled

    if blocks_compiled(model):
        torch.compiler.reset()
        say("compile: the LoRAs changed, so the blocks compile again during the first step")


def apply_loras(model: nn.Module, choices: Sequence[LoraChoice], say: Callable[[str], None] = lambda _t: None) -> bool:
    """Make `model` run with exactly these LoRAs (none: the base model). Does nothing when the same files
    at the same strengths are on already; otherwise the old branches come off and new ones go on (no
    weight of the model changes). Says what it does through `say`. Returns whether anything changed.
    Raises LoraError (before changing anything) for a file that does not fit the model."""
    choices = [c for c in choices if float(c.strength) != 0.0]
    key = _key(choices)
    state = getattr(model, _STATE, None)
    if (state.key if state is not None else ()) == key:
        return False
    deltas: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
    lines = [_deltas(model, choice, say, deltas) for choice in choices]
    had = remove_loras(model)
    if not choices:
        if had:
            say("LoRAs taken off: the transformer runs with its own weights (kept in memory, not reloaded)")
            _recompile(model, say)
        return had
    state = _State(key)
    for module_name, pairs in deltas.items():
        branch = LoraBranch(torch.cat([d for d, _ in pairs], dim=0), torch.cat([u for _, u in pairs], dim=1))
        state.branches[module_name] = branch
        state.handles.append(model.get_submodule(module_name).register_forward_hook(branch))
    setattr(model, _STATE, state)
    _recompile(model, say)
    mib = sum(b.nbytes for b in state.branches.values()) * 2 / 2**20  # in bf16/fp16 on the device
    size = f"~{mib:.0f} MiB" if mib >= 1 else "under 1 MiB"
    message = (f"LoRA: {'; '.join(lines)}: runtime branches on {len(state.branches)} layers, base weights "
               f"untouched{' (the transformer was not reloaded)' if had else ''}; {size} in 16-bit")
    say(message)
    log.info("HunyuanCustom: %s", message)
    return True
