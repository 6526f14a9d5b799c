"""Write an upstream-named state dict in every real checkpoint layout (test helper).

The layouts mirror the released files: upstream `.pt` (weights under `module`), upstream fp8 `.pt`
+ `_map.pt`, ComfyUI single-file safetensors (bf16 / fp8-scaled, with or without the
`model.diffusion_model.` prefix).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

FP8 = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8).max  # 448


def fp8_linear_weight_keys(sd: dict[str, torch.Tensor]) -> list[str]:
    """The block Linears upstream's --use-fp8 stores as float8 (2-D weights in double/single blocks)."""
    return [k for k, v in sd.items() if k.startswith(("double_blocks.", "single_blocks.")) and k.endswith(".weight") and v.ndim == 2]


def quantize(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-tensor fp8 quantisation as upstream: scale = max|w| / 448, stored = (w / scale) -> e4m3."""
    scale = (w.abs().max().float() / FP8_MAX).clamp(min=1e-12)
    return (w.float() / scale).to(FP8), scale


def write_upstream_pt(sd: dict, path: Path) -> Path:
    torch.save({"module": dict(sd)}, path)
    return path


def write_upstream_fp8_pt(sd: dict, path: Path, write_map: bool = True) -> Path:
    weights, scales = dict(sd), {}
    for key in fp8_linear_weight_keys(sd):
        weights[key], scales[key[: -len(".weight")]] = quantize(sd[key])
    torch.save({"module": weights}, path)
    if write_map:
        torch.save({"module": scales}, path.with_name(path.stem + "_map" + path.suffix))
    return path


def write_comfy_safetensors(sd: dict, path: Path, prefix: str = "") -> Path:
    save_file({prefix + k: v.contiguous() for k, v in sd.items()}, str(path))
    return path


def write_comfy_fp8_scaled(sd: dict, path: Path, prefix: str = "model.diffusion_model.") -> Path:
    out = {prefix + k: v.contiguous() for k, v in sd.items()}
    for key in fp8_linear_weight_keys(sd):
        q, scale = quantize(sd[key])
        out[prefix + key] = q
        out[prefix + key[: -len(".weight")] + ".scale_weight"] = scale.reshape(())
    out[prefix + "scaled_fp8"] = torch.empty(0, dtype=FP8)  # ComfyUI's marker key
    save_file(out, str(path))
    return path


def dequantized_state_dict(sd: dict) -> dict[str, torch.Tensor]:
    """What an fp8 checkpoint of `sd` holds after w.to(float32) * scale (for closeness checks)."""
    out = dict(sd)
    for key in fp8_linear_weight_keys(sd):
        q, scale = quantize(sd[key])
        out[key] = q.to(torch.float32) * scale
    return out
