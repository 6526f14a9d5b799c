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
(pipelines/text_encoders/offload.py), which brings the stage from ~16 GiB to ~3-4 GiB for a second
or two of PCIe traffic per encode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


def on_device(tensor: torch.Tensor, device: torch.device) -> bool:
    """Whether `tensor` is on `device` ("cuda" means any index, as torch places it)."""
    return tensor.device.type == device.type and (device.index is None or tensor.device.index == device.index)


def module_bytes(module: torch.nn.Module, device: torch.device | None = None) -> int:
    """Bytes of a module's parameters and buffers (what moves to the GPU with it); with `device`,
    only of those already there (for offload 'auto', free for this module: not counted twice)."""
    unique = {id(t): t for t in [*module.parameters(), *module.buffers()]}  # tied weights count once
    return sum(t.numel() * t.element_size() for t in unique.values() if device is None or on_device(t, device))


@dataclass(frozen=True)
class OffloadChoice:
    mode: str  # "model" (whole on the GPU) or "group" (streamed from CPU RAM)
    need_bytes: int  # estimated peak of the stage with its model(s) whole on the GPU
    available_bytes: int
    stage: str = "transformer"
    extra: str = ""  # what else the need counts, e.g. "2.8 GiB of teacache state"

    def describe(self) -> str:
        extra = f" (with {self.extra})" if self.extra else ""
        return (f"{self.stage}: offload auto -> {self.mode}: whole it needs ~{self.need_bytes / GIB:.1f} GiB{extra}, "
                f"{self.available_bytes / GIB:.1f} GiB of VRAM is free")


def choose_offload(weight_bytes: int, tokens: int, compute_itemsize: int, available_bytes: int,
                   extra_bytes: int = 0, extra_what: str = "") -> OffloadChoice:
    """'model' when weights + activations + `extra_bytes` (a step cache's state) + margin fit in
    `available_bytes`, else 'group'."""
    need = weight_bytes + tokens * ACTIVATION_BYTES_PER_TOKEN_PER_BYTE * compute_itemsize + extra_bytes + MARGIN_BYTES
    extra = f"{extra_bytes / GIB:.1f} GiB of {extra_what}" if extra_bytes and extra_what else ""
    return OffloadChoice("model" if need <= available_bytes else "group", need, available_bytes, extra=extra)


def choose_text_offload(llava_bytes: int, clip_bytes: int, compute_itemsize: int,
                        available_bytes: int) -> OffloadChoice:
    """'model' when LLaVA + CLIP + one encode's activations + margin fit in `available_bytes`, else
    'group'. Byte counts are of the weights as they will sit in memory (compute dtype)."""
    need = llava_bytes + clip_bytes + TEXT_ACTIVATION_BYTES_PER_BYTE * compute_itemsize + MARGIN_BYTES
    return OffloadChoice("model" if need <= available_bytes else "group", need, available_bytes, "text encoders")


def stream_transformer_blocks(model: torch.nn.Module, device: Any, use_stream: bool | None = None) -> None:
    """offload 'group' for the transformer: diffusers' group offloading onto `device`, one block per
    group, weights kept in CPU RAM; with `use_stream` (default: on CUDA) the next block is prefetched
    on a side stream. The benchmarks call this too, so they measure what generate.py runs."""
    device = torch.device(device)
    model.enable_group_offload(device, offload_device=torch.device("cpu"), offload_type="block_level",
                               num_blocks_per_group=1, use_stream=device.type == "cuda" if use_stream is None else use_stream)


def streaming_device(model: torch.nn.Module) -> torch.device | None:
    """The device a group-offloaded (streamed) model computes on; None when it is not streamed.
    Its blocks' weights are on that device only while each block runs (step caches need this to
    evaluate block 0's norm before deciding whether block 0 runs at all)."""
    try:
        from diffusers.hooks.group_offloading import _get_group_onload_device, _is_group_offload_enabled
    except ImportError:  # a diffusers without group offloading cannot have streamed the model
        return None
    return _get_group_onload_device(model) if _is_group_offload_enabled(model) else None


def available_vram(device: torch.device) -> int:
    """Free memory on a CUDA device, counting what torch has cached but is not using as free."""
    free, _total = torch.cuda.mem_get_info(device)
    return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))


