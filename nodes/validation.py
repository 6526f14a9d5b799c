"""Queue-time checks that need several inputs of one node, reported ONCE.

ComfyUI (execution.validate_inputs) repeats a message that VALIDATE_INPUTS returns under every
input the function names: one missing VAE showed up four times in the model loader, a missing
picture twice in Load Reference Image (under `image` and `url`). A check that needs one input
names only that input and returns its message. A check that needs several raises NodeInputProblem
instead: ComfyUI's validation of the node that consumes ours catches it and reports it once, on
our node ("Exception when validating inner node: <our message>"), and the prompt is refused just
the same. Our nodes with such checks are never output nodes, so they are always validated as such
an inner node. The message starts with the input's name, e.g. "vae: ...".
"""

from __future__ import annotations

from typing import NoReturn


class NodeInputProblem(ValueError):
    """A bad input found at queue time; the message names the input and says what to do."""


def refuse(problems: list[str]) -> NoReturn:
    """Refuse the prompt with every problem of this node in one message (server paths shown
    relative to ComfyUI's folders: the message goes to whoever queued the prompt)."""
    from .comfy import for_client

    raise NodeInputProblem(for_client(" ".join(p if p.endswith(".") else p + "." for p in problems)))
