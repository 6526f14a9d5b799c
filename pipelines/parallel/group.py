"""The process group of a job: torchrun's environment, NCCL on GPUs or gloo on CPU, the device mesh.

Everything here is torch.distributed's own (init_process_group, DeviceMesh, collectives); what this
module adds are the refusals a person can act on, said once, before any model loads.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from .plan import ParallelPlan, ParallelSetupError

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
DEFAULT_TIMEOUT = timedelta(minutes=30)  # a 720p step on a slow GPU takes minutes; a hang still ends


def launched_by_torchrun() -> bool:
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE")) and int(os.environ["WORLD_SIZE"]) > 1


def world_size_from_env() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def backend_for(device: str) -> str:
    """NCCL for CUDA devices, gloo for the CPU; refused when CUDA is asked for and absent."""
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ParallelSetupError("torchrun with --device cuda needs CUDA GPUs for NCCL, but torch sees none; "
                                     "use --device cpu (gloo) or a machine with GPUs")
        if not dist.is_nccl_available():
            raise ParallelSetupError("this torch build has no NCCL; several GPUs need a CUDA build of torch")
        return "nccl"
    return "gloo"


@dataclass
class RankContext:
    """This process's place in the job."""

    rank: int
    world: int
    device: torch.device
    backend: str
    plan: ParallelPlan
    mesh: object | None = None  # DeviceMesh (build_mesh) when ulysses > 1, or cfg and windows both > 1

    @property
    def is_leader(self) -> bool:
        return self.rank == 0

    def cfg_group(self):
        """The ranks that share this rank's Ulysses position (they run the other CFG pass)."""
        if self.mesh is not None:
            return self.mesh["cfg"].get_group()
        return dist.group.WORLD

    def window_group(self):
        """The ranks that share this rank's CFG pass (they run the other windows of a step)."""
        if self.mesh is not None and self.plan.cfg > 1:
            return self.mesh["windows"].get_group()
        return dist.group.WORLD

    @property
    def cfg_index(self) -> int:
        return self.plan.coordinates(self.rank)[0]

    @property
    def window_index(self) -> int:
        return self.plan.window_index(self.rank)


def build_mesh(plan: ParallelPlan, device_type: str):
    """The device mesh of a plan with more than one kind of group (None when WORLD is the only one):
    ("cfg", "ring", "ulysses") for sequence parallel, ("cfg", "windows") for CFG x window parallel."""
    from torch.distributed.device_mesh import init_device_mesh

    if plan.ulysses > 1:
        return init_device_mesh(device_type, (plan.cfg, 1, plan.ulysses), mesh_dim_names=("cfg", "ring", "ulysses"))
    if plan.windows > 1 and plan.cfg > 1:
        return init_device_mesh(device_type, (plan.cfg, plan.windows), mesh_dim_names=("cfg", "windows"))
    return None


def local_device(device: str, local_rank: int) -> torch.device:
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def start(plan: ParallelPlan, device: str, rank: int | None = None, world: int | None = None,
          init_method: str | None = None, timeout: timedelta = DEFAULT_TIMEOUT) -> RankContext:
    """Join the job's process group (torchrun's env:// unless `init_method` is given), check the
    GPUs are of one kind, build the mesh. Call on every rank."""
    backend = backend_for(device)
    rank = int(os.environ.get("RANK", "0")) if rank is None else rank
    world = world_size_from_env() if world is None else world
    if world != plan.world:
        raise ParallelSetupError(f"the plan is for {plan.world} processes but {world} were started")
    dev = local_device(device, int(os.environ.get("LOCAL_RANK", rank)))
    if not dist.is_initialized():
        kwargs = {"device_id": dev} if backend == "nccl" else {}
        dist.init_process_group(backend, init_method=init_method or "env://", rank=rank, world_size=world,
                                timeout=timeout, **kwargs)
    if backend == "nccl":
        check_one_gpu_kind()
    mesh = build_mesh(plan, dev.type)
    if rank != 0:
        quiet_follower()
    return RankContext(rank, world, dev, backend, plan, mesh)


def check_one_gpu_kind() -> None:
    """All ranks' GPUs must be one model: the slowest card paces every step, and mixed memory sizes
    make the per-GPU estimate wrong. Collective: every rank raises the same message."""
    name = torch.cuda.get_device_name()
    names: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(names, name)
    kinds = sorted(set(names))
    if len(kinds) > 1:
        raise ParallelSetupError(f"the processes run on different GPU kinds ({', '.join(kinds)}); one job needs one "
                                 "kind (CUDA_VISIBLE_DEVICES picks the GPUs)")


def quiet_follower() -> None:
    """Only rank 0 speaks: the others log errors only (their progress is rank 0's)."""
    logging.getLogger().setLevel(logging.ERROR)
    for name in ("hunyuan_custom", "diffusers", "transformers", "torch"):
        logging.getLogger(name).setLevel(logging.ERROR)


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
