"""The denoising loop: flow-matching Euler with true classifier-free guidance, as upstream samples.

Per step: velocity for [uncond, cond] (the same reference latent in both), `u + g*(c - u)` in
float32, one Euler step in float32. Guidance 1.0 runs the conditional pass only (upstream's
`guidance_scale > 1` rule). Upstream's "deepcache" (30-step runs only) re-runs just the last
single block on steps 11,12,14,15,17,18,20,21; the other step caches (diffusion_models/step_cache.py)
are attached for the run and see each CFG pass under its own cache_context name.

CFG runs either as one batch of 2 (upstream's way) or as two batch-1 passes (the default): the
passes give the same numbers, need about half the activation memory at 720p, and let the
transformer drop the text mask so flash/sage attention kernels apply.

Longer than 129 frames (33 latents): the latent is sampled in windows (windows.py, Avatar's
schedule). Inside each step every window gets its own forward(s) through `window_velocity` (a
plain function: the window's latents and inputs at one step -> its guided velocity, so windows can
be spread over devices), the velocities are put back and averaged where windows overlap, then one
Euler step moves every latent. Each input that varies along the video is cut for the window by the
cut its condition declared (`DenoiseRequest.window_cuts`); the sampler knows no mode. The step
caches keep state per pass only, and windows move every step, so a windowed run refuses the
adaptive ones and runs deepcache's steps in full.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping, Protocol

import torch

from .diffusion_models.cancel_hooks import cancel_between_blocks
from .diffusion_models.deep_cache import DeepCache, upstream_deep_cache_mode
from .diffusion_models.step_cache import DEEPCACHE, OFF, CacheSettings, step_cache_run
from .scheduler import FlowMatchEuler
from .text_encoders.encodings import TextConditioning
from .windows import Window, WindowCut, avatar_windows, window_count

StepCallback = Callable[[int, int, torch.Tensor], None]  # (steps done, total, current latents)
WindowCallback = Callable[[int, int], None]  # (windows done in the run, windows in the run)
# Inputs that are the same for every window (the reference goes in front of every window).
_UNCUT_FIELDS = ("latents", "ref_latents")


class PassRunner(Protocol):
    def run_passes(self, passes: list, run: Callable[[Any], torch.Tensor]) -> torch.Tensor: ...


class WindowRunner(Protocol):
    def owns(self, window: Window) -> bool: ...

    def combine(self, velocity: torch.Tensor | None, counts: torch.Tensor | None,
                latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


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
    # How each input that varies along the video is cut for a window (field name -> windows.WindowCut),
    # as the conditions that made the inputs declared them (`window_cuts` in their stage inputs).
    window_cuts: Mapping[str, WindowCut] = field(default_factory=dict)

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


def windowed_cache_refusal(cache: str, num_latents: int) -> str | None:
    """Why step cache `cache` cannot run `num_latents` latents (None: it can). Every cache keeps what
    it reuses per CFG pass, for the positions of the last forward; the windows move 10 latents every
    step, so what a window would reuse belongs to other frames. The adaptive caches are refused;
    deepcache (the default, upstream's, which acts only at 30 steps) simply does not act on a windowed
    run (`deep_cache_acts`), so the default settings make long videos. deepcache stays upstream-exact
    at 129 frames (one window)."""
    if cache in (OFF, DEEPCACHE) or window_count(num_latents) == 1:
        return None
    frames = (num_latents - 1) * 4 + 1
    return (f"the {cache} step cache cannot run a video longer than 129 frames ({frames} frames are sampled in "
            f"{window_count(num_latents)} windows that move every step, and the cache would reuse the work of "
            "other frames): set cache to off or deepcache, or make at most 129 frames")


def deep_cache_acts(num_latents: int) -> bool:
    """Upstream's deepcache reuses a block input of the same window a step later: one window only."""
    return window_count(num_latents) == 1


class _Pass:
    """One forward stream (a CFG row, or both rows batched); `name` keys its state in the step caches."""

    def __init__(self, name: str, rows: slice, request: DenoiseRequest, dtype: torch.dtype, device: torch.device):
        self.name = name
        self.rows = rows
        text = request.text
        self.text_rows = text.batch_size
        self.batch = len(range(*rows.indices(text.batch_size)))
        self.states = text.states[rows].to(device=device, dtype=dtype)
        self.mask = text.mask[rows].to(device=device)
        self.pooled = text.pooled[rows].to(device=device, dtype=dtype)
        self.ref = request.ref_latents.to(device=device, dtype=dtype).expand(self.batch, -1, -1, -1, -1)

    def inputs(self, window_inputs: Mapping[str, torch.Tensor | None]) -> dict[str, torch.Tensor | None]:
        """This pass's rows of a window's inputs (already on the device, in the compute dtype)."""
        bg = window_inputs.get("bg_latents")
        if bg is not None:
            bg = bg.expand(self.batch, -1, -1, -1, -1)
        audio = window_inputs.get("audio_prompts")
        if audio is not None:
            # Upstream's uncond row gets zero audio; rows follow the text rows.
            all_rows = [torch.zeros_like(audio), audio] if self.text_rows == 2 else [audio]
            audio = torch.cat(all_rows, dim=0)[self.rows]
        return {"bg_latents": bg, "audio_prompts": audio}

    def __call__(self, model, latents: torch.Tensor, t: torch.Tensor, mode: str, audio_strength: float,
                 window_inputs: Mapping[str, torch.Tensor | None], cache: DeepCache) -> torch.Tensor:
        cache.mode = mode
        if mode != "reuse":
            # Free the stored block input now: "off" has no reuse ahead, and "store" replaces it
            # (dropping it first keeps two copies from being alive during the forward).
            cache.clear()
        hidden = latents.to(self.states.dtype).expand(self.batch, -1, -1, -1, -1)
        out = model(
            hidden, t.expand(self.batch).to(hidden.device), self.states, self.mask, self.pooled,
            ref_latents=self.ref, **self.inputs(window_inputs), audio_strength=audio_strength,
            deep_cache=cache, return_dict=False,
        )[0]
        return out.float()


def window_velocity(model: torch.nn.Module, passes: list[_Pass], latents: torch.Tensor, t: torch.Tensor, *,
                    window_inputs: Mapping[str, torch.Tensor | None], guidance_scale: float, audio_strength: float,
                    mode: str, caches: Mapping[str, DeepCache], cache_run, context: str = "",
                    parallel: PassRunner | None = None) -> torch.Tensor:
    """The guided velocity of one window at one step: its latents [1, C, n, h, w] (float32) and its
    cut inputs -> float32 velocity of the same shape. `caches` holds each pass's deep cache;
    `context` is added to each pass's cache_context name; `parallel` runs this rank's share of the
    passes and gathers all of them (CFG parallel)."""

    def run(p: _Pass) -> torch.Tensor:
        with cache_run.pass_context(p.name + context):
            return p(model, latents, t, mode, audio_strength, window_inputs, caches[p.name])

    preds = parallel.run_passes(passes, run) if parallel else torch.cat([run(p) for p in passes], dim=0)
    if guidance_scale > 1.0:
        uncond, cond = preds[0:1], preds[1:2]
        return uncond + guidance_scale * (cond - uncond)
    return preds


def _cut_fields(request: DenoiseRequest) -> dict[str, torch.Tensor]:
    """The request's inputs that vary along the video (every tensor field but the latents and the
    reference), each of which needs a window cut once there are several windows."""
    return {f.name: getattr(request, f.name) for f in fields(request)
            if f.name not in _UNCUT_FIELDS and isinstance(getattr(request, f.name), torch.Tensor)}


def window_inputs(request: DenoiseRequest, window: Window, device: torch.device,
                  dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The request's per-video inputs cut for `window` (by their declared cuts), on the device."""
    out = {}
    for name, value in _cut_fields(request).items():
        if not window.is_whole:
            cut = request.window_cuts.get(name)
            if cut is None:
                raise ValueError(f"{name} has no window cut: a run of {window.total} latents needs one "
                                 "(DenoiseRequest.window_cuts, declared by the condition that made it)")
            value = cut(value, window)
        out[name] = value.to(device=device, dtype=dtype)
    return out


def denoise(
    model: torch.nn.Module,
    request: DenoiseRequest,
    *,
    on_step: StepCallback | None = None,
    check_cancel: Callable[[], None] | None = None,
    on_window: WindowCallback | None = None,
    parallel: PassRunner | None = None,
    window_split: WindowRunner | None = None,
    cancel_in_blocks: bool = True,
) -> torch.Tensor:
    """Run the sampling loop; returns the final float32 latents (before /scaling_factor).

    `check_cancel` is called before every window (so before every step) and may raise to stop, and
    with `cancel_in_blocks` before every transformer block too (Cancel inside a step); `on_window`
    after every window's forwards, `on_step` after every step.
    `parallel` (parallel/cfg.py): runs this rank's share of each window's passes and gathers all of them;
    `window_split` (parallel/windows.py): this rank runs the windows it owns, and the step's velocity
    sums and counts are added over the ranks before the Euler step. Parallel ranks pass
    `cancel_in_blocks=False`: their check is a collective, which ranks running different windows
    would call a different number of times.
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
    total = int(request.latents.shape[2])
    refusal = windowed_cache_refusal(settings.name, total)
    if refusal:
        raise ValueError(refusal)
    deep_cache = settings.name == DEEPCACHE and deep_cache_acts(total)
    flow = FlowMatchEuler(request.steps, request.flow_shift, device="cpu")
    latents = request.latents.to(device=device, dtype=torch.float32)
    windows = window_count(total)
    caches: dict[int, dict[str, DeepCache]] = {}  # per window slot, per pass
    whole_inputs = None  # a one-window run's inputs, made once
    if settings.name == DEEPCACHE and not deep_cache:
        settings = CacheSettings(OFF)
    with step_cache_run(model, settings, request.steps, request.cache_forced_skips) as cache, \
            cancel_between_blocks(model, check_cancel if cancel_in_blocks else None):  # Cancel inside a step too
        for i, t in enumerate(flow.timesteps):
            mode = upstream_deep_cache_mode(i, request.steps) if deep_cache else "off"
            t = t.to(device)
            cache.before_step(i)
            velocity = None
            counts = None
            for window in avatar_windows(total, i):
                if check_cancel is not None:
                    check_cancel()  # before every window (and so before every step), on every rank alike
                if window_split is not None and not window_split.owns(window):
                    continue
                if window.is_whole:
                    if whole_inputs is None:
                        whole_inputs = window_inputs(request, window, device, dtype)
                    inputs, part = whole_inputs, latents
                else:
                    inputs = window_inputs(request, window, device, dtype)
                    index = torch.tensor(window.latents, device=device)
                    part = latents.index_select(2, index)
                if window.index not in caches:
                    caches[window.index] = {p.name: DeepCache("off") for p in passes}
                slot = caches[window.index]
                v = window_velocity(model, passes, part, t, window_inputs=inputs,
                                    guidance_scale=request.guidance_scale, audio_strength=request.audio_strength,
                                    mode=mode, caches=slot, cache_run=cache,
                                    context="" if windows == 1 else f"@window{window.index}", parallel=parallel)
                if window.is_whole:
                    velocity = v
                else:
                    if velocity is None:
                        velocity = torch.zeros_like(latents)
                        counts = torch.zeros(total, device=device, dtype=torch.float32)
                    velocity.index_add_(2, index, v)
                    counts.index_add_(0, index, torch.ones(window.size, device=device))
                if on_window is not None:
                    on_window(i * windows + window.index + 1, request.steps * windows)
            if window_split is not None:
                velocity, counts = window_split.combine(velocity, counts, latents)
            if counts is not None:  # the wrap-around duplicates get the mean of their windows' velocities
                velocity = velocity / counts.view(1, 1, -1, 1, 1)
            latents = flow.step(i, velocity, latents)
            if on_step is not None:
                on_step(i + 1, request.steps, latents)
    return latents
