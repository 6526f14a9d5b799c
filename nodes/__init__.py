"""ComfyUI node classes: thin adapters over `pipelines/`.

Each module below defines its nodes and its own NODE_CLASS_MAPPINGS / NODE_DISPLAY_NAME_MAPPINGS;
they are merged here. Imports are relative: inside ComfyUI, `nodes` is ComfyUI's nodes.py.
"""

from __future__ import annotations

from importlib import import_module

_NODE_MODULES: tuple[str, ...] = ("load_image", "load_audio", "load_video", "prompt", "audio", "edit",
                                  "model_loader", "lora", "sampler", "wavespeed", "save_video")

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}

for _name in _NODE_MODULES:
    _module = import_module(f".{_name}", __name__)
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)

from . import routes  # noqa: E402,F401  (registers the web extension's routes inside ComfyUI only)
