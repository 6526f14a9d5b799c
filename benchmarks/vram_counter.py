"""Count the bytes of live tensors on one device, op by op, and remember when the peak happens.

Why our own: torch.distributed._tools.mem_tracker.MemTracker does this for training (params, grads,
optimizer states) and wants a real accelerator or FakeTensorMode on one; on a CPU-only torch build
fake CUDA tensors cannot be made, and it cannot see what diffusers' group offloading keeps
onloaded when no tensor actually moves. This counter is a plain TorchDispatchMode:

* every op's outputs whose storage is NEW (not one of the op's inputs' storages, not already
  counted) are counted as allocated, on the watched device type only ("meta" for shape-only runs,
  "cpu" for the real check in tests/test_vram_estimate.py);
* a storage stops counting once no tensor keeps it alive (checked through a weak reference before
  every op), which is when the CUDA caching allocator would reuse its block;
* weights are counted separately through `resident_weights()` (all parameters, or what the
  offloading hooks have onloaded now), so tensors that existed before counting never count twice.

Like torch.cuda.max_memory_allocated() it sees tensors only: kernel workspaces (cuBLAS, flash
attention's tiles), the CUDA context and allocator fragmentation are NOT in the numbers; the
estimate script prints them as a separate margin.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch.multiprocessing.reductions import StorageWeakRef
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

GIB = 2**30


@dataclass(frozen=True)
class Allocation:
    """One live storage: its size and where it came from."""

    nbytes: int
    shape: tuple[int, ...]
    dtype: torch.dtype
    op: str
    module: str

    def describe(self) -> str:
        size = f"{self.nbytes / GIB:7.3f} GiB" if self.nbytes >= GIB / 100 else f"{self.nbytes / 2**20:7.3f} MiB"
        return f"{size}  {self.dtype} {list(self.shape)}  {self.op} in {self.module or '-'}"


@dataclass
class Peak:
    """The moment of the highest total."""

    total: int = 0
    weights: int = 0
    activations: int = 0
    module: str = ""
    event: str = ""
    largest: list[Allocation] = field(default_factory=list)
    weights_detail: str = ""


class ModuleScope:
    """Which module (by qualified name) is running now: a stack fed by global forward hooks."""

    def __init__(self, names: dict[int, str]):
        self._names = names  # id(module) -> qualified name; modules not listed are ignored
        self.stack: list[str] = []
        self._handles: list[Any] = []

    @classmethod
    def of(cls, *named: tuple[str, torch.nn.Module]) -> "ModuleScope":
        names: dict[int, str] = {}
        for prefix, model in named:
            for name, module in model.named_modules():
                names[id(module)] = ".".join(p for p in (prefix, name) if p)
        return cls(names)

    @property
    def current(self) -> str:
        return self.stack[-1] if self.stack else ""

    def _enter(self, module: torch.nn.Module, *_args: Any) -> None:
        name = self._names.get(id(module))
        if name is not None:
            self.stack.append(name)

    def _leave(self, module: torch.nn.Module, *_args: Any) -> None:
        name = self._names.get(id(module))
        if name is not None and self.stack and self.stack[-1] == name:
            self.stack.pop()

    def __enter__(self) -> "ModuleScope":
        from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

        self._handles = [register_module_forward_pre_hook(self._enter),
                         register_module_forward_hook(self._leave, always_call=True)]
        return self

    def __exit__(self, *_exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.stack.clear()


def _storage_refs(tree: Any) -> set[StorageWeakRef]:
    refs = set()
    for leaf in pytree.tree_leaves(tree):
        if isinstance(leaf, torch.Tensor):
            refs.add(StorageWeakRef(leaf.untyped_storage()))
    return refs


class LiveBytesCounter(TorchDispatchMode):
    """Live bytes on `device_type` (+ resident weights); peak, where it happened, per-scope maxima.

    `scope` (optional) names the running module; `stage_of` maps that name to a stage key for
    `stage_peaks` (default: the name itself). `observe(event)` may be called from outside (e.g.
    when offloading hooks onload weights) to check the peak at that moment too.
    """

    def __init__(
        self,
        device_type: str,
        resident_weights: Callable[[], int] = lambda: 0,
        scope: ModuleScope | None = None,
        stage_of: Callable[[str], str] = lambda name: name,
        top: int = 6,
        weights_detail: Callable[[], str] = lambda: "",
    ) -> None:
        super().__init__()
        self.device_type = device_type
        self.resident_weights = resident_weights
        self.weights_detail = weights_detail  # which weights are on the device (asked at each new peak)
        self.scope = scope
        self.stage_of = stage_of
        self.top = top
        self.label: str | None = None  # overrides the op name of what is allocated (attention stand-ins)
        self._live: dict[StorageWeakRef, Allocation] = {}
        self.live_bytes = 0
        self.peak = Peak()
        self.peak_activations = 0
        self.stage_peaks: dict[str, int] = {}
        self.ops = 0

    # -- counting ------------------------------------------------------------------------------
    def _sweep(self) -> None:
        dead = [ref for ref in self._live if ref.expired()]
        for ref in dead:
            self.live_bytes -= self._live.pop(ref).nbytes

    def _add(self, tensor: torch.Tensor, op: str) -> None:
        storage = tensor.untyped_storage()
        ref = StorageWeakRef(storage)
        if ref in self._live:
            return
        module = self.scope.current if self.scope is not None else ""
        allocation = Allocation(storage.nbytes(), tuple(tensor.shape), tensor.dtype, self.label or op, module)
        self._live[ref] = allocation
        self.live_bytes += allocation.nbytes

    def track(self, *tensors: torch.Tensor, op: str = "input") -> None:
        """Count tensors made outside the counted code (e.g. inputs already on the device)."""
        for tensor in tensors:
            if tensor.device.type == self.device_type:
                self._add(tensor, op)

    def observe(self, event: str, extra: int = 0) -> None:
        """Check the total now; `extra` = bytes that exist only inside a call not run here."""
        self._sweep()
        weights = self.resident_weights()
        activations = self.live_bytes + extra
        total = weights + activations
        module = self.scope.current if self.scope is not None else ""
        stage = self.stage_of(module)
        if total > self.stage_peaks.get(stage, -1):
            self.stage_peaks[stage] = total
        self.peak_activations = max(self.peak_activations, activations)
        if total > self.peak.total:
            largest = sorted(self._live.values(), key=lambda a: a.nbytes, reverse=True)[: self.top]
            self.peak = Peak(total, weights, activations, module, event, largest, self.weights_detail())

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.ops += 1
        self._sweep()
        inputs = _storage_refs((args, kwargs))
        name = str(func.overloadpacket.__name__)
        for leaf in pytree.tree_leaves(out):
            if isinstance(leaf, torch.Tensor) and leaf.device.type == self.device_type:
                if StorageWeakRef(leaf.untyped_storage()) not in inputs:  # a view or in-place result is not new memory
                    self._add(leaf, name)
        self.observe(name)
        return out


# ---------------------------------------------------------------------------------------------
# attention kernels, as they allocate on a GPU


class AttentionModel(TorchFunctionMode):
    """Replaces F.scaled_dot_product_attention by a shape-only stand-in of a chosen kernel.

    Why: on the meta device SDPA falls back to the math path and would "allocate" the N x N score
    matrix (hundreds of GiB at 720p), while on a GPU the fused kernels never build it.
      flash: out + float32 logsumexp [B, H, Nq], what flash / cuDNN / memory-efficient SDPA and
             flash-attn allocate as tensors (their tiles stay in on-chip memory);
      math:  scores and softmax [B, H, Nq, Nk] in the compute dtype, then out (the unfused path).
    The outputs are uninitialised (torch.empty): only for shape-only runs.
    """

    KINDS = ("flash", "math")

    def __init__(self, kind: str = "flash", counter: LiveBytesCounter | None = None) -> None:
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"attention model must be one of {self.KINDS}, got {kind!r}")
        self.kind = kind
        self.counter = counter
        self.calls = 0

    @contextlib.contextmanager
    def _labelled(self, label: str) -> Iterator[None]:
        if self.counter is None:
            yield
            return
        previous, self.counter.label = self.counter.label, label
        try:
            yield
        finally:
            self.counter.label = previous

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not F.scaled_dot_product_attention:
            return func(*args, **kwargs)
        self.calls += 1
        query, key, value = (list(args) + [kwargs.get(k) for k in ("query", "key", "value")][len(args):])[:3]
        batch_heads, n_q, n_k = query.shape[:-2], query.shape[-2], key.shape[-2]
        out_shape = (*batch_heads, n_q, value.shape[-1])
        with self._labelled(f"attention ({self.kind} model)"):
            if self.kind == "math":
                scores = torch.empty((*batch_heads, n_q, n_k), dtype=query.dtype, device=query.device)
                probs = torch.empty_like(scores)
                del scores
                out = torch.empty(out_shape, dtype=query.dtype, device=query.device)
                del probs
            else:
                lse = torch.empty((*batch_heads, n_q), dtype=torch.float32, device=query.device)
                if query.ndim == 4:
                    # Fused kernels write [B, N, H, D] and return it transposed, so the caller's
                    # permute back + flatten is a view, not another copy.
                    batch, heads = batch_heads
                    out = torch.empty((batch, n_q, heads, value.shape[-1]), dtype=query.dtype,
                                      device=query.device).transpose(1, 2)
                else:
                    out = torch.empty(out_shape, dtype=query.dtype, device=query.device)
                del lse
        return out
