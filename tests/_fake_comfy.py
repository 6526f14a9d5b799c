"""A stand-in for ComfyUI's `comfy.model_management`, installed into sys.modules for one test.

nodes/comfy.py imports ComfyUI's modules by name at call time, so with this in place the nodes
behave as inside ComfyUI (Cancel, memory management) without ComfyUI installed.
"""

from __future__ import annotations

import sys
import types
from typing import Any, Callable


def install_model_management(monkeypatch, throw_if_interrupted: Callable[[], None], **functions: Any) -> types.ModuleType:
    """Register `comfy` and `comfy.model_management` (with the given functions) for this test."""
    mm = types.ModuleType("comfy.model_management")
    mm.throw_exception_if_processing_interrupted = throw_if_interrupted
    for name, function in functions.items():
        setattr(mm, name, function)
    package = types.ModuleType("comfy")
    package.model_management = mm
    monkeypatch.setitem(sys.modules, "comfy", package)
    monkeypatch.setitem(sys.modules, "comfy.model_management", mm)
    return mm
