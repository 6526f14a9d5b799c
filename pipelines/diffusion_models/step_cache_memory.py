"""What a step cache keeps on the GPU between denoising steps, for offload 'auto' to count.

An adaptive cache keeps, for each of the two CFG passes, a few tensors as large as the
transformer's hidden states (a residual, the previous block-0 input...), so at 1280*720 x 129
frames in bf16 TeaCache and MagCache hold ~2.8 GiB and FirstBlockCache ~4.2 GiB besides the
activations; TaylorSeer's lite mode keeps only the output projection's Taylor factors (~0.1 GiB).
Upstream's deepcache keeps one stored block input, which the activation estimate already includes
(benchmarks/vram_estimate.py counts deepcache's storing steps), so it adds nothing here.

The counts below are what the caches hold at the start of a step, read from their hooks on a tiny
model (tests/test_cache_memory.py keeps them at or above what is measured).
"""

from __future__ import annotations

from typing import Any

from .step_cache import DEEPCACHE, FBCACHE, MAGCACHE, OFF, TAYLORSEER, TEACACHE

CFG_PASSES = 2  # each pass keeps its own state (cache_context per pass)
FACTORS_ITEMSIZE = 4  # TaylorSeer's factors are float32 (step_cache.py asks for it)
BOOKKEEPING_BYTES = 4096  # per pass: scalars and small tables (MagCache's ratios for the run's steps)

# Per CFG pass: (tensors [image tokens incl. the reference frame, hidden] in the compute dtype,
#                tensors [text tokens, hidden] in the compute dtype,
#                tensors [video tokens, patch output] in float32)
STATE_TENSORS = {
    OFF: (0, 0, 0),
    DEEPCACHE: (0, 0, 0),  # counted with the activations
    TEACACHE: (2, 0, 0),  # the previous block-0 modulated input and the residual
    MAGCACHE: (2, 0, 0),  # the head block's input and the previous residual
    FBCACHE: (3, 2, 0),  # the first block's output and residual, the tail residuals (image and text)
    TAYLORSEER: (0, 0, 2),  # order-0 and order-1 factors of proj_out (max_order 1, lite mode)
}


def state_bytes(cache: str, latent_shape: tuple[int, ...], config: Any, itemsize: int, text_tokens: int) -> int:
    """Bytes cache `cache` keeps between steps for a latent of `latent_shape` (…, F, H, W) with a
    transformer of `config` (diffusers' HunyuanVideo config fields) computing in `itemsize` bytes."""
    frames, height, width = latent_shape[-3:]
    patch, patch_t = int(config.patch_size), int(config.patch_size_t)
    per_frame = (height // patch) * (width // patch)
    video_tokens = (frames // patch_t) * per_frame
    image_tokens = video_tokens + per_frame  # + the reference frame
    hidden = int(config.num_attention_heads) * int(config.attention_head_dim)
    patch_out = patch * patch * patch_t * int(config.out_channels)
    image, text, factors = STATE_TENSORS.get(cache, (0, 0, 0))
    if not (image or text or factors):
        return 0
    per_pass = (image * image_tokens * hidden * itemsize + text * text_tokens * hidden * itemsize
                + factors * video_tokens * patch_out * FACTORS_ITEMSIZE + BOOKKEEPING_BYTES)
    return CFG_PASSES * per_pass
