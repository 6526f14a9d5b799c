"""Full-size (or tiny) models with the released shapes and made-up values, for measuring memory.

benchmarks/gpu_memory.py runs every local stage on a real GPU without the 40 GB download: the
models vram_estimate.py counts (same classes, configs and dtypes as loaded) are given CPU storage
here and filled with small pseudo-random values. Values only have to be finite and of a sensible
scale (kernels, not numbers, are measured).

Why not torch.randn per tensor: 8 B + 13 B parameters take minutes that way on a CPU. Each tensor
is instead filled by copying slices of a small random pool made once per (dtype, scale): plain
memory copies, seconds for the whole transformer.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

POOL_ELEMENTS = 1 << 22  # 4 Mi values per pool; each tensor copies pool slices from a random offset


class _Pools:
    """Random pools, one per (dtype, scale, shift), made on first use and only as long as needed
    (tiny models stay quick)."""

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self.base = torch.randn(2 * POOL_ELEMENTS, generator=self.generator)
        self._pools: dict[tuple[torch.dtype, float, float], torch.Tensor] = {}

    def get(self, dtype: torch.dtype, scale: float, shift: float, length: int) -> torch.Tensor:
        key = (dtype, round(scale, 6), shift)
        pool = self._pools.get(key)
        if pool is None or pool.numel() < length:
            pool = self._pools[key] = (self.base[:length] * scale + shift).to(dtype)
        return pool

    def fill(self, tensor: torch.Tensor, scale: float, shift: float = 0.0) -> None:
        flat = tensor.view(-1)
        chunk = min(POOL_ELEMENTS, flat.numel())
        pool = self.get(tensor.dtype, scale, shift, 2 * chunk)
        start = int(torch.randint(chunk, (1,), generator=self.generator))  # tensors differ from each other
        for i in range(0, flat.numel(), chunk):
            n = min(chunk, flat.numel() - i)
            flat[i: i + n].copy_(pool[start: start + n])


def _scale_of(name: str, param: torch.Tensor) -> tuple[float, float]:
    """(scale, shift): ~1/sqrt(fan_in) for matrices and convolutions, 1 +- small for norm weights,
    small for biases, so activations stay finite through 40 layers."""
    if param.ndim > 1:
        fan_in = param[0].numel()
        return 0.5 / fan_in ** 0.5, 0.0
    return 0.02, (1.0 if name.endswith("weight") else 0.0)


def fill_synthetic(module: nn.Module, dtype: torch.dtype | None = None, seed: int = 0) -> nn.Module:
    """Give every parameter without data (on "meta") CPU storage with small pseudo-random values.

    `dtype`: floating parameters of float32 are made in this dtype (as a loader with dtype= does);
    others (float8 weights of fp8 'keep') keep theirs. Tied parameters stay tied. Buffers on meta:
    fp8 layers' `weight_scale` becomes 1; any other is an error (its values matter, e.g. rotary
    tables: build the model so buffers are real, e.g. with accelerate.init_empty_weights())."""
    pools = _Pools(seed)
    made: dict[int, nn.Parameter] = {}
    for module_name, sub in module.named_modules():
        for name, param in list(sub._parameters.items()):
            if param is None:
                continue
            if id(param) in made:  # tied weight
                sub._parameters[name] = made[id(param)]
                continue
            if not param.is_meta:
                continue
            target = dtype if dtype is not None and param.dtype == torch.float32 else param.dtype
            tensor = torch.empty(param.shape, dtype=target)
            if tensor.is_floating_point():
                pools.fill(tensor, *_scale_of(name, tensor))
            else:
                tensor.zero_()
            made[id(param)] = sub._parameters[name] = nn.Parameter(tensor, requires_grad=False)
        for name, buf in list(sub._buffers.items()):
            if buf is None or not buf.is_meta:
                continue
            if name != "weight_scale":
                raise ValueError(f"{module_name}.{name}: a buffer without values on the meta device; build "
                                 "the model with real buffers (accelerate.init_empty_weights())")
            sub._buffers[name] = torch.ones(buf.shape, dtype=buf.dtype)
    return module


# ---------------------------------------------------------------------------------------------
# the three stages' models


def synthetic_transformer(tiny: bool, dtype: torch.dtype, fp8: bool) -> nn.Module:
    """The transformer vram_estimate.py counts (HYVideo-T/2 shapes, fp8 block Linears for fp8 'keep')."""
    from . import vram_estimate

    return fill_synthetic(vram_estimate.shape_only_transformer(tiny, dtype, fp8)).eval().requires_grad_(False)


def synthetic_text_encoders(tiny: bool, dtype: torch.dtype) -> tuple[nn.Module, nn.Module]:
    """(LLaVA-Llama-3-8B, CLIP-L text) with vram_estimate's configs on the CPU: parameters filled,
    buffers (rotary tables, position ids) computed as transformers computes them."""
    from accelerate import init_empty_weights
    from transformers import CLIPTextModel, LlavaForConditionalGeneration

    from . import vram_estimate

    with init_empty_weights():  # parameters on meta, buffers real
        llava = LlavaForConditionalGeneration(vram_estimate.llava_llama3_config(tiny))
        clip = CLIPTextModel(vram_estimate.clip_text_config(tiny))
    return (fill_synthetic(llava, dtype).eval().requires_grad_(False),
            fill_synthetic(clip, dtype, seed=1).eval().requires_grad_(False))


def synthetic_vae(tiny: bool, dtype: torch.dtype):
    """HunyuanVideoVAE with vram_estimate's config (full size or tiny) on the CPU."""
    from . import vram_estimate

    vae = vram_estimate.shape_only_vae(dtype, tiny=tiny)
    fill_synthetic(vae.model).eval().requires_grad_(False)
    return vae


class FullBudgetTokenizer:
    """Stands in for a tokenizer: every text becomes `length` valid ids (a prompt that fills the whole
    token budget, the longest case), with `image_token_id` once near the end, where the template's
    '... looks like<image>' puts it. Implements only the calls pipelines/text_encoders/encoding makes."""

    def __init__(self, length: int, *, filler_id: int = 1, image_token_id: int | None = None,
                 pad_token_id: int = 0) -> None:
        self.length = int(length)
        self.filler_id = filler_id
        self.image_token_id = image_token_id
        self.pad_token_id = pad_token_id

    def _ids(self) -> list[int]:
        ids = [self.filler_id] * self.length
        if self.image_token_id is not None:
            ids[-2] = self.image_token_id
        return ids

    def __len__(self) -> int:
        return self.length

    def __call__(self, text: str, max_length: int | None = None, return_tensors: str | None = None,
                 **_options: Any) -> dict[str, Any]:
        ids = self._ids()
        if max_length is not None and max_length != self.length:
            raise ValueError(f"FullBudgetTokenizer was made for {self.length} tokens, asked for {max_length}")
        if return_tensors == "pt":
            tensor = torch.tensor([ids], dtype=torch.int64)
            return {"input_ids": tensor, "attention_mask": torch.ones_like(tensor)}
        return {"input_ids": ids, "attention_mask": [1] * len(ids)}
