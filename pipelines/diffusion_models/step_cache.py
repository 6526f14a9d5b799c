"""Step caches: which one a run uses, its settings, and hooking it onto the transformer for one run.

A step cache skips transformer work on denoising steps whose result it expects to be close to an
earlier step's. The options (schema.CACHE_OPTIONS says what each does and what was published about it):

  off         every step runs every block; upstream's result exactly (without its deepcache).
  deepcache   upstream's: at exactly 30 steps, 8 steps re-run only the last block (deep_cache.py;
              sampling.py drives it). Upstream-exact at 30 steps, like `off` at other step counts.
  teacache    ours (teacache.py; diffusers has none), with the polynomial TeaCache's authors fitted
              for HunyuanVideo.
  magcache    diffusers' MagCache with the HunyuanVideo 720p magnitude ratios MagCache's authors published.
  fbcache     diffusers' FirstBlockCache (ParaAttention's First Block Cache).
  taylorseer  diffusers' TaylorSeer, "lite" variant: on skipped steps the output projection is
              extrapolated from earlier steps (the per-layer variant keeps two tensors per attention
              layer: far more memory than a 720p video leaves).

The adaptive ones take a threshold (higher skips more; 0 never skips, so the result is `off`'s
exactly) and a start/end window (fractions of the steps) outside which nothing is skipped. Every
published figure is for HunyuanVideo T2V, whose weights the thresholds and ratios were calibrated
on; HunyuanCustom's weights differ, so the same threshold skips a different number of steps here.

Each CFG pass keeps its own cache state: the sampler wraps each pass in `cache_context(name)`
(diffusers' mechanism; our TeaCache uses it too).
"""

from __future__ import annotations

import math
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, ContextManager, Iterator

import torch
from torch import nn

from ..schema import ADAPTIVE_CACHES, CACHE_NAMES, CACHE_OPTIONS, CacheOption

OFF, DEEPCACHE, TEACACHE, MAGCACHE, FBCACHE, TAYLORSEER = CACHE_NAMES
DEFAULT_CACHE = DEEPCACHE

# MagCache's magnitude ratios for HunyuanVideo T2V at 720p, 50 steps (MagCache4HunyuanVideo,
# Zehong-Ma/MagCache); diffusers interpolates them to the run's step count.
HUNYUAN_VIDEO_720P_MAG_RATIOS = (
    1.0, 1.0754, 1.27807, 1.11596, 1.09504, 1.05188, 1.00844, 1.05779, 1.00657, 1.04142, 1.03101,
    1.00679, 1.02556, 1.00908, 1.06949, 1.05438, 1.02214, 1.02321, 1.03019, 1.00779, 1.03381, 1.01886,
    1.01161, 1.02968, 1.00544, 1.02822, 1.00689, 1.02119, 1.0105, 1.01044, 1.01572, 1.02972, 1.0094,
    1.02368, 1.0226, 0.98965, 1.01588, 1.02146, 1.0018, 1.01687, 0.99436, 1.00283, 1.01139, 0.97122,
    0.98251, 0.94513, 0.97656, 0.90943, 0.85703, 0.75456,
)
MAGCACHE_RETENTION = 0.2  # MagCache's own rule: the first 20 % of the steps always run
# Most steps skipped in a row: the published pairs are threshold 0.12 with 4, 0.24 with 6.
MAGCACHE_MAX_SKIPS = ((0.24, 6), (0.0, 4))
TAYLORSEER_WARMUP_STEPS = 3  # diffusers' default: steps before the first prediction


class CacheSettingsError(ValueError):
    """A cache setting that is not allowed; the message names the value."""


