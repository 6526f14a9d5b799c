"""The `compile` option: torch.compile over the transformer's repeated blocks.

Which blocks: the classes diffusers lists in the model's `_repeated_blocks` (the double and single
blocks, the patch embed, the token refiner), each class compiled once and shared by all its
instances, so the first step costs seconds to minutes instead of a whole-model compile.

Why not diffusers' `compile_repeated_blocks` itself: it calls `module.compile()`, which compiles
`_call_impl` and so also the hooks around each block (group offloading, step caches). Every
block's hooks are different Python objects, so dynamo recompiles per block and, past its
recompile limit (8), silently runs the remaining blocks uncompiled (measured on the CPU with group
offloading). Here the blocks' own `forward` is compiled instead, underneath any hook: call
`compile_blocks` right after loading, before group offloading or any cache is hooked on. Hooks
then wrap compiled code and may change between runs without a recompile.

Off by default. When off, nothing here runs: no block is touched and no check is made.
"""

from __future__ import annotations

import os
import shutil
import sys
import types
from typing import Any

import torch
from torch import nn

_COMPILED_FLAG = "_hyc_blocks_compiled"


def compile_unavailable_reason(device: torch.device | str) -> str | None:
    """Why the installed torch cannot compile for `device` (None when it can), found without
    compiling anything: torch.compile itself, this Python, and the code generator it needs."""
    version = torch.__version__
    if not hasattr(torch, "compile"):
        return f"torch {version} has no torch.compile (it needs torch 2.0 or newer)"
    from torch import _dynamo

    if not _dynamo.is_dynamo_supported():
        return (f"torch {version} cannot compile under Python {sys.version_info.major}.{sys.version_info.minor} "
                "(torch.compile does not support this Python yet)")
    device = torch.device(device)
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            return ("torch.compile on an NVIDIA GPU needs Triton, which is not installed (pip install triton; "
                    "on Windows: pip install triton-windows)")
    elif device.type == "cpu":
        candidates = [os.environ.get("CXX"), "g++", "c++", "clang++", "cl"]
        if not any(shutil.which(c) for c in candidates if c):
            return "torch.compile on the CPU needs a C++ compiler (g++, clang++ or MSVC's cl) on PATH"
    return None


def blocks_compiled(model: nn.Module) -> bool:
    return bool(getattr(model, _COMPILED_FLAG, False))


def compile_blocks(model: nn.Module, **compile_options: Any) -> int:
    """Compile the forward of every repeated block of `model` (`compile_options` go to
    torch.compile); compiling itself happens on the first forward. Returns how many modules now
    run compiled code. Idempotent. Refuses a model that already has hooks on those blocks."""
    if blocks_compiled(model):
        return 0
    names = set(getattr(model, "_repeated_blocks", None) or ())
    if not names:
        raise ValueError(f"{type(model).__name__} lists no repeated blocks to compile")
    compiled: dict[type, Any] = {}
    count = 0
    for name, module in model.named_modules():
        if type(module).__name__ not in names:
            continue
        registry = getattr(module, "_diffusers_hook", None)
        if registry is not None and registry.hooks:
            raise RuntimeError(f"{name} already has hooks ({', '.join(registry.hooks)}); compile the blocks "
                               "before group offloading or a step cache is applied")
        cls = type(module)
        if cls not in compiled:
            compiled[cls] = torch.compile(cls.forward, **compile_options)
        module.forward = types.MethodType(compiled[cls], module)
        count += 1
    setattr(model, _COMPILED_FLAG, True)
    return count


def is_compile_error(error: BaseException) -> bool:
    """An error raised by torch's compiler stack (dynamo, inductor, triton), not by the model."""
    for err in (error, error.__cause__):
        module = type(err).__module__ if err is not None else ""
        if module.startswith(("torch._dynamo", "torch._inductor", "triton")):
            return True
    return False
