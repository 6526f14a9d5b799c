"""One job over the ranks: the leader (rank 0) prepares everything, the followers only sample.

Rank 0 encodes the prompt, encodes the reference (and the editing video, the audio) with the VAE,
draws the noise, and hands the finished DenoiseRequest to every rank with one broadcast; then all
ranks run the same sampling loop, each doing its share of every step (cfg.py, sequence.py); rank 0
decodes and writes. The followers wait for the next request until the leader says stop, so a worker
stays warm between jobs.

Cancel: every step starts with one all_reduce of the leader's cancel flag, so all ranks stop at the
same step boundary (a rank alone in a collective would hang the others).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.distributed as dist

from ..sampling import DenoiseRequest, denoise
from .cfg import CfgSplit
from .windows import WindowSplit
from .group import RankContext

SAMPLE, STOP = "sample", "stop"


class Cancelled(RuntimeError):
    """The leader cancelled the job; followers go back to waiting."""


class JobSession:
    def __init__(self, ctx: RankContext) -> None:
        self.ctx = ctx
        self.cfg_split = CfgSplit(ctx.cfg_index, ctx.cfg_group()) if ctx.plan.cfg > 1 else None
        self.window_split = (WindowSplit(ctx.window_index, ctx.plan.windows, ctx.window_group())
                             if ctx.plan.windows > 1 else None)
        self.stopped = False
        # False once a rank failed inside the loop: the others may sit in a collective, so no more
        # messages are sent (torchrun, or the worker manager, ends them).
        self.in_step = False

    # -- the leader -----------------------------------------------------------------------------
    def sample(self, model: torch.nn.Module, request: DenoiseRequest, *, on_step=None,
               check_cancel: Callable[[], None] | None = None, on_window=None) -> torch.Tensor:
        """Rank 0's sampler (LocalGenerator.sampler): send the request, then sample with the others."""
        self._broadcast((SAMPLE, _to_cpu(request)))
        return self.denoise(model, request, on_step=on_step, check_cancel=check_cancel, on_window=on_window)

    def close(self) -> None:
        """Tell the followers the job run is over (called once by the leader; not after a failure
        inside a step, where the others may still wait in that step's collective)."""
        if not self.stopped and not self.in_step:
            self.stopped = True
            self._broadcast((STOP, None))

    # -- the followers --------------------------------------------------------------------------
    def serve(self, model_for: Callable[[], torch.nn.Module]) -> int:
        """Sample every request the leader sends until it says stop; returns the jobs run."""
        jobs = 0
        while True:
            command, request = self._broadcast(None)
            if command == STOP:
                return jobs
            try:
                self.denoise(model_for(), request)
            except Cancelled:
                pass
            jobs += 1

    # -- every rank -----------------------------------------------------------------------------
    def denoise(self, model: torch.nn.Module, request: DenoiseRequest, *, on_step=None,
                check_cancel: Callable[[], None] | None = None, on_window=None) -> torch.Tensor:
        if self.ctx.plan.ulysses > 1:
            from .sequence import enable_sequence_parallel

            enable_sequence_parallel(model, self.ctx)
        self.in_step = True
        with torch.no_grad():
            latents = denoise(model, request, on_step=on_step, check_cancel=self._agreed_cancel(check_cancel),
                              on_window=on_window, parallel=self.cfg_split, window_split=self.window_split,
                              cancel_in_blocks=False)  # the agreed check is a collective: per window only
        self.in_step = False
        return latents

    def _agreed_cancel(self, local: Callable[[], None] | None) -> Callable[[], None]:
        def check() -> None:
            error: BaseException | None = None
            flag = torch.zeros(1, dtype=torch.int32, device=self._comm_device)
            if local is not None:
                try:
                    local()
                except BaseException as exc:  # Cancel (ComfyUI's InterruptProcessingException, Ctrl-C)
                    error, flag[0] = exc, 1
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            if int(flag.item()):
                self.in_step = False  # every rank stops here, together
                raise error if error is not None else Cancelled("cancelled by rank 0")
        return check

    @property
    def _comm_device(self) -> torch.device:
        return self.ctx.device if self.ctx.backend == "nccl" else torch.device("cpu")

    def _broadcast(self, message: Any) -> Any:
        box = [message]
        dist.broadcast_object_list(box, src=0, device=self._comm_device if self.ctx.backend == "nccl" else None)
        return box[0]


def _to_cpu(request: DenoiseRequest) -> DenoiseRequest:
    """The request as it travels: tensors on the CPU (each rank moves them to its own device)."""
    values = {k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in request.__dict__.items()}
    values["text"] = request.text.to("cpu")
    return DenoiseRequest(**values)