@dataclass(frozen=True)
class CacheSettings:
    """The step cache of a run. threshold None = the option's recommended one; 0 = never skip.
    start/end: fractions of the steps between which skipping is allowed (each cache's own rules,
    e.g. MagCache's first 20 %, apply as well)."""

    name: str = DEFAULT_CACHE
    threshold: float | None = None
    start: float = 0.0
    end: float = 1.0

    def check(self) -> None:
        if self.name not in CACHE_OPTIONS:
            raise CacheSettingsError(f"cache {self.name!r} is not one of {', '.join(CACHE_NAMES)}")
        if self.threshold is not None and not (math.isfinite(self.threshold) and self.threshold >= 0):
            raise CacheSettingsError(f"cache threshold {self.threshold} must be 0 or more (0 never skips)")
        if not (0.0 <= self.start <= self.end <= 1.0):
            raise CacheSettingsError(f"cache start {self.start} and end {self.end} must satisfy 0 <= start <= end <= 1 "
                                     "(fractions of the steps)")

    @property
    def option(self) -> CacheOption:
        return CACHE_OPTIONS[self.name]

    @property
    def resolved_threshold(self) -> float | None:
        return self.option.recommended if self.threshold is None else float(self.threshold)

    def window(self, steps: int) -> range:
        """Step indices at which skipping is allowed."""
        return range(math.ceil(self.start * steps - 1e-9), math.ceil(self.end * steps - 1e-9))

    @classmethod
    def from_fields(cls, cache: str, threshold: float = -1.0, start: float = 0.0, end: float = 1.0) -> "CacheSettings":
        """From the schema's cache fields: a negative threshold means the option's recommended one."""
        return cls(cache, None if threshold is None or threshold < 0 else float(threshold), float(start), float(end))

    def describe(self) -> str:
        if self.name not in ADAPTIVE_CACHES:
            return f"cache {self.name}"
        window = "" if (self.start, self.end) == (0.0, 1.0) else f", steps {self.start:g}-{self.end:g}"
        return f"cache {self.name} (threshold {self.resolved_threshold:g}{window})"


# ---------------------------------------------------------------------------------------------
# one run


class StepCacheRun:
    """A cache attached to the model for one sampling run (no-op for off/deepcache).

    `forced_skips` (benchmarks): the steps to skip whatever the cache measures, and no others, as far
    as the cache's own rules allow (a first step, MagCache's first 20 % and its most skips in a row).
    The speed then does not depend on the weights (random weights make adaptive caches skip at random)."""

    def __init__(self, model: nn.Module, settings: CacheSettings, steps: int,
                 forced_skips: frozenset[int] | None = None) -> None:
        self.model, self.settings, self.steps = model, settings, steps
        self.window = settings.window(steps)
        threshold = settings.resolved_threshold
        self.never_skips = threshold is None or threshold <= 0
        self.forced_skips = forced_skips

    def attach(self) -> None:
        pass

    def detach(self) -> None:
        pass

    def before_step(self, index: int) -> None:
        """Called once per step, before its CFG passes."""

    def pass_context(self, name: str) -> ContextManager:
        """Wrap one CFG pass's forward: its cache state is kept under `name`."""
        return nullcontext()


class _HookedCacheRun(StepCacheRun):
    def pass_context(self, name: str) -> ContextManager:
        return self.model.cache_context(name)

    def skip_allowed(self, index: int) -> bool:
        if self.forced_skips is not None:
            return index in self.forced_skips
        return not self.never_skips and index in self.window

    def skip_threshold(self, index: int) -> float:
        """The threshold for this step: the setting's; +inf to force a skip; -inf, which no measured
        change lies below, to allow none (the cache still runs and keeps its state up to date)."""
        if not self.skip_allowed(index):
            return -math.inf
        return math.inf if self.forced_skips is not None else self.settings.resolved_threshold


