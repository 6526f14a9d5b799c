"""Which weights diffusers' group offloading keeps on the device, recorded without a GPU.

The real hooks (diffusers.hooks.group_offloading) decide WHEN each block group is onloaded and
offloaded, including the stream prefetch of the next block and the "unmatched" group (embedders,
token refiner, output layers) that stays on for the whole forward. On a CPU-only machine they
cannot run as such (streams and pinned memory need CUDA), so for the duration of
`recorded_group_offloading()` we swap in:

* a stand-in accelerator backend whose streams do nothing (the hooks then take the same code
  path they take on CUDA with use_stream=True);
* ModuleGroup.onload_/offload_ that move no tensor but record which groups are on the device.

The bytes of a group are its parameters' and buffers' real sizes, so what is measured is
diffusers' own schedule times our model's real tensor sizes. Tied to diffusers' ModuleGroup API
(checked against diffusers 0.42.1); an incompatible diffusers fails loudly here.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import torch


class _NoOpStream:
    def synchronize(self) -> None:
        pass

    def wait_stream(self, _other: Any) -> None:
        pass


class _StreamlessBackend:
    """Stands in for torch.cuda as diffusers' TorchDeviceBackend sees it."""

    def __init__(self, device: Any = None):
        self.device = torch.device(device) if device is not None else torch.device("meta")

    Stream = _NoOpStream

    def stream(self, _stream: Any) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def current_stream(self) -> _NoOpStream:
        return _NoOpStream()

    def synchronize(self) -> None:
        pass

    def empty_cache(self) -> None:
        pass


def _group_tensors(group: Any) -> list[torch.Tensor]:
    tensors: dict[int, torch.Tensor] = {}
    for module in group.modules:
        for t in list(module.parameters()) + list(module.buffers()):
            tensors[id(t)] = t
    for t in list(group.parameters) + list(group.buffers):
        tensors[id(t)] = t
    return list(tensors.values())


class ResidencyRecorder:
    """Bytes of the groups onloaded now; `on_change(event)` after every onload (peaks happen there)."""

    def __init__(self, on_change: Callable[[str], None] | None = None, model: torch.nn.Module | None = None):
        self.on_change = on_change
        # diffusers names groups only when offloading to disk: name them by their modules instead
        self._names = {id(m): n for n, m in model.named_modules()} if model is not None else {}
        self._onloaded: dict[int, tuple[str, int]] = {}
        self.max_groups_onloaded = 0
        self.max_bytes = 0
        self.events: list[tuple[str, str]] = []  # (onload|offload, group id), for tests and the printout

    def group_name(self, group: Any) -> str:
        names = [self._names.get(id(m), type(m).__name__) for m in group.modules]
        if group.parameters or group.buffers or not names or any(n == "" for n in names):
            return "non-block modules"
        return "+".join(names)

    @staticmethod
    def group_bytes(group: Any) -> int:
        return sum(t.numel() * t.element_size() for t in _group_tensors(group))

    def bytes(self) -> int:
        return sum(size for _, size in self._onloaded.values())

    def onloaded(self) -> list[str]:
        return [name for name, _ in self._onloaded.values()]

    def onload(self, group: Any) -> None:
        name = self.group_name(group)
        self._onloaded[id(group)] = (name, self.group_bytes(group))
        self.events.append(("onload", name))
        self.max_groups_onloaded = max(self.max_groups_onloaded, len(self._onloaded))
        self.max_bytes = max(self.max_bytes, self.bytes())
        if self.on_change is not None:
            self.on_change(f"onload {name}")

    def offload(self, group: Any) -> None:
        if self._onloaded.pop(id(group), None) is not None:
            self.events.append(("offload", self.group_name(group)))


def missing_diffusers_internals() -> list[str]:
    """The parts of diffusers' group offloading the recorder patches that this diffusers lacks."""
    from diffusers.hooks import group_offloading as go

    missing = [name for name in ("ModuleGroup", "TorchDeviceBackend") if not hasattr(go, name)]
    missing += [m for m in ("onload_", "offload_", "_init_cpu_param_dict") if not hasattr(getattr(go, "ModuleGroup", None), m)]
    return missing


@contextlib.contextmanager
def recorded_group_offloading(recorder: ResidencyRecorder) -> Iterator[None]:
    """Patch diffusers' group offloading to record residency instead of moving tensors."""
    from diffusers.hooks import group_offloading as go

    missing = missing_diffusers_internals()
    if missing:
        raise RuntimeError(f"this diffusers' group offloading has no {missing}; the residency recorder was written "
                           "against diffusers 0.42.1 (diffusers/hooks/group_offloading.py)")
    saved = {
        "backend": go.TorchDeviceBackend,
        "onload_": go.ModuleGroup.onload_,
        "offload_": go.ModuleGroup.offload_,
        "_init_cpu_param_dict": go.ModuleGroup._init_cpu_param_dict,
    }
    go.TorchDeviceBackend = _StreamlessBackend
    go.ModuleGroup.onload_ = lambda self: recorder.onload(self)
    go.ModuleGroup.offload_ = lambda self: recorder.offload(self)
    go.ModuleGroup._init_cpu_param_dict = lambda self: {}  # no pinned CPU copies: nothing moves
    try:
        yield
    finally:
        go.TorchDeviceBackend = saved["backend"]
        go.ModuleGroup.onload_ = saved["onload_"]
        go.ModuleGroup.offload_ = saved["offload_"]
        go.ModuleGroup._init_cpu_param_dict = saved["_init_cpu_param_dict"]


def apply_recorded_group_offloading(model: torch.nn.Module, device: torch.device) -> None:
    """What pipelines/generate.py does on CUDA (block_level, 1 block per group, streams), onto `device`.

    Must run inside `recorded_group_offloading()`; the model's tensors stay where they are.
    """
    from hunyuan_custom.pipelines.offload_policy import stream_transformer_blocks

    stream_transformer_blocks(model, device, use_stream=True)
