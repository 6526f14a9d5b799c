"""Which of our Linear modules a LoRA key trains, and what a file that fits nothing was made for.

A LoRA names the module it trains in one of three namings, under a wrapper prefix:
  * upstream HunyuanVideo names (`double_blocks.0.img_attn_qkv`): the original release's and
    diffusion-pipe's PEFT files (`transformer.` / `diffusion_model.` prefix), ComfyUI's saves;
  * the same names with `_` for `.` after `lora_unet_`: musubi-tuner and kohya;
  * our (diffusers) names (`transformer_blocks.0.attn.to_q`), possibly `lora_transformer_`-underscored.
Upstream names go through keys.py's checkpoint mapping (the fused qkv / `linear1` row splits, the final
layer's shift/scale swap), so LoRA keys and checkpoint keys can never disagree. A LoRA's `up` matrix
has one row per output row of the weight, so a fused layer's `up` splits by rows exactly as the
weight does; the shared `down` (the layer's input side) goes with every piece.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

from . import keys

UPSTREAM, OURS = "upstream", "diffusers"
# Wrappers around the module name (stripped repeatedly, in this order of preference).
_PREFIXES = ("base_model.model.", "model.diffusion_model.", "diffusion_model.", "transformer.", "unet.",
             "lora_unet_", "lora_transformer_")


def strip_prefixes(name: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if name.startswith(prefix):
                name, changed = name[len(prefix):], True
    return name


def _regex(template: str, sep: str) -> re.Pattern:
    head, index, tail = template.replace(".", sep).partition("{i}")
    return re.compile(re.escape(head) + (r"(\d+)" + re.escape(tail) if index else ""))


@lru_cache(maxsize=1)
def _patterns() -> tuple[tuple[str, str, re.Pattern, re.Pattern], ...]:
    """(naming, template, dotted regex, underscored regex) for every module a LoRA may train."""
    out = []
    for naming, templates in ((OURS, keys.our_linear_templates()), (UPSTREAM, keys.upstream_linear_templates())):
        for template in templates:
            out.append((naming, template, _regex(template, "."), _regex(template, "_")))
    return tuple(out)


def recognise(name: str) -> tuple[str, str] | None:
    """(naming, dotted module name) for a LoRA module name as a file spells it; None if it is not
    a HunyuanVideo/HunyuanCustom Linear."""
    bare = strip_prefixes(name)
    for naming, template, dotted, underscored in _patterns():
        for pattern in (dotted, underscored):
            match = pattern.fullmatch(bare)
            if match:
                return naming, template.format(i=match.group(1)) if match.groups() else template
    return None


# ---------------------------------------------------------------------------- what else it may be

HV15 = "a HunyuanVideo 1.5 LoRA"
# (what the file is, a regex over its stripped module names, what its keys look like): first hit wins.
_OTHER_MODELS = (
    (HV15, re.compile(r"img_attn_[qkv]$|img_attn_[qkv][._]|txt_attn_[qkv]$|byt5_in|"
                                           r"vision_in|cond_type_embed|context_embedder_2|image_embedder"), "double_blocks.N.img_attn_q (separate q/k/v)"),
    ("a Wan 2.1/2.2 LoRA", re.compile(r"(^|[._])blocks[._]\d+[._](self_attn|cross_attn|ffn)"),
     "blocks.N.self_attn.q, blocks.N.cross_attn..., blocks.N.ffn..."),
    ("a Flux LoRA", re.compile(r"img_attn[._]qkv$|img_attn\.proj|img_mlp[._][02]$|img_mod[._]lin$|modulation[._]lin$"),
     "double_blocks.N.img_attn.qkv, img_mlp.0, img_mod.lin"),
    ("an SD 1.5/SDXL LoRA", re.compile(r"(down|up)_blocks[._]\d|mid_block|(input|output)_blocks[._]\d|middle_block|"
                                       r"^te\d?[._]|text_model"), "lora_unet_down_blocks_..., lora_te_text_model_..."),
    ("an LTX-Video/CogVideoX/Mochi-style LoRA", re.compile(r"attn1[._]to_|attn2[._]to_"),
     "transformer_blocks.N.attn1.to_q"),
)
# Metadata some trainers write (kohya/musubi: ss_*, modelspec): an architecture name settles files whose
# keys happen to share HunyuanVideo's names (a Flux LoRA on the double blocks' img_attn_qkv only).
_METADATA_KEYS = ("modelspec.architecture", "ss_base_model_version", "ss_architecture")
_METADATA_MODELS = (
    (HV15, re.compile(r"hunyuan[-_ ]?video[-_ ]?1[._-]?5|hunyuan_video_1_5|hv15|hunyuanvideo15", re.I)),
    ("a Flux LoRA", re.compile(r"flux", re.I)),
    ("a Wan LoRA", re.compile(r"(^|[^a-z])wan", re.I)),
    ("an SD 1.5/SDXL LoRA", re.compile(r"sdxl|sd_v1|sd_v2|stable-diffusion", re.I)),
)


def other_model(names: Iterable[str]) -> tuple[str, str] | None:
    """(what it looks like, its key pattern) for module names of another model's LoRA."""
    bare = [strip_prefixes(name) for name in names]
    for label, pattern, looks in _OTHER_MODELS:
        if any(pattern.search(name) for name in bare):
            return label, looks
    return None


