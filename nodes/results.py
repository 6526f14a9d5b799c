"""Result lines: what a node of this pack shows about its finished run, kept after the job.

A node returns {"ui": {"text": [lines]}, "result": outputs}. ComfyUI sends the `ui` part to the
frontend as the node's output (also for nodes that are not output nodes, and again when the node's
result comes from the cache) and lists it in /history. The frontend keeps a node's output after the
job, whereas frontend 1.58 clears progress text (Progress.text) when the job ends; the web
extension shows `text` under the node in both node renderers. Progress text stays for the run's
live status.
"""

from __future__ import annotations

from typing import Any

from .comfy import for_client


def with_result_lines(outputs: tuple, lines: list[str], ui: dict[str, Any] | None = None) -> dict[str, Any]:
    """A node's return value: its outputs plus result lines (empty lines dropped) beside any other
    UI output (e.g. a saved video's `images`)."""
    answer_ui = dict(ui or {})
    answer_ui["text"] = [for_client(str(line)) for line in lines if line]  # the browser sees them
    return {"ui": answer_ui, "result": tuple(outputs)}
