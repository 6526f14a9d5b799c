"""Worker processes for ComfyUI: one job's sampling on several GPUs, from inside ComfyUI's process.

ComfyUI's process stays outside the process group (a dead or hung rank must never take ComfyUI
down with it): it starts N worker processes that form the group among themselves (FileStore in a
private folder, NCCL on GPUs, gloo on the CPU), keeps the text encoders and the VAE, and hands each
job's DenoiseRequest to worker rank 0 (worker_loop.py). The workers stay warm between jobs with
their transformer loaded, and are ended when the model is unloaded (the generator is dropped),
when ComfyUI exits, and when any worker dies (then the job fails with that worker's message).
Cancel is sent to rank 0, which stops every rank at the next step boundary.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import asdict
from multiprocessing.connection import Listener, wait
from pathlib import Path
from typing import Any, Callable

import torch

from ..generate import GenerationError, LocalGenerator, ModelFiles, RuntimeOptions
from .plan import GPU_CHOICES, ParallelPlan, ParallelSetupError
from .worker_loop import SETUP_ENV, receive, request_to_message, send

CPU_WORKERS_ENV = "HYC_CPU_WORKERS"  # tests and development: allow gloo workers on the CPU
START_TIMEOUT_S = 120.0
CANCEL_TIMEOUT_S = 600.0  # a step of a 720p job on a slow card; then the workers are ended


class WorkerError(RuntimeError):
    """A worker failed or died; the message is the worker's own."""


def worker_count(gpus: str, device: str) -> int:
    """How many worker processes `gpus` means here; refused (ParallelSetupError) where it cannot run."""
    if gpus not in GPU_CHOICES:
        raise ParallelSetupError(f"gpus {gpus!r} is not one of {', '.join(GPU_CHOICES)}")
    if gpus == "1":
        return 1
    if device == "cpu" or not torch.cuda.is_available():
        if os.environ.get(CPU_WORKERS_ENV) == "1":
            return (os.cpu_count() or 1) if gpus == "all" else int(gpus)
        raise ParallelSetupError(f"gpus {gpus}: ComfyUI runs on the CPU here, and several processes only pay off on "
                                 "several GPUs; set gpus to 1")
    count = torch.cuda.device_count()
    wanted = count if gpus == "all" else int(gpus)
    if count < 2:
        raise ParallelSetupError(f"gpus {gpus}: this machine has {count} GPU; splitting a job needs at least 2. "
                                 "Set gpus to 1")
    if wanted > count:
        raise ParallelSetupError(f"gpus {gpus}: this machine has only {count} GPUs; choose {count} or fewer, or 'all'")
    return wanted


