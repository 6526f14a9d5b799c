"""Queue-time checks of a whole graph that holds this pack's nodes: all of it runs, or none of it.

ComfyUI 0.3.64 (execution.validate_prompt) runs the outputs whose branch validated and drops the
others, answering "queued" with their errors beside it. Frontend 1.27 then only outlines the
dropped nodes: in a graph with a local preview and a WaveSpeed final, a preview that failed its
checks vanished without a word while the WaveSpeed render ran and was billed. For a graph that
holds one of our nodes the server (nodes/routes.py) validates first and, when any branch fails,
refuses the WHOLE prompt the way ComfyUI refuses a prompt whose every output failed (HTTP 400 with
the node errors): both frontends then show their error dialog and mark the nodes, and nothing
runs, so nothing is billed behind a problem the user was not shown.

The same place adds the checks that need the graph, not one node's inputs (a node's
VALIDATE_INPUTS sees only its own inputs; its hidden PROMPT is empty at queue time):
- a WaveSpeed node without a key configured (nothing else may run first: minutes of local preview);
- a Model Loader without an audio_encoder feeding a sampler whose prompt goes through the Audio node.
It also rewrites our nodes' raised checks (NodeInputProblem, nodes/validation.py) from ComfyUI's
"Exception when validating inner node" into a plain custom-validation error naming the input.

Plain Python over the API prompt (dicts), so it is tested without ComfyUI.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable

OUR_PREFIX = "HunyuanCustom"
WAVESPEED = "HunyuanCustomWaveSpeed"
SAMPLER = "HunyuanCustomSampler"
AUDIO = "HunyuanCustomAudio"
LOADER = "HunyuanCustomModelLoader"

NOTHING_RUN = ("Nothing was run: this graph holds HunyuanCustom nodes, which run all of a graph or none of "
               "it, so no render (and no WaveSpeed charge) happens while another part has a problem. "
               "Fix the nodes listed below (outlined in red), or bypass them, and queue again.")
KEY_MISSING = ("no WaveSpeed API key is set up, so the render would fail once the rest of the graph has run. "
               "Set WAVESPEED_API_KEY and restart ComfyUI, or put {\"api_key\": \"...\"} into the user config "
               "file ~/.config/hunyuan-custom/wavespeed.json (%APPDATA%\\hunyuan-custom\\wavespeed.json on "
               "Windows; read at every run).")
WHISPER_NEEDED = ("audio_encoder: the video is driven by HunyuanCustom Audio (node #{audio}), which needs Whisper: "
                  "pick whisper-tiny here. Download the folder openai/whisper-tiny from Hugging Face into "
                  "ComfyUI/models/audio_encoders/whisper-tiny/ and refresh the page (R).")

_INPUT_PREFIX = re.compile(r"^([a-z_0-9]+): ")


def has_our_nodes(prompt: Any) -> bool:
    return isinstance(prompt, dict) and any(
        isinstance(node, dict) and str(node.get("class_type", "")).startswith(OUR_PREFIX) for node in prompt.values())


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


def _inputs(prompt: dict, node_id: str) -> dict:
    node = prompt.get(str(node_id))
    inputs = node.get("inputs") if isinstance(node, dict) else None
    return inputs if isinstance(inputs, dict) else {}


def _class(prompt: dict, node_id: str) -> str:
    node = prompt.get(str(node_id))
    return str(node.get("class_type", "")) if isinstance(node, dict) else ""


def upstream(prompt: dict, start: str) -> set[str]:
    """Every node id that `start` reads from, directly or through others (start included)."""
    seen, todo = set(), [str(start)]
    while todo:
        node_id = todo.pop()
        if node_id in seen or node_id not in prompt:
            continue
        seen.add(node_id)
        todo.extend(str(v[0]) for v in _inputs(prompt, node_id).values() if _is_link(v))
    return seen


def error(message: str, input_name: str | None = None) -> dict:
    """One error entry in ComfyUI's format (what its frontends list and outline)."""
    entry: dict[str, Any] = {"type": "custom_validation_failed", "message": "Custom validation failed for node",
                             "details": message, "extra_info": {}}
    if input_name:
        entry["extra_info"]["input_name"] = input_name
    return entry


