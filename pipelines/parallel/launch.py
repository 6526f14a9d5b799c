"""A local job on the ranks torchrun started: the plan (checked before anything loads), then the
leader generates as one process does while the followers sample their share of each step."""

from __future__ import annotations

from typing import Any, Callable

from ..job import Job
from ..sampling import latent_shape
from ..windows import one_window, window_count
from . import group
from .plan import JobShape, ParallelPlan, choose_plan, image_tokens
from .session import JobSession


def transformer_heads(path: str) -> int:
    """The checkpoint's attention heads, from its header and config (no weights read)."""
    from ..diffusion_models.checkpoints import open_checkpoint
    from ..diffusion_models.loading import model_config_for

    config, _ = model_config_for(open_checkpoint(path))
    return int(config.get("num_attention_heads", 24))


def plan_for_job(transformer: str, job: Job, mode: str, world: int) -> ParallelPlan:
    """How `world` ranks run `job`; ParallelSetupError (its message for people) when they cannot."""
    latents = latent_shape(job.num_frames, job.height, job.width)
    shape = JobShape(uses_cfg=job.uses_cfg, cfg_batched=False, heads=transformer_heads(transformer),
                     image_tokens=image_tokens(*one_window(latents)[2:]),  # a forward sees one window
                     cache=job.cache.name, windows=window_count(latents[2]))
    return choose_plan(world, mode, shape)


def run_job(generator: Any, job: Job, plan: ParallelPlan, *, lead: Callable[[Any], Any],
            status: Callable[[str], None], loras: tuple = ()) -> Any:
    """Run `job` on this rank (call on every rank). Rank 0 runs `lead(generator)` (the generator then
    samples on every rank; lead generates and writes the video, e.g. streaming it into an mp4) and
    returns its GenerationResult; the other ranks return None. Every rank puts the same `loras` on its
    transformer."""
    ctx = group.start(plan, generator.options.device)
    session = JobSession(ctx)
    try:
        if ctx.is_leader:
            status(f"parallel: {plan.describe} ({ctx.backend})")
            generator.sampler = session.sample
            return lead(generator)
        shape = one_window(latent_shape(job.num_frames, job.height, job.width))  # offload 'auto' judges a window
        model = generator.transformer(lambda _text: None, shape, compile=job.compile, cache=job.cache.name)
        generator.apply_loras(model, tuple(loras), lambda _text: None)
        session.serve(lambda: model)
        return None
    finally:
        if ctx.is_leader:
            session.close()
        group.stop()