def model_from_metadata(metadata: Mapping[str, str] | None) -> str | None:
    """'a Flux LoRA' etc. when the file's metadata names another architecture; None otherwise."""
    for key in _METADATA_KEYS:
        value = str((metadata or {}).get(key, ""))
        for label, pattern in _METADATA_MODELS:
            if pattern.search(value):
                return label
    return None


# ---------------------------------------------------------------------------- onto a model


@dataclass(frozen=True)
class Target:
    """One of our Linears and the rows of the LoRA's `up` matrix that belong to it."""

    module: str
    up: torch.Tensor  # [out_features of `module`, rank]


class ShapeMismatch(ValueError):
    """The LoRA trains a module we have, at another size (a LoRA for another model size)."""


def targets(model: nn.Module, name: str, down: torch.Tensor, up: torch.Tensor) -> list[Target] | None:
    """Our Linears trained by the LoRA pair (`down` [rank, in], `up` [out, rank]) on module `name` as the
    file spells it, with `up` split by rows for a fused upstream layer; None when the model has no
    such module (e.g. a block index past its depth, bg_proj on a non-editing checkpoint).
    Raises ShapeMismatch when the module exists at another size."""
    found = recognise(name)
    if found is None:
        return None
    naming, module = found
    if naming == OURS:
        pieces = {module: up}
    else:
        hidden = int(model.config.num_attention_heads) * int(model.config.attention_head_dim)
        try:
            mapping = keys.map_upstream_key(module + ".weight", (int(up.shape[0]), int(down.shape[1])), hidden)
        except ValueError as exc:  # linear1 too small for q/k/v/mlp at this hidden size
            raise ShapeMismatch(f"{name}: {exc}") from None
        pieces = {target.rpartition(".")[0]: rows for target, rows in mapping.apply(up).items()}
    out = []
    for module_name, rows in pieces.items():
        try:
            layer = model.get_submodule(module_name)
        except AttributeError:
            return None
        if not isinstance(layer, nn.Linear):
            return None
        if (layer.out_features, layer.in_features) != (int(rows.shape[0]), int(down.shape[1])):
            hint = " (2048 wide, as HunyuanVideo 1.5)" if 2048 in (int(up.shape[0]), int(down.shape[1])) else ""
            raise ShapeMismatch(
                f"{name} trains a {int(up.shape[0])}x{int(down.shape[1])} weight{hint}, but {module_name} here is "
                f"{layer.out_features}x{layer.in_features}")
        out.append(Target(module_name, rows))
    return out
