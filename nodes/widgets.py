"""ComfyUI widget specs built from the one parameter schema (pipelines/schema.py)."""

from __future__ import annotations

from typing import Any

from ..pipelines import schema


def widget(name: str, tooltip: str | None = None) -> tuple:
    """The INPUT_TYPES entry for one schema field; identical for every node that uses it."""
    f = schema.FIELDS[name]
    opts: dict[str, Any] = {"default": f.default, "tooltip": tooltip or f.full_tooltip()}
    if f.kind == "SIZE":
        return (list(f.options), opts)
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


def widgets(names: tuple[str, ...]) -> dict[str, tuple]:
    return {n: widget(n) for n in names}


def validation_message(values: dict[str, Any], backend: str) -> bool | str:
    """VALIDATE_INPUTS helper: True, or the error text of the first bad value."""
    try:
        schema.validate(values, backend, names=list(values))
    except schema.ParameterError as exc:
        return str(exc)
    return True