class _DiffusersCacheRun(_HookedCacheRun):
    """FirstBlockCache, MagCache or TaylorSeer through diffusers' enable_cache / disable_cache."""

    def attach(self) -> None:
        self.config = self._config()
        self.model.enable_cache(self.config)

    def detach(self) -> None:
        self.model.disable_cache()

    def _config(self) -> Any:
        reason = cache_unavailable_reason(self.settings.name)
        if reason:
            raise CacheSettingsError(reason)
        from diffusers.hooks import FirstBlockCacheConfig, MagCacheConfig, TaylorSeerCacheConfig

        threshold = self.settings.resolved_threshold
        if self.settings.name == FBCACHE:
            return FirstBlockCacheConfig(threshold=threshold)
        if self.settings.name == MAGCACHE:
            max_skips = next(k for t, k in MAGCACHE_MAX_SKIPS if threshold >= t)
            return MagCacheConfig(threshold=threshold, max_skip_steps=max_skips, retention_ratio=MAGCACHE_RETENTION,
                                  num_inference_steps=self.steps, mag_ratios=list(HUNYUAN_VIDEO_720P_MAG_RATIOS))
        interval = 1 if self.never_skips else max(1, round(threshold))  # its pattern is fixed: not forced
        first = max(TAYLORSEER_WARMUP_STEPS, self.window.start)
        last = self.window.stop if self.window.stop < self.steps else None
        if not self.window:
            first, last = self.steps, None
        return TaylorSeerCacheConfig(cache_interval=interval, disable_cache_before_step=first,
                                     disable_cache_after_step=last, max_order=1,
                                     taylor_factors_dtype=torch.float32, use_lite_mode=True)

    def before_step(self, index: int) -> None:
        threshold = self.skip_threshold(index)
        if self.settings.name == MAGCACHE:
            self.config.threshold = threshold  # MagCache's hooks read their config on every call
        elif self.settings.name == FBCACHE:
            self._first_block_hook().threshold = threshold

    def _first_block_hook(self) -> Any:
        from diffusers.hooks import HookRegistry
        from diffusers.hooks.first_block_cache import _FBC_LEADER_BLOCK_HOOK

        hook = HookRegistry.check_if_exists_or_initialize(self.model.transformer_blocks[0]).get_hook(
            _FBC_LEADER_BLOCK_HOOK)
        if hook is None or not hasattr(hook, "threshold"):
            raise RuntimeError("diffusers' FirstBlockCache hook is not where this version expected it "
                               "(transformer_blocks[0], with a threshold)")
        return hook


class _TeaCacheRun(_HookedCacheRun):
    def attach(self) -> None:
        from ..offload_policy import streaming_device
        from .teacache import TeaCacheSchedule, apply_teacache, sequence_parallel_sum

        self.schedule = TeaCacheSchedule(threshold=self.settings.resolved_threshold, num_steps=self.steps,
                                         reduce=sequence_parallel_sum(self.model))
        self.handle = apply_teacache(self.model, self.schedule, compute_device=streaming_device(self.model))

    def detach(self) -> None:
        from .teacache import remove_teacache

        remove_teacache(self.model, self.handle)

    def before_step(self, index: int) -> None:
        self.schedule.step_index = index
        self.schedule.threshold = self.skip_threshold(index)


_DIFFUSERS_CONFIGS = {FBCACHE: "FirstBlockCacheConfig", MAGCACHE: "MagCacheConfig",
                      TAYLORSEER: "TaylorSeerCacheConfig"}


def cache_unavailable_reason(name: str) -> str | None:
    """Why the installed diffusers cannot run cache `name` (None when it can); checked before loading."""
    wanted = _DIFFUSERS_CONFIGS.get(name)
    if wanted is None:
        return None
    import diffusers
    import diffusers.hooks

    if not hasattr(diffusers.hooks, wanted):
        return (f"cache {name!r} needs diffusers' {wanted}, which the installed diffusers {diffusers.__version__} "
                "lacks; upgrade diffusers (pip install -U diffusers) or choose another cache")
    return None


_RUNS = {TEACACHE: _TeaCacheRun, MAGCACHE: _DiffusersCacheRun, FBCACHE: _DiffusersCacheRun,
         TAYLORSEER: _DiffusersCacheRun}


@contextmanager
def step_cache_run(model: nn.Module, settings: CacheSettings, steps: int,
                   forced_skips: frozenset[int] | None = None) -> Iterator[StepCacheRun]:
    """Attach `settings`' cache to `model` for one run of `steps` steps; always detached after,
    also on an error or a Cancel, so the next run starts from a clean model."""
    settings.check()
    run = _RUNS.get(settings.name, StepCacheRun)(model, settings, steps, forced_skips)
    run.attach()
    try:
        yield run
    finally:
        run.detach()