# ---------------------------------------------------------------------------------------------
# VAE decode: the temporal tile length that fits
#
# The tiled decode's peak is one tile's up-block activations (tiles are 256 px wide and tall
# whatever the video size, so this part depends only on the tile's frames), plus the decoded tiles
# held until they are reassembled, plus the VAE weights. benchmarks/vram_estimate.py, bf16, 129
# frames (GiB of live tensors):        64-frame tiles   32   16
#                          1280x720          10.26     6.00  3.81
#                           960x544           9.85     5.57  3.39
# 64 -> 32 frames saves 4.26 / 4.28 GiB at both sizes = 133 MiB per tile frame in bf16, i.e.
# ~1090 bytes per tile pixel and frame per byte of the dtype; rounded up to 1152 here. The rest
# (0.7 / 1.1 GiB above the weights) grows with the video: at most 2x the decoded video's bytes.
# generate.py copies the decoded video to the CPU before making float32 frames of it, so that
# post-processing costs no VRAM.

VAE_TILE_BYTES_PER_PIXEL_FRAME_PER_BYTE = 1152
VAE_HELD_VIDEO_FACTOR = 2  # decoded tiles (with their overlaps) held until reassembled
VAE_SHORTER_TILES = (32, 16)  # tried in this order when upstream's tile does not fit


def vae_decode_need(width: int, height: int, frames: int, tile_frames: int, itemsize: int,
                    tile_px: int = 256, weight_bytes: int = 0) -> int:
    """Estimated peak bytes of the tiled VAE decode, without the margin.

    `tile_px`: the spatial decode tile (the VAE config's sample_size); `itemsize`: bytes per
    element of the VAE's dtype; `weight_bytes`: VAE weights still to be put on the device (0 when
    they are already there and so no longer count as free)."""
    # A tile of N frames decodes N+1 frames (the causal context frame); a video shorter than the
    # tile is decoded in one go, and a frame smaller than the spatial tile is not tiled spatially.
    tile_frames_decoded = min(tile_frames, frames - 1) + 1
    tile_pixels = min(width, tile_px) * min(height, tile_px)
    tile = VAE_TILE_BYTES_PER_PIXEL_FRAME_PER_BYTE * itemsize * tile_pixels * tile_frames_decoded
    video_elements = 3 * frames * width * height
    held = VAE_HELD_VIDEO_FACTOR * video_elements * itemsize
    return weight_bytes + tile + held


@dataclass(frozen=True)
class VAETileChoice:
    tile_frames: int
    upstream_frames: int
    need_bytes: int  # estimated decode peak with this tile, margin included
    available_bytes: int

    @property
    def is_upstream(self) -> bool:
        return self.tile_frames == self.upstream_frames

    @property
    def fits(self) -> bool:
        return self.need_bytes <= self.available_bytes

    def describe(self) -> str:
        free = self.available_bytes / GIB
        if not self.fits:
            return (f"VAE decode in {self.tile_frames}-frame tiles (the shortest) needs ~{self.need_bytes / GIB:.1f} GiB "
                    f"but only {free:.1f} GiB is free: it may run out of memory; free VRAM (close other programs) "
                    "or make the video smaller or shorter")
        if self.is_upstream:
            return f"VAE decode in upstream's {self.tile_frames}-frame tiles (~{self.need_bytes / GIB:.1f} GiB, {free:.1f} GiB free)"
        return f"VAE decode in {self.tile_frames}-frame tiles to fit {free:.1f} GiB free"


def choose_vae_tile_frames(width: int, height: int, frames: int, itemsize: int, available_bytes: int, *,
                           upstream_frames: int = 64, tile_px: int = 256, weight_bytes: int = 0) -> VAETileChoice:
    """The longest temporal decode tile among upstream's and 32, 16 frames whose estimated peak plus
    MARGIN_BYTES fits `available_bytes`; upstream's whenever it fits, the shortest when none does."""
    candidates = [upstream_frames] + [f for f in VAE_SHORTER_TILES if f < upstream_frames]
    choice = None
    for tile_frames in candidates:
        need = vae_decode_need(width, height, frames, tile_frames, itemsize, tile_px, weight_bytes) + MARGIN_BYTES
        choice = VAETileChoice(tile_frames, upstream_frames, need, available_bytes)
        if choice.fits:
            break
    return choice
