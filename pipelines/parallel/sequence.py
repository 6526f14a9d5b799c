"""Ulysses sequence parallel: diffusers' context parallelism on our transformer.

The transformer's `_cp_plan` says where its tokens are split and gathered (diffusion_models/
transformer.py); diffusers hooks those points and runs each attention as Ulysses (an all-to-all of
q/k/v from token shares to head shares, and back) inside dispatch_attention_fn. This module only
builds the ContextParallelConfig on the job's mesh (its "ring" x "ulysses" part: with CFG parallel
beside it, each CFG half has its own Ulysses group) and works around two diffusers bugs that bite on
the CPU.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Iterator

import torch

from .group import RankContext

# diffusers releases with the two CPU bugs below (checked: 0.42.1). Newer releases are left alone.
_CPU_QUIRK_VERSIONS = ("0.42.",)


def _has_cpu_quirks() -> bool:
    import diffusers

    return diffusers.__version__.startswith(_CPU_QUIRK_VERSIONS)


@contextlib.contextmanager
def _diffusers_cpu_quirks(device: torch.device) -> Iterator[None]:
    """diffusers 0.42's `_resolve_parallel_config` computes `rank % torch.accelerator.device_count()`,
    a ZeroDivisionError without an accelerator; and a split hook warns through `logger.warning_once`,
    which its logger does not have. Only on the CPU and only for those versions: the device count
    reads 1 while parallelism is enabled (the device it picks is not used: CPU tensors stay on the
    CPU), and the logger gets a plain warning under that name."""
    if device.type != "cpu" or not _has_cpu_quirks():
        yield
        return
    from diffusers.hooks import context_parallel

    logger = context_parallel.logger
    if not hasattr(logger, "warning_once"):
        logger.warning_once = logger.warning
    original = torch.accelerator.device_count
    if original() == 0:
        torch.accelerator.device_count = lambda: 1
    try:
        yield
    finally:
        torch.accelerator.device_count = original


def enable_sequence_parallel(model: torch.nn.Module, ctx: RankContext) -> None:
    """Turn on Ulysses over this rank's Ulysses group (once per model)."""
    if getattr(model, "_parallel_config", None) is not None:
        return
    from diffusers import ContextParallelConfig

    from diffusers.utils import logging as diffusers_logging

    config = ContextParallelConfig(ulysses_degree=ctx.plan.ulysses, mesh=ctx.mesh)
    level = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # its "experimental feature" notice, once per rank and job
    try:
        with _diffusers_cpu_quirks(ctx.device):
            model.enable_parallelism(config=config)
    finally:
        diffusers_logging.set_verbosity(level)
    # diffusers' gather calls a torch function torch 2.13 marks deprecated: a warning per rank, not ours to fix
    warnings.filterwarnings("ignore", message=r".*all_gather_tensor.* is deprecated", category=FutureWarning)
