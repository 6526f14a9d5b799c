"""The denoising loop: flow-matching Euler with true classifier-free guidance, as upstream samples.

Per step: velocity for [uncond, cond] (the same reference latent in both), `u + g*(c - u)` in
float32, one Euler step in float32. Guidance 1.0 runs the conditional pass only (upstream's
`guidance_scale > 1` rule). Upstream's "deepcache" (30-step runs only) re-runs just the last
single block on steps 11,12,14,15,17,18,20,21; the other step caches (diffusion_models/step_cache.py)
are attached for the run and see each CFG pass under its own cache_context name.

CFG runs either as one batch of 2 (upstream's way) or as two batch-1 passes (the default): the
passes give the same numbers, need about half the activation memory at 720p, and let the
transformer drop the text mask so flash/sage attention kernels apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .diffusion_models.cancel_hooks import cancel_between_blocks
from .diffusion_models.deep_cache import DeepCache, upstream_deep_cache_mode
from .diffusion_models.step_cache import DEEPCACHE, OFF, CacheSettings, step_cache_run
from .scheduler import FlowMatchEuler
from .text_encoders.encodings import TextConditioning

StepCallback = Callable[[int, int, torch.Tensor], None]  # (steps done, total, current latents)


@dataclass
class DenoiseRequest:
    """Everything the loop needs besides the model. Latents are float32 [1, C, T, h, w]."""

    latents: torch.Tensor  # initial noise (upstream: randn from a CPU generator seeded with seed)
    ref_latents: torch.Tensor  # reference latent [1, C, 1, h, w], already times the VAE scaling factor
    text: TextConditioning  # rows [uncond, cond] under CFG, else [cond]
    steps: int
    flow_shift: float
    guidance_scale: float
    deep_cache: bool = False  # upstream's deepcache; shorthand for cache=CacheSettings("deepcache")
    cfg_batched: bool = False
    bg_latents: torch.Tensor | None = None  # editing checkpoint only
    audio_prompts: torch.Tensor | None = None  # audio checkpoint only: cond row's whisper windows
    audio_strength: float = 0.8
    cache: CacheSettings | None = None  # a step cache by name; when given it replaces deep_cache
    cache_forced_skips: frozenset[int] | None = None  # benchmarks: the steps the cache must skip (step_cache.py)

    @property
    def uses_cfg(self) -> bool:
        return self.guidance_scale > 1.0

    @property
    def step_cache(self) -> CacheSettings:
        if self.cache is not None:
            return self.cache
        return CacheSettings(DEEPCACHE if self.deep_cache else OFF)


def initial_noise(seed: int, latent_shape: tuple[int, ...]) -> torch.Tensor:
    """Upstream's starting noise: randn from `torch.Generator('cpu').manual_seed(seed)`, float32.

    Always drawn on the CPU so a seed gives the same video on every device (a CUDA generator
    draws other numbers)."""
    generator = torch.Generator("cpu").manual_seed(int(seed))
    return torch.randn(latent_shape, generator=generator, dtype=torch.float32)


def latent_shape(num_frames: int, height: int, width: int, channels: int = 16) -> tuple[int, int, int, int, int]:
    """[1, C, (F-1)/4+1, H/8, W/8] for the 884 VAE."""
    return (1, channels, (num_frames - 1) // 4 + 1, height // 8, width // 8)


class _Pass:
    """One forward stream (a CFG row, or both rows batched) with its own deep cache; `name` keys
    its state in the other step caches."""

    def __init__(self, name: str, rows: slice, request: DenoiseRequest, dtype: torch.dtype, device: torch.device):
        self.name = name
        text = request.text
        self.batch = len(range(*rows.indices(text.batch_size)))
        self.states = text.states[rows].to(device=device, dtype=dtype)
        self.mask = text.mask[rows].to(device=device)
        self.pooled = text.pooled[rows].to(device=device, dtype=dtype)
        self.ref = request.ref_latents.to(device=device, dtype=dtype).expand(self.batch, -1, -1, -1, -1)
        self.bg = None
        if request.bg_latents is not None:
            self.bg = request.bg_latents.to(device=device, dtype=dtype).expand(self.batch, -1, -1, -1, -1)
        self.audio = None
        if request.audio_prompts is not None:
            cond_audio = request.audio_prompts.to(device=device, dtype=dtype)
            # Upstream's uncond row gets zero audio; rows follow the text rows.
            all_rows = [torch.zeros_like(cond_audio), cond_audio] if text.batch_size == 2 else [cond_audio]
            self.audio = torch.cat(all_rows, dim=0)[rows]
        self.cache = DeepCache("off")

    def __call__(self, model, latents: torch.Tensor, t: torch.Tensor, mode: str, audio_strength: float) -> torch.Tensor:
        self.cache.mode = mode
        if mode != "reuse":
            # Free the stored block input now: "off" has no reuse ahead, and "store" replaces it
            # (dropping it first keeps two copies from being alive during the forward).
            self.cache.clear()
        hidden = latents.to(self.states.dtype).expand(self.batch, -1, -1, -1, -1)
        out = model(
            hidden, t.expand(self.batch).to(hidden.device), self.states, self.mask, self.pooled,
            ref_latents=self.ref, bg_latents=self.bg, audio_prompts=self.audio, audio_strength=audio_strength,
            deep_cache=self.cache, return_dict=False,
        )[0]
        return out.float()


def denoise(
    model: torch.nn.Module,
    request: DenoiseRequest,
    *,
    on_step: StepCallback | None = None,
    check_cancel: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Run the sampling loop; returns the final float32 latents (before /scaling_factor).

    `check_cancel` is called before every step and every transformer block and may raise to stop;
    `on_step` after every step.
    """
    # The patch embed is never stored in fp8, so its weight tells the compute dtype and device.
    weight = model.x_embedder.proj.weight
    device, dtype = weight.device, weight.dtype
    text = request.text if request.uses_cfg else (request.text.cond_only() if request.text.has_uncond else request.text)
    request = DenoiseRequest(**{**request.__dict__, "text": text})
    rows = text.batch_size
    if request.uses_cfg and rows != 2:
        raise ValueError(f"guidance_scale {request.guidance_scale} > 1 needs [uncond, cond] text rows, got {rows}")
    if request.uses_cfg and not request.cfg_batched:
        passes = [_Pass("uncond", slice(0, 1), request, dtype, device),
                  _Pass("cond", slice(1, 2), request, dtype, device)]
    else:
        passes = [_Pass("cfg_batch" if request.uses_cfg else "cond", slice(0, rows), request, dtype, device)]

    settings = request.step_cache
    deep_cache = settings.name == DEEPCACHE
    flow = FlowMatchEuler(request.steps, request.flow_shift, device="cpu")
    latents = request.latents.to(device=device, dtype=torch.float32)
    with step_cache_run(model, settings, request.steps, request.cache_forced_skips) as cache, \
            cancel_between_blocks(model, check_cancel):  # Cancel inside a step too
        for i, t in enumerate(flow.timesteps):
            if check_cancel is not None:
                check_cancel()
            mode = upstream_deep_cache_mode(i, request.steps) if deep_cache else "off"
            t = t.to(device)
            cache.before_step(i)
            preds = []
            for p in passes:
                with cache.pass_context(p.name):
                    preds.append(p(model, latents, t, mode, request.audio_strength))
            preds = torch.cat(preds, dim=0)
            if request.uses_cfg:
                uncond, cond = preds[0:1], preds[1:2]
                velocity = uncond + request.guidance_scale * (cond - uncond)
            else:
                velocity = preds
            latents = flow.step(i, velocity, latents)
            if on_step is not None:
                on_step(i + 1, request.steps, latents)
    return latents
