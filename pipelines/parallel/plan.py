"""How the ranks of one job are used, and every refusal that can be said before a model loads.

Axes, combined by the number of processes N = cfg x windows x ulysses:
  cfg      2 ranks: the unconditional and the conditional pass of a step on different ranks, one
           all_gather of the velocity per step. Exact (each rank runs exactly the pass one process
           runs). Needs guidance > 1 and the two batch-1 passes (the default).
  windows  the windows of a long video's step over ranks (windows.py): each rank runs every window
           whose index is its own modulo the count, one all_reduce of the velocity sum per step. Exact.
           Needs a video of several windows (over 129 frames); not combined with ulysses.
  ulysses  one pass's tokens split over ranks, attention by heads (diffusers' ContextParallelConfig);
           needs heads % ulysses == 0 and image tokens % ulysses == 0.
`auto` takes CFG first (no attention change, about 2x), then windows (a video over 129 frames), then
Ulysses for the rest. Ranks are laid out cfg-major, then windows, ulysses innermost.
"""

from __future__ import annotations

from dataclasses import dataclass

PARALLEL_MODES = ("auto", "cfg", "ulysses", "cfg+ulysses", "windows")
GPU_CHOICES = ("1", "2", "4", "8", "all")  # ComfyUI's loader option (workers.py); here: no torch import


class ParallelSetupError(ValueError):
    """A setup of ranks that cannot run this job; the message says why and what to change."""


@dataclass(frozen=True)
class ParallelPlan:
    world: int
    cfg: int = 1
    ulysses: int = 1
    windows: int = 1

    @property
    def describe(self) -> str:
        parts = [f"{name} {n}" for name, n in (("cfg", self.cfg), ("windows", self.windows), ("ulysses", self.ulysses))
                 if n > 1]
        return f"{self.world} ranks: " + (" x ".join(parts) if parts else "one rank")

    def coordinates(self, rank: int) -> tuple[int, int]:
        """(cfg index, ulysses index) of `rank`: ranks are laid out cfg-major, ulysses innermost,
        so a Ulysses group is neighbouring ranks (on one node, the fast links)."""
        return rank // (self.windows * self.ulysses), rank % self.ulysses

    def window_index(self, rank: int) -> int:
        """Which share of a step's windows `rank` runs (0 .. windows-1)."""
        return (rank // self.ulysses) % self.windows


@dataclass(frozen=True)
class JobShape:
    """What the plan needs to know about the job and the model (all known before loading)."""

    uses_cfg: bool
    cfg_batched: bool
    heads: int
    image_tokens: int  # of one forward: (reference + one window's latent frames) x h x w after patching
    cache: str = "off"
    windows: int = 1  # the video's windows (sampling.py runs a video over 129 frames window by window)


def image_tokens(latent_frames: int, latent_height: int, latent_width: int, patch: int = 2, patch_t: int = 1,
                 reference: bool = True) -> int:
    frames = latent_frames // patch_t + (1 if reference else 0)
    return frames * (latent_height // patch) * (latent_width // patch)


def choose_plan(world: int, mode: str, job: JobShape) -> ParallelPlan:
    """The plan for `world` ranks, or ParallelSetupError naming the number that does not fit."""
    if mode not in PARALLEL_MODES:
        raise ParallelSetupError(f"parallel mode {mode!r} is not one of {', '.join(PARALLEL_MODES)}")
    if world < 1:
        raise ParallelSetupError(f"{world} processes: need at least one")
    if world == 1:
        return ParallelPlan(1)
    if mode == "windows" and job.windows < 2:
        raise ParallelSetupError("window parallel needs a video of several windows (over 129 frames); this one is "
                                 "one window: use --parallel cfg, ulysses or auto")
    cfg_possible = job.uses_cfg and not job.cfg_batched
    if mode in ("cfg", "cfg+ulysses") and not cfg_possible:
        why = "guidance_scale is 1 (one pass per step)" if not job.uses_cfg else "the CFG passes run batched"
        raise ParallelSetupError(f"CFG parallel needs two CFG passes per step, but {why}; use --parallel ulysses")
    if mode == "cfg" and world != 2:
        raise ParallelSetupError(f"CFG parallel uses exactly 2 processes, got {world}; use --parallel cfg+ulysses "
                                 "or auto for more")
    cfg = 2 if mode in ("cfg", "cfg+ulysses") or (mode == "auto" and cfg_possible and world % 2 == 0) else 1
    if world % cfg:
        raise ParallelSetupError(f"{world} processes do not divide into 2 CFG halves")
    windows, ulysses = 1, world // cfg
    if mode == "ulysses":
        cfg, ulysses = 1, world
    elif mode == "windows":
        cfg, windows, ulysses = 1, world, 1
    elif mode == "auto" and job.windows > 1 and ulysses > 1:
        windows, ulysses = ulysses, 1  # windows before Ulysses: exact, and no attention change
    if windows > job.windows:
        raise ParallelSetupError(f"window parallel over {windows} ranks, but the video has only {job.windows} windows "
                                 "(129 frames each); use fewer processes, or --parallel ulysses")
    if ulysses > 1:
        _check_ulysses(ulysses, job)
    return ParallelPlan(world, cfg=cfg, ulysses=ulysses, windows=windows)


def _check_ulysses(n: int, job: JobShape) -> None:
    if job.heads % n:
        raise ParallelSetupError(f"sequence parallel over {n} ranks needs the attention heads ({job.heads}) to divide "
                                 f"by {n}; use a number of processes whose Ulysses share divides {job.heads}")
    if job.image_tokens % n:
        raise ParallelSetupError(f"sequence parallel over {n} ranks needs the video tokens ({job.image_tokens}: "
                                 f"reference + latent frames x height/16 x width/16) to divide by {n}; change "
                                 "the size or the number of frames, or the number of processes")
    if job.cache == "fbcache":
        raise ParallelSetupError("cache fbcache decides from the whole first-block output, which sequence parallel "
                                 "splits over ranks; use the teacache, magcache or deepcache cache, or CFG parallel only")
