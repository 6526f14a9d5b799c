"""offload = "auto": keep the whole transformer on the GPU only when the job will fit there.

The transformer's sampling peak is its weights plus activations that grow linearly with the number
of tokens (benchmarks/vram_estimate.py: 14.4 GiB at 1280x720 x 129 frames = 123,231 tokens, 8.2 GiB
at 960x544 x 129, both bf16 with a fused attention kernel: ~122 KiB per token, rounded up here).
If weights + activations + a margin for the CUDA context, workspaces and fragmentation fit in the
memory the GPU has free, "model" (fastest) is used, otherwise "group" (blocks streamed from CPU RAM,
which adds little time at the sizes where it is needed: a 720p step computes for far longer than its
~24 GB of weights take to cross PCIe).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

GIB = 1024**3
ACTIVATION_BYTES_PER_TOKEN_PER_BYTE = 64 * 1024  # x2 for bf16/fp16 = 128 KiB per token, x4 for fp32
MARGIN_BYTES = 2 * GIB  # CUDA context 0.5-1 GiB, workspaces, allocator fragmentation
TEXT_TOKENS = 831  # LLaVA's 256 text tokens + 575 extra image-feature positions (worst case kept)


def sequence_tokens(latent_shape: tuple[int, ...], patch_size: int = 2, patch_size_t: int = 1) -> int:
    """Tokens one transformer pass sees: video latent + the reference frame + the text."""
    frames, height, width = latent_shape[-3:]
    per_frame = (height // patch_size) * (width // patch_size)
    return (frames // patch_size_t + 1) * per_frame + TEXT_TOKENS


def module_bytes(module: torch.nn.Module) -> int:
    """Bytes of a module's parameters and buffers (what moves to the GPU with it)."""
    unique = {id(t): t for t in [*module.parameters(), *module.buffers()]}  # tied weights count once
    return sum(t.numel() * t.element_size() for t in unique.values())


@dataclass(frozen=True)
class OffloadChoice:
    mode: str  # "model" or "group"
    need_bytes: int  # estimated peak of sampling with the whole model on the GPU
    available_bytes: int

    def describe(self) -> str:
        return (f"offload auto -> {self.mode}: the whole transformer needs ~{self.need_bytes / GIB:.1f} GiB, "
                f"{self.available_bytes / GIB:.1f} GiB of VRAM is free")


def choose_offload(weight_bytes: int, tokens: int, compute_itemsize: int, available_bytes: int) -> OffloadChoice:
    """'model' when weights + activations + margin fit in `available_bytes`, else 'group'."""
    need = weight_bytes + tokens * ACTIVATION_BYTES_PER_TOKEN_PER_BYTE * compute_itemsize + MARGIN_BYTES
    return OffloadChoice("model" if need <= available_bytes else "group", need, available_bytes)


def available_vram(device: torch.device) -> int:
    """Free memory on a CUDA device, counting what torch has cached but is not using as free."""
    free, _total = torch.cuda.mem_get_info(device)
    return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
