"""LLaVA with its 32 decoder layers streamed from CPU RAM (diffusers group offloading).

The whole LLaVA-Llama-3-8B is ~15 GiB in bf16; its decoder layers are 14 GiB of that. With
offload "group" the layers stay in CPU RAM and diffusers' hooks move one at a time to the GPU (the
next one prefetched on a side stream), while everything else sits on the GPU for the whole encode:
vision tower + projector (0.6 GiB), embed_tokens and lm_head (1 GiB each), CLIP-L. The stage then
peaks near 4 GiB instead of 16; the encoders run once per prompt, so ~15 GB over PCIe per encode
is a second or two.

How diffusers 0.42.1 groups `llava.model.language_model` (a LlamaModel) at block level: the
`layers` ModuleList becomes one group per layer; every other child (embed_tokens, norm,
rotary_emb) goes into one "unmatched" group that is onloaded when LlamaModel.forward starts and
offloaded when it ends. embed_tokens must NOT be in that group: LlavaModel calls it BEFORE
language_model.forward (to merge the image features), when that group would still be on the CPU,
and a single-file LLaVA without lm_head shares its weight with lm_head. So it is taken out of the
language model while the hooks are applied and kept on the GPU with the rest.

Checked on transformers 5.23 and 4.57 (the same attribute paths) and diffusers 0.42.1 / 0.37.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch

# diffusers' hook names (diffusers/hooks/group_offloading.py); used to find and remove the hooks.
GROUP_OFFLOADING_HOOK = "group_offloading"
_OTHER_HOOKS = ("lazy_prefetch_group_offloading", "layer_execution_tracker")


class TextOffloadError(RuntimeError):
    """Group offloading cannot be applied to this LLaVA (or with this diffusers); the message says why."""


def language_model_of(llava: Any) -> torch.nn.Module:
    """The Llama decoder stack (`llava.model.language_model`, a LlamaModel with `layers`)."""
    language = getattr(getattr(llava, "model", None), "language_model", None)
    if language is None or not isinstance(getattr(language, "layers", None), torch.nn.ModuleList) \
            or getattr(language, "embed_tokens", None) is None:
        raise TextOffloadError(f"{type(llava).__name__} has no model.language_model.layers / embed_tokens; this "
                               "transformers version lays LLaVA out differently (checked with 4.57 and 5.23). "
                               "Use offload 'model'.")
    return language


@contextlib.contextmanager
def _without_embeddings(language: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Take embed_tokens out of the module tree for a moment (diffusers groups every child it sees)."""
    embed = language.embed_tokens
    language.embed_tokens = None  # nn.Module keeps the slot; named_children / parameters skip it
    try:
        yield embed
    finally:
        language.embed_tokens = embed


def _pin_in_place(module: torch.nn.Module) -> None:
    """Replace each CPU tensor by a pinned copy, one at a time. diffusers' streamed offloading keeps a
    pinned copy of every grouped tensor; pinning first (pin_memory() of a pinned tensor is itself) means
    that copy IS the weight, instead of a second 14 GiB in CPU RAM beside it."""
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.device.type == "cpu" and not tensor.is_pinned():
                tensor.data = tensor.data.pin_memory()


def _to_device_except(module: torch.nn.Module, skip: torch.nn.Module, device: torch.device) -> None:
    """Move `module` to `device`, leaving the subtree `skip` where it is."""
    for child in module.children():
        if child is skip:
            continue
        if any(sub is skip for sub in child.modules()):
            _to_device_except(child, skip, device)
        else:
            child.to(device)
    with torch.no_grad():
        for tensors in (module._parameters, module._buffers):
            for tensor in tensors.values():
                if tensor is not None:
                    tensor.data = tensor.data.to(device)


def apply_text_group_offloading(llava: Any, device: Any, *, use_stream: bool | None = None) -> None:
    """Hook LLaVA (loaded on the CPU) for group offloading onto `device`: decoder layers streamed one
    at a time, everything else moved to `device` now. use_stream defaults to True on CUDA only (a
    side stream prefetches the next layer; it needs pinned memory). On the CPU the hooks still run
    (CPU -> CPU), which is what the tests use."""
    from diffusers.hooks import apply_group_offloading

    device = torch.device(device)
    stream = device.type == "cuda" if use_stream is None else use_stream
    language = language_model_of(llava)
    with _without_embeddings(language) as embed:
        if stream and device.type == "cuda":
            _pin_in_place(language)  # the grouped part only: embed_tokens goes to the GPU below
        try:
            apply_group_offloading(language, onload_device=device, offload_device=torch.device("cpu"),
                                   offload_type="block_level", num_blocks_per_group=1, use_stream=stream)
        except AttributeError as exc:
            # diffusers 0.37 builds its groups with torch.accelerator.current_accelerator().type.
            if getattr(torch, "accelerator", None) is not None and not torch.accelerator.is_available():
                remove_text_group_offloading(llava)
                raise TextOffloadError("this diffusers version offloads only with an accelerator (GPU); on the CPU "
                                       "use offload 'model'.") from exc
            raise
    embed.to(device)
    _to_device_except(llava, language, device)


def offload_groups(module: torch.nn.Module) -> list[Any]:
    """diffusers' ModuleGroups hooked anywhere in `module` (each once)."""
    groups: dict[int, Any] = {}
    for sub in module.modules():
        registry = getattr(sub, "_diffusers_hook", None)
        hook = registry.get_hook(GROUP_OFFLOADING_HOOK) if registry is not None else None
        if hook is not None:
            groups[id(hook.group)] = hook.group
    return list(groups.values())


def remove_text_group_offloading(module: torch.nn.Module | None) -> None:
    """Drop the hooks and their groups' CPU copies (pinned on CUDA): called when the encoders are
    freed, so nothing the hooks hold outlives the model. The model is unusable on the GPU afterwards."""
    if module is None:
        return
    for group in offload_groups(module):
        group.cpu_param_dict = {}
    for sub in module.modules():
        registry = getattr(sub, "_diffusers_hook", None)
        if registry is None:
            continue
        for name in (*_OTHER_HOOKS, GROUP_OFFLOADING_HOOK):
            if registry.get_hook(name) is not None:
                registry.remove_hook(name, recurse=False)


def empty_host_cache() -> None:
    """Give pinned CPU memory that torch still caches back to the system (torch >= 2.9; no-op before)."""
    accelerator = getattr(torch, "accelerator", None)
    empty = getattr(accelerator, "empty_host_cache", None)
    if empty is not None and torch.cuda.is_available():
        empty()
