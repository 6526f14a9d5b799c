"""offload = "auto": keep the whole transformer on the GPU only when the job will fit there.

The transformer's sampling peak is its weights plus activations that grow linearly with the number
of tokens (benchmarks/vram_estimate.py: 14.4 GiB at 1280x720 x 129 frames = 123,231 tokens, 8.2 GiB
at 960x544 x 129, both bf16 with a fused attention kernel: ~122 KiB per token, rounded up here).
If weights + activations + a margin for the CUDA context, workspaces and fragmentation fit in the
memory the GPU has free, "model" (fastest) is used, otherwise "group" (blocks streamed from CPU RAM,
which adds little time at the sizes where it is needed: a 720p step computes for far longer than its
~24 GB of weights take to cross PCIe).

The text stage (LLaVA-Llama-3-8B + CLIP-L, once per prompt, cached) gets the same treatment with
`choose_text_offload`: both encoders whole when they fit, else LLaVA's decoder layers streamed
(pipelines/text_encoder_offload.py), which brings the stage from ~16 GiB to ~3-4 GiB for a second
or two of PCIe traffic per encode.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

GIB = 1024**3
ACTIVATION_BYTES_PER_TOKEN_PER_BYTE = 64 * 1024  # x2 for bf16/fp16 = 128 KiB per token, x4 for fp32
MARGIN_BYTES = 2 * GIB  # CUDA context 0.5-1 GiB, workspaces, allocator fragmentation
TEXT_TOKENS = 831  # LLaVA's 256 text tokens + 575 extra image-feature positions (worst case kept)
# The text stage's activations: one LLaVA forward over 926 positions with every layer's hidden
# states kept is 0.44 GiB in bf16 (benchmarks/vram_estimate.py, text stage); 0.25 GiB per byte of
# the compute dtype rounds that up (0.5 GiB bf16/fp16, 1 GiB fp32).
TEXT_ACTIVATION_BYTES_PER_BYTE = GIB // 4


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


@dataclass(frozen=True)
class TextOffloadChoice:
    mode: str  # "model" (both encoders whole on the GPU) or "group" (LLaVA's layers streamed)
    need_bytes: int  # estimated peak of the text stage with both encoders whole on the GPU
    available_bytes: int

    def describe(self) -> str:
        return (f"text encoders: offload auto -> {self.mode}: LLaVA + CLIP-L whole need "
                f"~{self.need_bytes / GIB:.1f} GiB, {self.available_bytes / GIB:.1f} GiB of VRAM is free")


def choose_text_offload(llava_bytes: int, clip_bytes: int, compute_itemsize: int,
                        available_bytes: int) -> TextOffloadChoice:
    """'model' when LLaVA + CLIP + one encode's activations + margin fit in `available_bytes`, else
    'group'. Byte counts are of the weights as they will sit in memory (compute dtype)."""
    need = llava_bytes + clip_bytes + TEXT_ACTIVATION_BYTES_PER_BYTE * compute_itemsize + MARGIN_BYTES
    return TextOffloadChoice("model" if need <= available_bytes else "group", need, available_bytes)


def available_vram(device: torch.device) -> int:
    """Free memory on a CUDA device, counting what torch has cached but is not using as free."""
    free, _total = torch.cuda.mem_get_info(device)
    return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