class WorkerPool:
    """N warm worker processes (started on the first job)."""

    def __init__(self, world: int, files: ModelFiles, options: RuntimeOptions) -> None:
        self.world, self.files, self.options = world, files, options
        self.procs: list[subprocess.Popen] = []
        self.conns: list[Any] = []
        self.folder: str | None = None
        # Ends the workers when the generator is dropped (ComfyUI unloads the model) and at exit.
        self._finalizer = weakref.finalize(self, _end, self.procs, self.conns, [None])

    @property
    def running(self) -> bool:
        return bool(self.procs) and all(p.poll() is None for p in self.procs)

    def start(self) -> None:
        if self.running:
            return
        self.close()
        self.folder = tempfile.mkdtemp(prefix="hyc-workers-")
        os.chmod(self.folder, 0o700)
        key = secrets.token_bytes(32)
        address = os.path.join(self.folder, "parent.sock")
        listener = Listener(address, family="AF_UNIX", authkey=key)
        script = Path(__file__).with_name("worker_main.py")
        try:
            for rank in range(self.world):
                setup = {"rank": rank, "world": self.world, "address": address,
                         "store": os.path.join(self.folder, "store"), "files": asdict(self.files),
                         "options": asdict(self.options)}
                env = {**os.environ, SETUP_ENV: json.dumps(setup), "HYC_WORKER_KEY": key.hex()}
                self.procs.append(subprocess.Popen([sys.executable, str(script)], env=env, stdin=subprocess.DEVNULL))
            self.conns[:] = self._accept(listener)
        finally:
            listener.close()
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _end, self.procs, self.conns, [self.folder])

    def _accept(self, listener: Listener) -> list[Any]:
        """Each worker's connection, by rank; a worker that dies first fails the start, not hangs it."""
        accepted: dict[int, Any] = {}
        failure: list[BaseException] = []

        def accept_all() -> None:
            try:
                while len(accepted) < self.world:
                    conn = listener.accept()
                    hello = receive(conn)
                    accepted[int(hello["rank"])] = conn
            except (OSError, EOFError) as exc:
                failure.append(exc)

        thread = threading.Thread(target=accept_all, daemon=True)
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while thread.is_alive():
            thread.join(0.1)
            dead = [(rank, p.returncode) for rank, p in enumerate(self.procs) if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                self.close()
                why = f"worker rank {dead[0][0]} ended (exit code {dead[0][1]})" if dead else "no answer in time"
                raise WorkerError(f"gpus: the worker processes did not start: {why}")
        return [accepted[rank] for rank in range(self.world)]

    def sample(self, plan: ParallelPlan, request, compile: bool, cache: str, *, loras: tuple = (),
               on_step: Callable | None = None, check_cancel: Callable[[], None] | None = None) -> torch.Tensor:
        self.start()
        send(self.conns[0], {"kind": "sample", "plan": (plan.world, plan.cfg, plan.ulysses, plan.windows),
                            "request": request_to_message(request), "compile": compile, "cache": cache,
                            "loras": tuple(loras)})
        cancelled: BaseException | None = None
        cancel_deadline = None
        while True:
            for conn in wait(self.conns, timeout=0.2):
                try:
                    message = receive(conn)
                except (EOFError, OSError):
                    continue  # its process ended: seen below with its exit code
                kind = message.get("kind")
                if kind == "error":
                    raise self._failure(int(message["rank"]), message["message"])
                if kind == "step" and on_step is not None:
                    on_step(message["done"], message["total"], None)
                elif kind == "done":
                    return message["latents"]
                elif kind == "cancelled" and cancelled is not None:
                    raise cancelled
            dead = [(rank, p.returncode) for rank, p in enumerate(self.procs) if p.poll() is not None]
            if dead:
                self.close()
                raise WorkerError(f"worker rank {dead[0][0]} ended (exit code {dead[0][1]}) during the job")
            if cancelled is None and check_cancel is not None:
                try:
                    check_cancel()
                except BaseException as exc:  # ComfyUI's interrupt: every rank stops at the next step
                    cancelled, cancel_deadline = exc, time.monotonic() + CANCEL_TIMEOUT_S
                    send(self.conns[0], {"kind": "cancel"})
            if cancel_deadline is not None and time.monotonic() > cancel_deadline:
                self.close()
                raise cancelled

    def _failure(self, rank: int, message: str) -> WorkerError:
        """The job's error: a rank that died is the cause of the others' "connection closed" errors,
        so it is named first. Ends every worker."""
        time.sleep(0.5)  # a killed rank's exit code shows a moment after its peers notice
        dead = [(r, p.returncode) for r, p in enumerate(self.procs) if r != rank and p.poll() is not None]
        self.close()
        if dead:
            return WorkerError(f"worker rank {dead[0][0]} ended (exit code {dead[0][1]}) during the job "
                               f"(worker rank {rank}: {message})")
        return WorkerError(f"worker rank {rank}: {message}")

    def close(self) -> None:
        """End the workers (asked first, then terminated) and remove their folder."""
        _end(self.procs, self.conns, [self.folder])
        self.folder = None


def _end(procs: list, conns: list, folders: list) -> None:
    for conn in conns[:1]:
        try:
            send(conn, {"kind": "stop"})
        except (OSError, ValueError):
            pass
    deadline = time.monotonic() + 5.0
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for conn in conns:
        try:
            conn.close()
        except OSError:
            pass
    procs.clear()
    conns.clear()
    for folder in folders:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


class _TransformerHeader:
    """Stands for the transformer in ComfyUI's process, which never loads it (the workers do)."""

    def __init__(self, config: dict) -> None:
        from types import SimpleNamespace

        self.config = SimpleNamespace(**config)

    def to(self, *_args, **_kwargs) -> "_TransformerHeader":
        return self


class WorkerGenerator(LocalGenerator):
    """LocalGenerator whose sampling runs on worker processes (text encoders and VAE stay here)."""

    def __init__(self, files: ModelFiles, options: RuntimeOptions, world: int) -> None:
        super().__init__(files, options)
        self.world = world
        self.pool = WorkerPool(world, files, options)

    def transformer(self, status, latent_shape=None, compile: bool = False, cache: str = "deepcache", loras: tuple = ()):
        from ..diffusion_models.checkpoints import open_checkpoint
        from ..diffusion_models.loading import model_config_for

        return _TransformerHeader(model_config_for(open_checkpoint(self.files.transformer))[0])

    def apply_loras(self, model, loras: tuple, status) -> None:
        """The workers put the LoRAs on their own transformers (sent with each job); here is only its header."""

    def generate(self, job, *, status=None, progress=None, check_cancel=None, loras: tuple = (), on_frames=None):
        from .launch import plan_for_job

        try:
            plan = plan_for_job(self.files.transformer, job.planned()[0], "auto", self.world)
        except ParallelSetupError as exc:
            raise GenerationError(f"gpus {self.world}: {exc}") from None
        if status is not None:
            status(f"sampling on {self.world} worker processes: {plan.describe}")

        def sampler(_model, request, *, on_step=None, check_cancel=None, on_window=None):
            return self.pool.sample(plan, request, job.compile, job.cache.name, loras=tuple(loras), on_step=on_step,
                                    check_cancel=check_cancel)

        self.sampler = sampler
        return super().generate(job, status=status, progress=progress, check_cancel=check_cancel, loras=loras,
                                on_frames=on_frames)

    def unload(self) -> None:
        self.pool.close()
        super().unload()
