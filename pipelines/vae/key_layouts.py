"""Tensor-name layouts of the HunyuanVideo VAE and the renaming to ours.

Two layouts exist in the wild under the same file name `hunyuan_video_vae_bf16.safetensors`:
* upstream/diffusers names (`decoder.up_blocks.0.resnets.0.conv1.conv.weight`, mid-block attention
  `to_q`/`to_k`/`to_v`/`to_out.0` as Linear weights): upstream's pytorch_model.pt (after the
  `vae.` prefix), Kijai's file, diffusers folders. Our model uses these names directly.
* ComfyUI's internal LDM names (`decoder.up.3.block.0.conv1.conv.weight`, `mid.attn_1.q` as
  1x1x1 Conv3d weights): the Comfy-Org repackaged file, and anything re-saved from ComfyUI.
  ComfyUI converts upstream names into these on load; `ldm_to_upstream_names` is the reverse.
"""

from __future__ import annotations

import re
from typing import Iterable

_LDM_MARKERS = ("decoder.mid.attn_1.", "decoder.mid.block_1.", "encoder.down.0.block.0.", "decoder.up.0.block.0.")

# Inside the LDM mid-block attention: sub-module renames (weights also change shape, see below).
_ATTN = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}


def is_ldm_layout(names: Iterable[str]) -> bool:
    return any(name.startswith(_LDM_MARKERS) for name in names)


def _up_block_count(names: list[str]) -> int:
    indices = [int(m.group(1)) for n in names if (m := re.match(r"decoder\.up\.(\d+)\.", n))]
    return max(indices) + 1 if indices else 0


def ldm_to_upstream_names(names: Iterable[str]) -> dict[str, tuple[str, bool]]:
    """upstream name -> (LDM name, weight must be flattened from a 1x1x1 conv to a Linear)."""
    names = list(names)
    up_blocks = _up_block_count(names)
    out: dict[str, tuple[str, bool]] = {}
    for name in names:
        new = name
        # LDM numbers decoder up blocks from the output end; upstream from the latent end.
        new = re.sub(r"^decoder\.up\.(\d+)\.block\.", lambda m: f"decoder.up_blocks.{up_blocks - 1 - int(m.group(1))}.resnets.", new)
        new = re.sub(r"^decoder\.up\.(\d+)\.upsample\.", lambda m: f"decoder.up_blocks.{up_blocks - 1 - int(m.group(1))}.upsamplers.0.", new)
        new = re.sub(r"^encoder\.down\.(\d+)\.block\.", r"encoder.down_blocks.\1.resnets.", new)
        new = re.sub(r"^encoder\.down\.(\d+)\.downsample\.", r"encoder.down_blocks.\1.downsamplers.0.", new)
        new = re.sub(r"\.mid\.block_(\d+)\.", lambda m: f".mid_block.resnets.{int(m.group(1)) - 1}.", new)
        flatten = False
        attn = re.match(r"^(encoder|decoder)\.mid\.attn_1\.([a-z_]+)\.(weight|bias)$", new)
        if attn and attn.group(2) in _ATTN:
            part, sub, kind = attn.groups()
            new = f"{part}.mid_block.attentions.0.{_ATTN[sub]}.{kind}"
            flatten = kind == "weight" and sub != "norm"
        new = new.replace(".nin_shortcut.", ".conv_shortcut.")
        new = re.sub(r"^(encoder|decoder)\.norm_out\.", r"\1.conv_norm_out.", new)
        out[new] = (name, flatten)
    return out
