"""What a worker process does: join the workers' process group, then sample each job's share.

Rank 0 of the workers talks to the parent (ComfyUI's process) over a multiprocessing connection:
it receives the job, hands it to the other ranks (one broadcast), sends a line per step and the
final latents back, and turns the parent's "cancel" into the agreed cancel of the step loop
(session.py). Every rank has its own connection, so any rank's error reaches the parent with its
message before that rank exits. Messages are plain dicts and tensors (the two sides import the pack
under different names, so its classes cannot travel in a pickle).
"""

from __future__ import annotations

import os
import pickle
import traceback
from multiprocessing.connection import Client

import torch
import torch.distributed as dist

from ..generate import LocalGenerator, ModelFiles, RuntimeOptions
from ..sampling import DenoiseRequest
from ..windows import one_window
from ..text_encoders.encodings import TextConditioning
from . import group
from .plan import ParallelPlan
from .session import Cancelled, JobSession

SETUP_ENV = "HYC_WORKER_SETUP"  # JSON: rank, world, address, store, files, options


def send(conn, message: dict) -> None:
    """Plain pickle, not multiprocessing's: its tensor pickling shares memory through a helper that
    only processes multiprocessing started itself may use (these are started as new programs)."""
    conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def receive(conn) -> dict:
    """A message from the other side of an authenticated connection (our own process)."""
    return pickle.loads(conn.recv_bytes())


def serve() -> None:
    import json

    setup = json.loads(os.environ[SETUP_ENV])
    rank, world = int(setup["rank"]), int(setup["world"])
    conn = Client(setup["address"], authkey=bytes.fromhex(os.environ["HYC_WORKER_KEY"]))
    try:
        send(conn, {"kind": "hello", "rank": rank})
        _serve(conn, setup, rank, world)
    except BaseException as exc:  # noqa: BLE001 - said to the parent, then this rank ends
        if os.environ.get("HYC_DEBUG"):
            traceback.print_exc()
        try:
            send(conn, {"kind": "error", "rank": rank, "message": f"{type(exc).__name__}: {exc}"})
        except OSError:
            pass
        raise SystemExit(1)
    finally:
        group.stop()


def _serve(conn, setup: dict, rank: int, world: int) -> None:
    options = dict(setup["options"])
    device = options["device"]
    if device.startswith("cuda"):
        device = options["device"] = f"cuda:{rank}"
    backend = group.backend_for(device)
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    dist.init_process_group(backend, init_method=f"file://{setup['store']}", rank=rank, world_size=world)
    generator = LocalGenerator(ModelFiles(**setup["files"]), RuntimeOptions(**options))
    sessions: dict[tuple, JobSession] = {}
    enabled_degree = 1
    while True:
        # (the transformer stays on this rank's device between jobs: the GPU is the worker's alone)
        message = receive(conn) if rank == 0 else None
        box = [message]
        dist.broadcast_object_list(box, src=0, device=torch.device(device) if backend == "nccl" else None)
        message = box[0]
        if message["kind"] == "stop":
            return
        plan = ParallelPlan(*message["plan"])
        if plan.ulysses != enabled_degree and enabled_degree > 1:
            generator.unload()  # context parallelism cannot be re-planned on a model: load it again
        session = sessions.get(message["plan"])
        if session is None:
            mesh = group.build_mesh(plan, torch.device(device).type)
            session = sessions[message["plan"]] = JobSession(
                group.RankContext(rank, world, torch.device(device), backend, plan, mesh))
        request = request_from_message(message["request"])
        model = generator.transformer(lambda _text: None, one_window(tuple(request.latents.shape)),
                                      compile=message["compile"], cache=message["cache"])
        generator.apply_loras(model, tuple(message.get("loras", ())), lambda _text: None)  # the job's list, every rank
        enabled_degree = plan.ulysses
        on_step = (lambda i, n, _x: send(conn, {"kind": "step", "done": i, "total": n})) if rank == 0 else None
        try:
            latents = session.denoise(model, request, on_step=on_step,
                                      check_cancel=_cancel_check(conn) if rank == 0 else None)
        except Cancelled:
            continue
        except _ParentCancelled:
            send(conn, {"kind": "cancelled"})
            continue
        if rank == 0:
            send(conn, {"kind": "done", "latents": latents.cpu()})


class _ParentCancelled(Exception):
    pass


def _cancel_check(conn):
    def check() -> None:
        while conn.poll():
            if receive(conn).get("kind") == "cancel":
                raise _ParentCancelled()
    return check


def request_to_message(request: DenoiseRequest) -> dict:
    values = {k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in request.__dict__.items()}
    text = request.text
    values["text"] = {"states": text.states.cpu(), "mask": text.mask.cpu(), "pooled": text.pooled.cpu()}
    cache = values.get("cache")
    if cache is not None:
        values["cache"] = {"name": cache.name, "threshold": cache.threshold, "start": cache.start, "end": cache.end}
    if values.get("cache_forced_skips") is not None:
        values["cache_forced_skips"] = sorted(values["cache_forced_skips"])
    return values


def request_from_message(values: dict) -> DenoiseRequest:
    from ..diffusion_models.step_cache import CacheSettings

    values = dict(values)
    values["text"] = TextConditioning(**values["text"])
    if values.get("cache") is not None:
        values["cache"] = CacheSettings(**values["cache"])
    if values.get("cache_forced_skips") is not None:
        values["cache_forced_skips"] = frozenset(values["cache_forced_skips"])
    return DenoiseRequest(**values)