def graph_problems(prompt: dict, key_configured: Callable[[], bool],
                   targets: Iterable[str] | None = None) -> dict[str, list[dict]]:
    """{node id: [error entries]} for the checks that need the whole graph; with `targets` (the
    frontend's "run selected outputs"), only for the nodes those outputs run."""
    problems: dict[str, list[dict]] = {}
    ids = [str(i) for i in prompt]
    if targets is not None:
        wanted = set().union(*(upstream(prompt, str(t)) for t in targets)) if targets else set()
        ids = [i for i in ids if i in wanted]
    if any(_class(prompt, i) == WAVESPEED for i in ids) and not key_configured():
        for node_id in ids:
            if _class(prompt, node_id) == WAVESPEED:
                problems.setdefault(node_id, []).append(error(KEY_MISSING))
    for node_id in ids:
        if _class(prompt, node_id) != SAMPLER:
            continue
        inputs = _inputs(prompt, node_id)
        model, spec = inputs.get("model"), inputs.get("prompt")
        if not (_is_link(model) and _is_link(spec)) or _class(prompt, model[0]) != LOADER:
            continue
        audio = sorted(i for i in upstream(prompt, spec[0]) if _class(prompt, i) == AUDIO)
        encoder = _inputs(prompt, model[0]).get("audio_encoder", "none")
        if audio and encoder in (None, "", "none"):
            entries = problems.setdefault(str(model[0]), [])
            message = WHISPER_NEEDED.format(audio=audio[0])
            if all(e["details"] != message for e in entries):
                entries.append(error(message, "audio_encoder"))
    return problems


def plain_errors(errors: Iterable[dict]) -> list[dict]:
    """Our raised queue-time checks as custom-validation errors naming the input ("vae: ..."),
    instead of "Exception when validating inner node" under the consumer's input name (which 1.58
    shows as "Model Loader couldn't validate model")."""
    out = []
    for entry in errors:
        if isinstance(entry, dict) and entry.get("type") == "exception_during_inner_validation":
            details = str(entry.get("details", ""))
            match = _INPUT_PREFIX.match(details)
            entry = error(details, match.group(1) if match else None)
        out.append(entry)
    return out


def merged(node_errors: dict, prompt: dict, extra: dict[str, list[dict]]) -> dict:
    """ComfyUI's node errors with ours added and our nodes' entries made plain."""
    out: dict[str, dict] = {}
    for node_id, entry in (node_errors or {}).items():
        entry = dict(entry)
        if str(entry.get("class_type", "")).startswith(OUR_PREFIX):
            entry["errors"] = plain_errors(entry.get("errors", []))
        out[str(node_id)] = entry
    for node_id, errors in extra.items():
        entry = out.setdefault(node_id, {"errors": [], "dependent_outputs": [], "class_type": _class(prompt, node_id)})
        entry["errors"] = list(entry["errors"]) + errors
    return out


def refusal(node_errors: dict, partly_valid: bool = True) -> dict:
    """The body of a 400 answer that refuses the whole prompt (ComfyUI's own form)."""
    # The problems themselves are in node_errors, which the frontends list (1.27 right after these
    # details): named here by node only, so each message is read once.
    nodes = ", ".join(f"{entry.get('class_type', '?')} #{node_id}" for node_id, entry in node_errors.items())
    lead = NOTHING_RUN if partly_valid else "Nothing was run."
    return {"error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                      "details": f"{lead} Problems in: {nodes}.", "extra_info": {}},
            "node_errors": node_errors}


def check(prompt: dict, validation: tuple, key_configured: Callable[[], bool],
          targets: Iterable[str] | None = None) -> dict | None:
    """The refusal body for a prompt with our nodes, from ComfyUI's validate_prompt answer
    (valid, error, good outputs, node errors); None when it may be queued as it is."""
    valid, _error, _good, node_errors = validation
    extra = graph_problems(prompt, key_configured, targets)
    if valid and not node_errors and not extra:
        return None
    if not node_errors and not extra:
        return None  # refused for another reason (no outputs, ...): ComfyUI's own answer says it
    return refusal(merged(node_errors, prompt, extra), partly_valid=bool(valid))
