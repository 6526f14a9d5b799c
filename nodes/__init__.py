"""ComfyUI node classes: thin adapters over `pipelines/`.

Each module below defines its nodes and its own NODE_CLASS_MAPPINGS / NODE_DISPLAY_NAME_MAPPINGS;
they are merged here. Imports are relative: inside ComfyUI, `nodes` is ComfyUI's nodes.py.
"""

from __future__ import annotations

import functools
from importlib import import_module

from . import comfy

_NODE_MODULES: tuple[str, ...] = ("load_image", "load_audio", "load_video", "prompt", "audio", "edit",
                                  "model_loader", "lora", "sampler", "wavespeed", "save_video")

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}

def _paths_for_client(cls: type) -> type:
    """Wrap the node's function so that an error's message names files relative to ComfyUI's folders
    (comfy.for_client): ComfyUI sends it to the browser that queued the prompt. The exception itself
    is kept (its type, and Cancel passes untouched)."""
    function = getattr(cls, cls.FUNCTION)

    @functools.wraps(function)
    def run(self, *args, **kwargs):
        try:
            return function(self, *args, **kwargs)
        except Exception as exc:
            if exc.args and isinstance(exc.args[0], str) and not comfy.is_cancel(exc):
                exc.args = (comfy.for_client(exc.args[0]),) + exc.args[1:]
            raise

    setattr(cls, cls.FUNCTION, run)
    return cls


for _name in _NODE_MODULES:
    _module = import_module(f".{_name}", __name__)
    for _cls in _module.NODE_CLASS_MAPPINGS.values():
        _paths_for_client(_cls)
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)

from . import routes  # noqa: E402,F401  (registers the web extension's routes inside ComfyUI only)
