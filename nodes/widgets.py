"""ComfyUI widget specs built from the one parameter schema (pipelines/schema.py)."""

from __future__ import annotations

from typing import Any

from ..pipelines import schema


def widget(name: str, tooltip: str | None = None, backend: str = schema.LOCAL) -> tuple:
    """The INPUT_TYPES entry for one schema field; identical for every node of a backend that uses it."""
    f = schema.FIELDS[name]
    opts: dict[str, Any] = {"default": f.default, "tooltip": tooltip or f.full_tooltip()}
    if f.kind == "SIZE":
        if backend == schema.REMOTE:  # WaveSpeed renders four sizes: a list
            return (list(schema.REMOTE_SIZES), opts)
        # Locally any W*H of 16s: a text box. A list would not take a typed size (its filter box only
        # filters), and Nodes 2.0 outlines a value that is not in its list in red. Old workflows and API
        # prompts hold the same "W*H" text, so they load and run unchanged.
        opts["multiline"] = False
        return ("STRING", opts)
    if f.kind == "STRING":
        opts["multiline"] = f.multiline
        return ("STRING", opts)
    if f.kind == "BOOLEAN":
        return ("BOOLEAN", opts)
    if f.kind == "CHOICE":
        # ComfyUI's COMBO-with-options form: the server leaves the value to the node (no "value not in
        # list" check), so a node can take older values saved at this widget's place (nodes/sampler.py).
        return ("COMBO", {"options": list(f.options), **opts})
    opts.update(min=f.min, max=f.max, step=f.step)
    if f.kind == "INT":
        opts = {k: (int(v) if isinstance(v, float) else v) for k, v in opts.items()}
    else:
        opts["round"] = 0.01
    opts.update(f.extra)
    return (f.kind, opts)


def widgets(names: tuple[str, ...], backend: str = schema.LOCAL) -> dict[str, tuple]:
    return {n: widget(n, backend=backend) for n in names}


def validation_message(values: dict[str, Any], backend: str) -> bool | str:
    """VALIDATE_INPUTS helper: True, or the error text of the first bad value. ComfyUI puts the
    input's name before it ("size - '50*64' is not valid: ..."), so the text starts with the value."""
    try:
        schema.validate(values, backend, names=list(values))
    except schema.ParameterError as exc:
        return exc.without_name()
    return True
