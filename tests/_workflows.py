"""Test-only tooling for workflow JSON: validate UI-format graphs, convert them to API format,
and run API graphs through our node classes (emulating the few core nodes our workflows use).

Node declarations come in ComfyUI's /object_info shape for both core nodes (a real server's
answer, tests/fixtures/comfyui/object_info.json) and ours (built from NODE_CLASS_MAPPINGS), so
one validator handles both.

Frontend rules followed here (ComfyUI frontend, UI format version 0.4):
- `widgets_values` lists the widget inputs (INT, FLOAT, STRING, BOOLEAN, combos) in INPUT_TYPES
  order, required then optional; an input with `forceInput` is a socket, not a widget.
- An INT input gets an extra control value right after it ("fixed"/"increment"/"decrement"/
  "randomize") when it declares `control_after_generate`, or, when it says nothing, when it is
  named `seed` or `noise_seed` (useIntWidget: `control_after_generate ?? [seed, noise_seed]`).
  A combo gets one only when it declares `control_after_generate`.
- The first REQUIRED combo with `image_upload`/`video_upload` gets an upload button whose value
  ("image") is saved too. `audio_upload` (core LoadAudio) adds an audio player and an upload
  button, both saved as null: LoadAudio -> [audio, null, null]. The frontend adds it as an extra required input that /object_info's
  `input_order` does not name, and widgets follow `input_order` (required, then optional) with
  unnamed inputs last: so the upload value comes after ALL widgets, optional ones included
  (frontend 1.27: LoadImage -> [image, "image"]; our LoadImage -> [image, url, "image"]).
- A widget converted to an input and linked from an output keeps its slot in widgets_values.
- `inputs` lists the sockets first (inputs that are not widgets), in declared order, required
  then optional, then the widgets that are linked, in declared order (required then optional);
  optional inputs carry "shape": 7 (a hollow circle). Both 1.27 and 1.58 build a node's inputs
  so and save them so; 1.58 also rewrites a loaded file into this order, which moves the target
  slot of links that pointed elsewhere (frontend_inputs()).
- Frontend-only nodes (Note, MarkdownNote, Reroute, PrimitiveNode) never reach the server;
  modes: 0 always, 2 never (muted), 4 bypass.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "comfyui" / "object_info.json"
FRONTEND_ONLY = frozenset({"Note", "MarkdownNote", "Reroute", "PrimitiveNode"})
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize"})
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
UPLOAD_FLAGS = ("image_upload", "video_upload")
MODE_ALWAYS, MODE_NEVER, MODE_BYPASS = 0, 2, 4


# ---------------------------------------------------------------- declarations (object_info)

def load_object_info(path: str | Path = FIXTURE) -> dict[str, dict]:
    """Core nodes as a real ComfyUI server declares them ({class_type: info})."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return data["nodes"] if "nodes" in data else data


def node_info(class_type: str, cls: Any, display_name: str | None = None) -> dict:
    """The /object_info entry ComfyUI builds for a V1 node class."""
    declared = cls.INPUT_TYPES()
    inputs = {section: dict(declared.get(section) or {}) for section in ("required", "optional", "hidden")}
    inputs = {k: v for k, v in inputs.items() if v}
    returns = list(getattr(cls, "RETURN_TYPES", ()))
    info = {
        "input": inputs,
        "input_order": {section: list(values) for section, values in inputs.items()},
        "output": [r if isinstance(r, str) else "COMBO" for r in returns],
        "output_is_list": list(getattr(cls, "OUTPUT_IS_LIST", [False] * len(returns))),
        "output_name": list(getattr(cls, "RETURN_NAMES", None) or returns),
        "name": class_type,
        "display_name": display_name or class_type,
        "category": getattr(cls, "CATEGORY", ""),
        "description": getattr(cls, "DESCRIPTION", ""),
        "output_node": bool(getattr(cls, "OUTPUT_NODE", False)),
    }
    return json.loads(json.dumps(info))  # tuples -> lists, like the JSON the frontend receives


def our_node_classes() -> dict[str, Any]:
    from hunyuan_custom import NODE_CLASS_MAPPINGS

    return dict(NODE_CLASS_MAPPINGS)


def our_object_info(node_classes: Mapping[str, Any] | None = None) -> dict[str, dict]:
    from hunyuan_custom import NODE_DISPLAY_NAME_MAPPINGS

    classes = our_node_classes() if node_classes is None else node_classes
    return {name: node_info(name, cls, NODE_DISPLAY_NAME_MAPPINGS.get(name)) for name, cls in classes.items()}


