"""Tiny LoRA files in every format, built on a checkpoint's real (upstream) key layout, and the
hand merge they must equal (test helper).

A LoRA here is a dict: upstream module name -> (down [rank, in], up [out, rank], alpha). The same
LoRA is written as PEFT (diffusion-pipe, `transformer.`), ComfyUI PEFT (`diffusion_model.`),
musubi-tuner/kohya (`lora_unet_..._lora_down` + alpha) or diffusers (our module names, fused layers
split into q/k/v pieces each with the shared down, as diffusers' converter makes them).
The hand merge works on the UPSTREAM state dict (fused qkv, linear1, upstream final-layer order):
W + strength * up @ down * alpha / rank, independent of the splitting the code under test does.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

FORMATS = ("peft", "comfy", "musubi", "diffusers")
# Upstream Linears a test LoRA trains: every kind of split and rename (fused qkv, linear1, swapped final
# modulation, refiner qkv, plain renames).
TRAINED = ("double_blocks.0.img_attn_qkv", "double_blocks.1.txt_attn_qkv", "double_blocks.0.img_mlp.fc1",
           "double_blocks.1.img_mod.linear", "double_blocks.0.txt_attn_proj", "single_blocks.0.linear1",
           "single_blocks.1.linear2", "single_blocks.0.modulation.linear", "final_layer.adaLN_modulation.1",
           "final_layer.linear", "txt_in.individual_token_refiner.blocks.0.self_attn_qkv", "vector_in.in_layer")


def make_lora(sd: dict[str, torch.Tensor], modules=TRAINED, rank: int = 4, alpha: float | None = 2.0,
              seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor, float | None]]:
    """Random pairs for `modules` of the upstream state dict `sd` (weights' shapes decide the sizes)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for module in modules:
        rows, cols = sd[module + ".weight"].shape
        down = torch.randn(rank, cols, generator=g) * 0.3
        up = torch.randn(rows, rank, generator=g) * 0.3
        out[module] = (down, up, alpha)
    return out


def scale_of(down: torch.Tensor, alpha: float | None) -> float:
    return 1.0 if alpha is None else alpha / down.shape[0]


def merged(sd: dict[str, torch.Tensor], loras: list[tuple[dict, float]]) -> dict[str, torch.Tensor]:
    """`sd` with every (lora, strength) merged into its weights by hand (float32)."""
    out = {k: v.float().clone() if v.is_floating_point() else v for k, v in sd.items()}
    for lora, strength in loras:
        for module, (down, up, alpha) in lora.items():
            out[module + ".weight"] += strength * scale_of(down, alpha) * (up.float() @ down.float())
    return out


def write_lora(lora: dict, path: Path, fmt: str, hidden: int, dtype: torch.dtype = torch.float32) -> Path:
    tensors: dict[str, torch.Tensor] = {}
    for module, (down, up, alpha) in lora.items():
        down, up = down.to(dtype).contiguous(), up.to(dtype).contiguous()
        if fmt in ("peft", "comfy"):
            assert alpha is None or alpha == down.shape[0], "PEFT files carry no alpha: make alpha = rank"
            prefix = "transformer." if fmt == "peft" else "diffusion_model."
            tensors[f"{prefix}{module}.lora_A.weight"] = down
            tensors[f"{prefix}{module}.lora_B.weight"] = up
        elif fmt == "musubi":
            name = "lora_unet_" + module.replace(".", "_")
            tensors[f"{name}.lora_down.weight"] = down
            tensors[f"{name}.lora_up.weight"] = up
            tensors[f"{name}.alpha"] = torch.tensor(float(alpha if alpha is not None else down.shape[0]))
        elif fmt == "diffusers":
            from hunyuan_custom.pipelines.diffusion_models import keys  # (tools/comfyui_smoke.py writes musubi only)

            assert alpha is None or alpha == down.shape[0], "diffusers files carry no alpha: make alpha = rank"
            mapping = keys.map_upstream_key(module + ".weight", (up.shape[0], down.shape[1]), hidden)
            for target, rows in mapping.apply(up).items():
                ours = target[: -len(".weight")]
                tensors[f"transformer.{ours}.lora_A.weight"] = down.clone()
                tensors[f"transformer.{ours}.lora_B.weight"] = rows.contiguous()
        else:
            raise ValueError(fmt)
    save_file(tensors, str(path))
    return path
