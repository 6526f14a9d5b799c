"""A Linear whose weight stays float8 in memory and is scaled and upcast on every call.

Why our own: diffusers' `enable_layerwise_casting` upcasts the stored weight with a plain cast and
has no per-layer scale, so it cannot hold the scaled fp8 weights the upstream and ComfyUI fp8
checkpoints ship (weight = w.to(dtype) * scale); diffusers' quantizers (torchao, quanto, bnb, gguf)
either need extra packages or quantize from full-precision weights with their own scales. This class
computes exactly what the load-time dequantisation computes, so "keep" and "dequantize" give
bit-identical outputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Fp8ScaledLinear(nn.Linear):
    """nn.Linear with a float8 `weight` and a `weight_scale` buffer; y = x @ (w.to(x.dtype) * s)^T + b."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device)
        self.register_buffer("weight_scale", torch.ones((), device=device))

    @classmethod
    def like(cls, linear: nn.Linear) -> "Fp8ScaledLinear":
        """An empty (meta) replacement for `linear`, filled later by load_state_dict(assign=True)."""
        return cls(linear.in_features, linear.out_features, bias=linear.bias is not None, device="meta")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Same order as upstream's fp8_activation_dequant: cast first, then multiply by the scale.
        weight = self.weight.to(x.dtype) * self.weight_scale.to(x.dtype)
        return F.linear(x, weight, self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", weight_dtype={self.weight.dtype}"


def dequantize(weight: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The load-time equivalent of Fp8ScaledLinear: w.to(dtype) * scale.to(dtype)."""
    return weight.to(dtype) * scale.to(dtype)


def replace_linear(model: nn.Module, module_name: str) -> bool:
    """Swap the nn.Linear at `module_name` for an Fp8ScaledLinear; False if it is not a Linear."""
    parent_name, _, child = module_name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    current = getattr(parent, child, None)
    if type(current) is not nn.Linear:
        return False
    setattr(parent, child, Fp8ScaledLinear.like(current))
    return True