def all_object_info(node_classes: Mapping[str, Any] | None = None) -> dict[str, dict]:
    core = load_object_info()
    ours = our_object_info(node_classes)
    clash = sorted(set(core) & set(ours))
    if clash:
        raise ValueError(f"our node ids clash with core ComfyUI nodes: {clash}")
    return {**core, **ours}


def spec_type(spec: Any) -> str:
    kind = spec[0] if isinstance(spec, (list, tuple)) and spec else spec
    return "COMBO" if isinstance(kind, (list, tuple)) else str(kind)


def spec_options(spec: Any) -> dict:
    if isinstance(spec, (list, tuple)) and len(spec) > 1 and isinstance(spec[1], dict):
        return spec[1]
    return {}


def combo_choices(spec: Any) -> list | None:
    kind = spec[0] if isinstance(spec, (list, tuple)) and spec else spec
    if isinstance(kind, (list, tuple)):
        return list(kind)
    if kind == "COMBO":
        return list(spec_options(spec).get("options", []))
    return None


def is_widget(spec: Any) -> bool:
    return spec_type(spec) in WIDGET_TYPES and not spec_options(spec).get("forceInput")


def is_upload_combo(spec: Any) -> bool:
    return any(spec_options(spec).get(flag) for flag in UPLOAD_FLAGS)


def has_control(name: str, spec: Any) -> bool:
    opts, kind = spec_options(spec), spec_type(spec)
    flag = opts.get("control_after_generate")
    if kind == "INT":
        return bool(flag) if flag is not None else name in ("seed", "noise_seed")
    return kind == "COMBO" and bool(flag)


def declared_inputs(info: dict) -> list[tuple[str, Any, bool]]:
    """(name, spec, required) for required then optional inputs, in declaration order."""
    out = []
    for section in ("required", "optional"):
        specs = info.get("input", {}).get(section) or {}
        order = info.get("input_order", {}).get(section) or list(specs)
        out += [(name, specs[name], section == "required") for name in order if name in specs]
    return out


OPTIONAL_SHAPE = 7  # LiteGraph's RenderShape.HollowCircle: how the frontend marks optional inputs


def frontend_inputs(info: dict, widget_inputs: set[str] | frozenset[str] = frozenset()) -> list[tuple[str, Any, bool]]:
    """(name, spec, required) of a node's `inputs` in the order the frontend writes them: the
    sockets in declared order, then those of `widget_inputs` (widgets with an input entry, i.e.
    linked ones) in declared order."""
    declared = declared_inputs(info)
    sockets = [entry for entry in declared if not is_widget(entry[1])]
    widgets = [entry for entry in declared if is_widget(entry[1]) and entry[0] in widget_inputs]
    return sockets + widgets


@dataclass(frozen=True)
class Slot:
    """One position in widgets_values."""

    name: str
    kind: str  # "value" | "control" | "upload" | "audio_ui"
    spec: Any = None


def widget_slots(info: dict) -> list[Slot]:
    slots, upload = [], []
    for name, spec, required in declared_inputs(info):
        if not is_widget(spec):
            continue
        slots.append(Slot(name, "value", spec))
        if has_control(name, spec):
            slots.append(Slot(name, "control"))
        if required and is_upload_combo(spec) and not upload:
            upload.append(Slot(name, "upload"))
        elif required and spec_options(spec).get("audio_upload") and not upload:
            upload += [Slot(name, "audio_ui"), Slot(name, "audio_upload")]
    # The upload button is last: it is not in input_order (see the module docstring). Seen in a
    # real browser: with it right after `image`, our LoadImage's url widget loaded as "image".
    return slots + upload


def value_problem(name: str, spec: Any, value: Any) -> str | None:
    """Why `value` does not fit a widget spec, or None."""
    kind, opts = spec_type(spec), spec_options(spec)
    if kind in ("INT", "FLOAT"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"{name} = {value!r} is not a number"
        if kind == "INT" and not float(value).is_integer():
            return f"{name} = {value!r} is not a whole number"
        if opts.get("min") is not None and value < opts["min"]:
            return f"{name} = {value!r} is below its minimum {opts['min']}"
        if opts.get("max") is not None and value > opts["max"]:
            return f"{name} = {value!r} is above its maximum {opts['max']}"
        return None
    if kind == "STRING":
        return None if isinstance(value, str) else f"{name} = {value!r} is not text"
    if kind == "BOOLEAN":
        return None if isinstance(value, bool) else f"{name} = {value!r} is not true/false"
    if kind == "COMBO":
        if is_upload_combo(spec) or opts.get("audio_upload"):  # choices are the user's input folder: any file name
            return None if isinstance(value, str) and value else f"{name} = {value!r} is not a file name"
        choices = combo_choices(spec) or []
        return None if value in choices else f"{name} = {value!r} is not one of {choices}"
    return None


def types_match(a: Any, b: Any) -> bool:
    """Link type compatibility as the frontend checks it: '*' matches anything, comma lists
    match when they share a type, a combo widget input accepts COMBO."""
    if isinstance(a, (list, tuple)):
        a = "COMBO"
    if isinstance(b, (list, tuple)):
        b = "COMBO"
    a, b = str(a or "*"), str(b or "*")
    if a == "*" or b == "*" or a == b:
        return True
    return bool({t.strip() for t in a.split(",")} & {t.strip() for t in b.split(",")})


# ---------------------------------------------------------------- UI-format validation

def _links_by_id(graph: dict) -> dict[int, list]:
    out = {}
    for link in graph.get("links") or []:
        if isinstance(link, dict):  # some tools write links as objects
            link = [link.get("id"), link.get("origin_id"), link.get("origin_slot"), link.get("target_id"),
                    link.get("target_slot"), link.get("type")]
        out[link[0]] = list(link)
    return out


def _node_label(node: dict) -> str:
    return f"node {node.get('id')} ({node.get('type')})"


def validate_ui_workflow(graph: dict, object_info: Mapping[str, dict] | None = None) -> list[str]:
    """Every problem that would make the UI or the server reject (or misread) this workflow."""
    info_by_type = all_object_info() if object_info is None else object_info
    problems: list[str] = []
    nodes = graph.get("nodes")
    if not isinstance(nodes, list):
        return ["workflow has no 'nodes' list (is this an API-format file?)"]
    by_id: dict[Any, dict] = {}
    for node in nodes:
        if node.get("id") in by_id:
            problems.append(f"node id {node.get('id')} is used twice")
        by_id[node.get("id")] = node
    links = _links_by_id(graph)
    if by_id and isinstance(graph.get("last_node_id"), int) and graph["last_node_id"] < max(by_id):
        problems.append(f"last_node_id {graph['last_node_id']} is below the highest node id {max(by_id)}")
    if links and isinstance(graph.get("last_link_id"), int) and graph["last_link_id"] < max(links):
        problems.append(f"last_link_id {graph['last_link_id']} is below the highest link id {max(links)}")

    for node in nodes:
        kind = node.get("type")
        if kind in FRONTEND_ONLY:
            continue
        info = info_by_type.get(kind)
        if info is None:
            problems.append(f"{_node_label(node)}: unknown node type (not ours, not core, not frontend-only)")
            continue
        problems += _check_widgets(node, info)
        problems += _check_node_sockets(node, info, links)

    for link_id, link in links.items():
        problems += _check_link(link_id, link, by_id, info_by_type)
    problems += _check_primitives(nodes, by_id, links, info_by_type)
    return problems


def _check_widgets(node: dict, info: dict) -> list[str]:
    slots = widget_slots(info)
    values = node.get("widgets_values", [])
    if isinstance(values, dict):
        return [f"{_node_label(node)}: widgets_values is an object; the 0.4 format stores a list"]
    if len(values) != len(slots):
        names = [s.name + ("(control)" if s.kind == "control" else "(upload)" if s.kind == "upload" else "")
                 for s in slots]
        return [f"{_node_label(node)}: widgets_values has {len(values)} values, the node declares "
                f"{len(slots)}: {names}"]
    problems = []
    for slot, value in zip(slots, values):
        if slot.kind == "control":
            if value not in CONTROL_VALUES:
                problems.append(f"{_node_label(node)}: control after {slot.name} = {value!r} is not one of "
                                f"{sorted(CONTROL_VALUES)}")
        elif slot.kind == "upload":
            if not isinstance(value, str):
                problems.append(f"{_node_label(node)}: upload value after {slot.name} = {value!r} is not text")
        elif slot.kind in ("audio_ui", "audio_upload"):
            if value is not None:
                problems.append(f"{_node_label(node)}: {slot.kind} value after {slot.name} = {value!r} is not null")
        else:
            message = value_problem(slot.name, slot.spec, value)
            if message:
                problems.append(f"{_node_label(node)}: {message}")
    return problems


def _check_node_sockets(node: dict, info: dict, links: dict) -> list[str]:
    problems = []
    declared = {name: (spec, required) for name, spec, required in declared_inputs(info)}
    entries = node.get("inputs") or []
    listed = {e.get("name") for e in entries if e.get("name") in declared and is_widget(declared[e.get("name")][0])}
    order = [name for name, _, _ in frontend_inputs(info, listed)]
    names = [e.get("name") for e in entries if e.get("name") in declared]
    if names != order:
        problems.append(f"{_node_label(node)}: inputs are listed as {names}; the frontend lists them as {order} "
                        "(sockets in declared order, then linked widgets) and would move the links' target slots")
    linked = set()
    for slot, entry in enumerate(entries):
        name = entry.get("name")
        if name not in declared:
            problems.append(f"{_node_label(node)}: input {name!r} is not declared by the node")
            continue
        spec = declared[name][0]
        if (entry.get("shape") == OPTIONAL_SHAPE) != (not declared[name][1]):
            problems.append(f"{_node_label(node)}: input {name!r} is {'required' if declared[name][1] else 'optional'}; "
                            f"the frontend writes \"shape\": {OPTIONAL_SHAPE} exactly on optional inputs")
        if not types_match(entry.get("type"), spec_type(spec)):
            problems.append(f"{_node_label(node)}: input {name!r} has type {entry.get('type')!r}, "
                            f"the node declares {spec_type(spec)!r}")
        if is_widget(spec) and entry.get("link") is not None and (entry.get("widget") or {}).get("name") != name:
            problems.append(f"{_node_label(node)}: linked widget input {name!r} needs \"widget\": {{\"name\": \"{name}\"}}")
        link_id = entry.get("link")
        if link_id is not None:
            link = links.get(link_id)
            if link is None:
                problems.append(f"{_node_label(node)}: input {name!r} refers to missing link {link_id}")
            elif link[3] != node.get("id") or link[4] != slot:
                problems.append(f"{_node_label(node)}: input {name!r} (slot {slot}) and link {link_id} "
                                f"disagree about the target ({link[3]}, slot {link[4]})")
            linked.add(name)
    for name, (spec, required) in declared.items():
        if required and not is_widget(spec) and name not in linked:
            problems.append(f"{_node_label(node)}: required input {name!r} ({spec_type(spec)}) is not connected")
    outputs = info.get("output") or []
    for slot, entry in enumerate(node.get("outputs") or []):
        if slot >= len(outputs):
            problems.append(f"{_node_label(node)}: output slot {slot} does not exist (the node has {len(outputs)})")
        elif entry.get("type") != outputs[slot]:
            problems.append(f"{_node_label(node)}: output {slot} has type {entry.get('type')!r}, the node "
                            f"declares {outputs[slot]!r}")
    return problems


def _output_type(node: dict, slot: int, info_by_type: Mapping[str, dict]) -> Any:
    info = info_by_type.get(node.get("type"))
    if info is not None:
        outputs = info.get("output") or []
        return outputs[slot] if slot < len(outputs) else None
    outputs = node.get("outputs") or []
    return outputs[slot].get("type", "*") if slot < len(outputs) else None


def _input_type(node: dict, slot: int, info_by_type: Mapping[str, dict]) -> Any:
    inputs = node.get("inputs") or []
    if slot >= len(inputs):
        return None
    info = info_by_type.get(node.get("type"))
    if info is None:  # frontend-only node: what the JSON says
        return inputs[slot].get("type", "*")
    declared = {name: spec for name, spec, _ in declared_inputs(info)}
    spec = declared.get(inputs[slot].get("name"))
    return spec_type(spec) if spec is not None else None


def _check_link(link_id: int, link: list, by_id: dict, info_by_type: Mapping[str, dict]) -> list[str]:
    _, src_id, src_slot, dst_id, dst_slot, link_type = link[:6]
    src, dst = by_id.get(src_id), by_id.get(dst_id)
    if src is None or dst is None:
        return [f"link {link_id}: {'source' if src is None else 'target'} node "
                f"{src_id if src is None else dst_id} does not exist"]
    problems = []
    out_type = _output_type(src, src_slot, info_by_type)
    in_type = _input_type(dst, dst_slot, info_by_type)
    if out_type is None:
        problems.append(f"link {link_id}: {_node_label(src)} has no output slot {src_slot}")
    elif not types_match(link_type, out_type):
        problems.append(f"link {link_id}: type {link_type!r} does not match the output {out_type!r} of {_node_label(src)}")
    if in_type is None:
        problems.append(f"link {link_id}: {_node_label(dst)} has no declared input at slot {dst_slot}")
    elif not types_match(link_type, in_type) or (out_type is not None and not types_match(out_type, in_type)):
        problems.append(f"link {link_id}: {_node_label(src)} output {out_type!r} cannot feed input "
                        f"{(dst.get('inputs') or [{}])[dst_slot].get('name')!r} ({in_type!r}) of {_node_label(dst)}")
    src_outputs = src.get("outputs") or []
    src_links = (src_outputs[src_slot].get("links") or []) if src_slot < len(src_outputs) else []
    if out_type is not None and link_id not in src_links:
        problems.append(f"link {link_id}: not listed in the links of output {src_slot} of {_node_label(src)}")
    return problems


def _check_primitives(nodes: list, by_id: dict, links: dict, info_by_type: Mapping[str, dict]) -> list[str]:
    """A PrimitiveNode's value must fit every widget it feeds."""
    problems = []
    for node in nodes:
        if node.get("type") != "PrimitiveNode":
            continue
        values = node.get("widgets_values") or []
        for link_id in ((node.get("outputs") or [{}])[0] or {}).get("links") or []:
            link = links.get(link_id)
            target = by_id.get(link[3]) if link else None
            info = info_by_type.get(target.get("type")) if target else None
            if info is None:
                continue
            name = (target.get("inputs") or [{}])[link[4]].get("name")
            spec = {n: s for n, s, _ in declared_inputs(info)}.get(name)
            if spec is None or not is_widget(spec):
                problems.append(f"{_node_label(node)}: feeds {name!r} of {_node_label(target)}, which is not a widget")
                continue
            if not values:
                problems.append(f"{_node_label(node)}: has no value for {name!r}")
                continue
            message = value_problem(name, spec, values[0])
            if message:
                problems.append(f"{_node_label(node)}: {message} (feeding {_node_label(target)})")
            # The frontend gives a primitive feeding a number or combo its own control value.
            if spec_type(spec) in ("INT", "FLOAT", "COMBO") and len(values) > 1 and values[1] not in CONTROL_VALUES:
                problems.append(f"{_node_label(node)}: control value {values[1]!r} is not one of {sorted(CONTROL_VALUES)}")
    return problems


# ---------------------------------------------------------------- UI -> API format

def ui_to_api(graph: dict, object_info: Mapping[str, dict] | None = None) -> dict[str, dict]:
    """The API-format twin of a UI workflow, as the frontend's graphToPrompt builds it."""
    info_by_type = all_object_info() if object_info is None else object_info
    by_id = {node["id"]: node for node in graph.get("nodes") or []}
    links = _links_by_id(graph)

    def resolve(link_id: Any, seen: frozenset = frozenset()) -> tuple[str, Any] | None:
        link = links.get(link_id)
        if link is None or link_id in seen:
            return None
        seen = seen | {link_id}
        src = by_id.get(link[1])
        if src is None:
            return None
        kind, mode = src.get("type"), src.get("mode", MODE_ALWAYS)
        if kind == "Reroute":
            upstream = (src.get("inputs") or [{}])[0].get("link")
            return resolve(upstream, seen) if upstream is not None else None
        if kind == "PrimitiveNode":
            values = src.get("widgets_values") or []
            return ("value", values[0]) if values else None
        if mode == MODE_NEVER:
            return None
        if mode == MODE_BYPASS:
            # Pass through: the input at the same slot if its type fits, else the first that fits.
            inputs = src.get("inputs") or []
            wanted = link[5]
            order = ([link[2]] if link[2] < len(inputs) else []) + [i for i in range(len(inputs)) if i != link[2]]
            for i in order:
                entry = inputs[i]
                if entry.get("link") is not None and types_match(entry.get("type"), wanted):
                    return resolve(entry["link"], seen)
            return None
        return ("link", [str(src["id"]), link[2]])

    api: dict[str, dict] = {}
    for node in graph.get("nodes") or []:
        kind = node.get("type")
        if kind in FRONTEND_ONLY or node.get("mode", MODE_ALWAYS) in (MODE_NEVER, MODE_BYPASS):
            continue
        info = info_by_type.get(kind)
        if info is None:
            raise ValueError(f"{_node_label(node)}: unknown node type")
        values = list(node.get("widgets_values") or [])
        widget_values = {}
        for slot, value in zip(widget_slots(info), values):
            if slot.kind == "value":
                widget_values[slot.name] = value
        entries = {entry.get("name"): entry for entry in node.get("inputs") or []}
        inputs: dict[str, Any] = {}
        for name, spec, _ in declared_inputs(info):
            entry = entries.get(name)
            if entry is not None and entry.get("link") is not None:
                resolved = resolve(entry["link"])
                if resolved is not None:
                    inputs[name] = resolved[1]
                    continue
            if name in widget_values:
                inputs[name] = widget_values[name]
        api[str(node["id"])] = {"inputs": inputs, "class_type": kind,
                                "_meta": {"title": node.get("title") or info.get("display_name") or kind}}
    # Inputs pointing at nodes that are not in the prompt are dropped, as the frontend does.
    for entry in api.values():
        for name, value in list(entry["inputs"].items()):
            if _is_link(value) and value[0] not in api:
                del entry["inputs"][name]
    return api


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


# ---------------------------------------------------------------- a minimal executor

class WorkflowRunError(RuntimeError):
    """The API graph would be rejected by ComfyUI, or a node failed."""


@dataclass
class NodeRun:
    outputs: tuple
    ui: dict | None = None


@dataclass
class EmulatedVideo:
    """What core CreateVideo hands to SaveVideo (a stand-in for comfy_api's VideoFromComponents)."""

    images: Any
    fps: float
    audio: Any = None


def _runtime_type_problem(kind: str, value: Any) -> str | None:
    import torch

    if kind == "IMAGE":
        if not (isinstance(value, torch.Tensor) and value.ndim == 4 and value.shape[-1] in (3, 4)
                and value.dtype.is_floating_point):
            return f"IMAGE must be a float tensor [B,H,W,3], got {_describe(value)}"
    elif kind == "MASK":
        if not (isinstance(value, torch.Tensor) and value.ndim == 3 and value.dtype.is_floating_point):
            return f"MASK must be a float tensor [B,H,W], got {_describe(value)}"
    elif kind == "AUDIO":
        if value is None:  # core GetVideoComponents hands None for a video without sound
            return None
        if not (isinstance(value, dict) and isinstance(value.get("waveform"), torch.Tensor)
                and value["waveform"].ndim == 3 and isinstance(value.get("sample_rate"), int)):
            return f"AUDIO must be {{'waveform': [B,C,T], 'sample_rate': int}}, got {_describe(value)}"
    elif kind == "LATENT":
        if not (isinstance(value, dict) and isinstance(value.get("samples"), torch.Tensor)):
            return f"LATENT must be {{'samples': tensor}}, got {_describe(value)}"
    elif kind == "VIDEO":
        if not isinstance(value, EmulatedVideo) and not hasattr(value, "get_components"):
            return f"VIDEO must be a video object, got {_describe(value)}"
    elif kind == "INT":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"INT must be an int, got {_describe(value)}"
    elif kind == "FLOAT":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"FLOAT must be a number, got {_describe(value)}"
    elif kind == "STRING":
        if not isinstance(value, str):
            return f"STRING must be text, got {_describe(value)}"
    elif kind == "BOOLEAN":
        if not isinstance(value, bool):
            return f"BOOLEAN must be true/false, got {_describe(value)}"
    return None


def _describe(value: Any) -> str:
    shape = getattr(value, "shape", None)
    return f"{type(value).__name__}{tuple(shape) if shape is not None else ''}"


class _LoadImage:
    FUNCTION = "load"
    RETURN_TYPES = ("IMAGE", "MASK")
    input_dir: Path = Path(".")

    def load(self, image: str):
        import numpy as np
        import torch
        from PIL import Image

        path = self.input_dir / image
        if not path.is_file():
            raise WorkflowRunError(f"LoadImage: {image!r} is not in the input folder {self.input_dir}")
        with Image.open(path) as img:
            rgba = img.convert("RGBA")
        arr = torch.from_numpy(np.asarray(rgba).astype("float32") / 255.0)
        return arr[None, ..., :3].contiguous(), (1.0 - arr[None, ..., 3]).contiguous()


class _LoadAudio:
    """Core LoadAudio: the first audio stream of a file in the input folder, float32 [1, C, N] at
    the file's rate (core decodes with PyAV; our ffmpeg decoder gives the same samples)."""

    FUNCTION = "load"
    RETURN_TYPES = ("AUDIO",)
    input_dir: Path = Path(".")

    @classmethod
    def VALIDATE_INPUTS(cls, audio):
        return True if (cls.input_dir / audio).is_file() else f"Invalid audio file: {audio}"

    def load(self, audio: str):
        from hunyuan_custom.pipelines.media.audio_io import load_audio_file

        return (load_audio_file(self.input_dir / audio).to_comfy(),)


class _PreviewImage:
    FUNCTION = "preview"
    RETURN_TYPES = ()
    OUTPUT_NODE = True

    def preview(self, images, prompt=None, extra_pnginfo=None):
        return {"ui": {"images": [{"frames": int(images.shape[0])}]}, "result": ()}


class _CreateVideo:
    FUNCTION = "create"
    RETURN_TYPES = ("VIDEO",)

    def create(self, images, fps, audio=None):
        return (EmulatedVideo(images, float(fps), audio),)


class _SaveVideo:
    FUNCTION = "save"
    RETURN_TYPES = ()
    OUTPUT_NODE = True

    def save(self, video, filename_prefix, format, codec, prompt=None, extra_pnginfo=None):
        images = video.images
        return {"ui": {"videos": [{"filename_prefix": filename_prefix, "frames": int(images.shape[0]),
                                   "fps": video.fps, "audio": video.audio is not None}]}, "result": ()}


class _LoadVideo:
    FUNCTION = "load"
    RETURN_TYPES = ("VIDEO",)
    input_dir: Path = Path(".")

    def load(self, file: str):
        from hunyuan_custom.pipelines.media import video_io

        path = self.input_dir / file
        if not path.is_file():
            raise WorkflowRunError(f"LoadVideo: {file!r} is not in the input folder {self.input_dir}")
        images, fps = video_io.read_video(path)
        return (EmulatedVideo(images, fps, video_io.read_audio(path)),)


class _GetVideoComponents:
    FUNCTION = "split"
    RETURN_TYPES = ("IMAGE", "AUDIO", "FLOAT")

    def split(self, video):
        return video.images, video.audio, float(video.fps)


EMULATED_CORE = {"LoadImage": _LoadImage, "LoadAudio": _LoadAudio, "PreviewImage": _PreviewImage,
                 "CreateVideo": _CreateVideo, "SaveVideo": _SaveVideo, "LoadVideo": _LoadVideo,
                 "GetVideoComponents": _GetVideoComponents}


def run_api_graph(api: Mapping[str, dict], node_classes: Mapping[str, Any] | None = None,
                  input_dir: str | Path | None = None, extra_pnginfo: dict | None = None,
                  object_info: Mapping[str, dict] | None = None,
                  ignore_unknown_inputs: bool = False) -> dict[str, NodeRun]:
    """Run an API-format graph the way ComfyUI would: check it, then call the nodes that output
    nodes need, in dependency order (VALIDATE_INPUTS first, then FUNCTION). Returns each run
    node's outputs (and UI answer) by node id. An input a node does not declare is an error (a typo
    in our files), unless `ignore_unknown_inputs`: then, as in ComfyUI, it is not passed on."""
    classes = dict(our_node_classes() if node_classes is None else node_classes)
    core = load_object_info() if object_info is None else object_info
    infos: dict[str, dict] = {}
    impls: dict[str, Callable] = {}
    for node_id, node in api.items():
        kind = node.get("class_type")
        if kind in classes:
            infos[node_id], impls[node_id] = node_info(kind, classes[kind]), classes[kind]
        elif kind in EMULATED_CORE and kind in core:
            impl = type(kind, (EMULATED_CORE[kind],), {"input_dir": Path(input_dir or ".")})
            infos[node_id], impls[node_id] = core[kind], impl
        else:
            raise WorkflowRunError(f"node {node_id}: class_type {kind!r} is neither ours nor an emulated core node")

    original = api  # what a PROMPT hidden input gets: the prompt as sent
    if ignore_unknown_inputs:
        api = {node_id: {**node, "inputs": {k: v for k, v in node["inputs"].items()
                                            if k in {name for name, _, _ in declared_inputs(infos[node_id])}}}
               for node_id, node in api.items()}
    _check_api_graph(api, infos, impls)
    order = _execution_order(api, infos, impls)
    results: dict[str, NodeRun] = {}
    for node_id in order:
        node, info, cls = api[node_id], infos[node_id], impls[node_id]
        literals = {k: v for k, v in node["inputs"].items() if not _is_link(v)}
        _call_validate_inputs(node_id, cls, literals, info)
        kwargs = dict(literals)
        declared = {name: spec for name, spec, _ in declared_inputs(info)}
        for name, value in node["inputs"].items():
            if _is_link(value):
                upstream = results[value[0]].outputs
                kwargs[name] = upstream[value[1]]
            problem = _runtime_type_problem(spec_type(declared[name]), kwargs[name])
            if problem:
                raise WorkflowRunError(f"node {node_id} ({node['class_type']}) input {name!r}: {problem}")
        for name, hidden in (info.get("input", {}).get("hidden") or {}).items():
            hidden = hidden[0] if isinstance(hidden, list) else hidden
            kwargs[name] = {"PROMPT": copy.deepcopy(dict(original)), "EXTRA_PNGINFO": copy.deepcopy(extra_pnginfo or {}),
                            "UNIQUE_ID": node_id}.get(hidden)
        raw = getattr(cls(), cls.FUNCTION)(**kwargs)
        ui = None
        if isinstance(raw, dict):
            ui, raw = raw.get("ui"), raw.get("result", ())
        outputs = tuple(raw or ())
        if len(outputs) != len(info.get("output") or []):
            raise WorkflowRunError(f"node {node_id} ({node['class_type']}) returned {len(outputs)} values, "
                                   f"it declares {len(info.get('output') or [])}")
        for slot, (kind, value) in enumerate(zip(info.get("output") or [], outputs)):
            problem = _runtime_type_problem(kind, value)
            if problem:
                raise WorkflowRunError(f"node {node_id} ({node['class_type']}) output {slot}: {problem}")
        results[node_id] = NodeRun(outputs=outputs, ui=ui)
    return results


def _self_validated(cls: Any) -> tuple[set[str], bool]:
    """Inputs a node's VALIDATE_INPUTS takes (and whether it takes **kwargs): ComfyUI's server
    skips its own min/max and 'value not in list' checks for those and leaves them to the node."""
    validate = getattr(cls, "VALIDATE_INPUTS", None)
    if validate is None:
        return set(), False
    params = inspect.signature(validate).parameters
    return set(params), any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _check_api_graph(api: Mapping[str, dict], infos: dict[str, dict], impls: Mapping[str, Any] | None = None) -> None:
    problems = []
    for node_id, node in api.items():
        info = infos[node_id]
        own_checks, checks_all = _self_validated((impls or {}).get(node_id))
        declared = {name: (spec, required) for name, spec, required in declared_inputs(info)}
        inputs = node.get("inputs") or {}
        for name in inputs:
            if name not in declared:
                problems.append(f"node {node_id} ({node['class_type']}): unknown input {name!r}")
        for name, (spec, required) in declared.items():
            value = inputs.get(name)
            if name not in inputs:
                if required:
                    problems.append(f"node {node_id} ({node['class_type']}): required input {name!r} is missing")
                continue
            if _is_link(value):
                src = api.get(value[0])
                if src is None:
                    problems.append(f"node {node_id}: input {name!r} links to missing node {value[0]}")
                    continue
                outputs = infos[value[0]].get("output") or []
                if value[1] >= len(outputs):
                    problems.append(f"node {node_id}: input {name!r} links to missing output {value[1]} of node {value[0]}")
                elif not types_match(outputs[value[1]], spec_type(spec)):
                    problems.append(f"node {node_id} ({node['class_type']}): input {name!r} ({spec_type(spec)}) "
                                    f"is linked to output {outputs[value[1]]!r} of node {value[0]}")
            elif is_widget(spec):
                if checks_all or name in own_checks:
                    continue  # the node's VALIDATE_INPUTS judges this value (called before it runs)
                if spec_type(spec) == "COMBO" and not isinstance(spec[0], (list, tuple)):
                    continue  # ("COMBO", {"options": ...}): the server has no "value not in list" check for it
                message = value_problem(name, spec, value)
                if message:
                    problems.append(f"node {node_id} ({node['class_type']}): {message}")
            else:
                problems.append(f"node {node_id} ({node['class_type']}): input {name!r} ({spec_type(spec)}) "
                                f"needs a link, got the literal {value!r}")
    if problems:
        raise WorkflowRunError("; ".join(problems))


def _execution_order(api: Mapping[str, dict], infos: dict, impls: dict) -> list[str]:
    """Ancestors of the output nodes, dependencies first (ComfyUI runs only what outputs need)."""
    outputs = [nid for nid in api if getattr(impls[nid], "OUTPUT_NODE", False) or infos[nid].get("output_node")]
    if not outputs:
        raise WorkflowRunError("the graph has no output node (a save or preview node), so nothing would run")
    needed, stack = set(), list(outputs)
    while stack:
        nid = stack.pop()
        if nid in needed:
            continue
        needed.add(nid)
        stack += [v[0] for v in api[nid]["inputs"].values() if _is_link(v)]
    deps = {nid: {v[0] for v in api[nid]["inputs"].values() if _is_link(v)} for nid in needed}
    ready = deque(sorted((nid for nid in needed if not deps[nid]), key=_id_key))
    order = []
    while ready:
        nid = ready.popleft()
        order.append(nid)
        for other in sorted(needed, key=_id_key):
            if nid in deps[other]:
                deps[other].discard(nid)
                if not deps[other] and other not in order and other not in ready:
                    ready.append(other)
    if len(order) != len(needed):
        raise WorkflowRunError(f"the graph has a cycle through nodes {sorted(set(needed) - set(order))}")
    return order


def _id_key(node_id: str) -> tuple:
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)


def _call_validate_inputs(node_id: str, cls: Any, literals: dict, info: dict) -> None:
    validate = getattr(cls, "VALIDATE_INPUTS", None)
    if validate is None:
        return
    params = inspect.signature(validate).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in literals.items() if takes_all or k in params}
    if "input_types" in params:
        kwargs["input_types"] = {}
    try:
        answer = validate(**kwargs)
    except ValueError as exc:  # a problem raised to be reported once (nodes/validation.py)
        raise WorkflowRunError(f"node {node_id} ({info.get('name')}): VALIDATE_INPUTS refused: {exc}") from None
    if answer is not True:
        raise WorkflowRunError(f"node {node_id} ({info.get('name')}): VALIDATE_INPUTS said {answer!r}")
