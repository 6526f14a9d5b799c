"""Seconds per step, scaling and bytes exchanged per step when one job runs on 1, 2, 4 (8) processes.

Each world size is started as its own set of processes (torch.multiprocessing, a FileStore
rendezvous in a temporary folder): NCCL with one GPU per rank, or gloo on the CPU. What runs is
pipelines/sampling.denoise through the job session of pipelines/parallel/ (the same code the CLI's
torchrun path and ComfyUI's workers run), on a synthetic transformer (made-up weights, the
released shapes on GPUs; a small one with 8 heads for --tiny, so Ulysses can split 4 ways).

Bytes are counted per rank per step: CFG's all_gather of the velocity, Ulysses' all-to-alls inside
attention (q, k, v and the output) and the gather of the image tokens before the output layers.

    python benchmarks/parallel_speed.py --tiny --device cpu                    # gloo, seconds
    python benchmarks/parallel_speed.py --ranks 1,2,4,8 --size 1280*720 --frames 129 --steps 4

On the CPU the ranks share the machine's cores: the scaling column says what the communication
costs, not what GPUs would gain. Nothing was measured on GPUs when this was written.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import torch

try:
    from . import _pack  # imported as hunyuan_custom.benchmarks.<name>
except ImportError:
    import _pack  # run as a script: benchmarks/ is sys.path[0]

# --tiny: 8 heads (Ulysses over 2, 4, 8 ranks), 128 wide, 2 + 4 blocks
TINY_PARALLEL = dict(num_attention_heads=8, attention_head_dim=16, rope_axes_dim=(4, 6, 6), num_layers=2,
                     num_single_layers=4, text_embed_dim=32, pooled_projection_dim=24)


def _model(tiny: bool, dtype: torch.dtype):
    from hunyuan_custom.benchmarks import synthetic_models, vram_estimate
    from hunyuan_custom.pipelines.diffusion_models.keys import FULL_SIZE_CONFIG

    config = {**FULL_SIZE_CONFIG, **(TINY_PARALLEL if tiny else {})}
    model = vram_estimate.build_shape_only_transformer(config, dtype, False)
    return synthetic_models.fill_synthetic(model).eval().requires_grad_(False)


class _Bytes:
    """Counts what this rank exchanges, by wrapping the two diffusers functions that move tokens."""

    def __init__(self) -> None:
        import diffusers.hooks.context_parallel as cp
        import diffusers.models.attention_dispatch as dispatch
        import torch.distributed as dist

        self.all_to_all = self.gather = 0
        all_to_all, unshard = dispatch._all_to_all_single, cp.EquipartitionSharder.unshard.__func__

        def counted_all_to_all(x, group):
            n = dist.get_world_size(group)
            self.all_to_all += x.numel() * x.element_size() * (n - 1) // n
            return all_to_all(x, group)

        def counted_unshard(cls, tensor, dim, mesh):
            self.gather += tensor.numel() * tensor.element_size() * (mesh.size() - 1)
            return unshard(cls, tensor, dim, mesh)

        dispatch._all_to_all_single = counted_all_to_all
        cp.EquipartitionSharder.unshard = classmethod(counted_unshard)


def _rank(rank: int, world: int, settings: dict, store: str, out: str) -> None:
    _pack.import_pack()
    import torch.distributed as dist

    from hunyuan_custom.benchmarks import vram_estimate
    from hunyuan_custom.pipelines import schema
    from hunyuan_custom.pipelines.parallel import group
    from hunyuan_custom.pipelines.parallel.plan import JobShape, choose_plan, image_tokens
    from hunyuan_custom.pipelines.parallel.session import JobSession
    from hunyuan_custom.pipelines.sampling import DenoiseRequest

    torch.set_num_threads(settings["threads"])
    device = settings["device"]
    if device == "cuda":
        device = f"cuda:{rank}"
    dtype = getattr(torch, settings["dtype"])
    model = _model(settings["tiny"], dtype).to(device)
    width, height = schema.parse_size(settings["size"])
    shape, latents, ref, text = vram_estimate.transformer_inputs(model.config, width, height, settings["frames"],
                                                                 settings["text_tokens"], dtype, torch.device(device))
    request = DenoiseRequest(latents=latents, ref_latents=ref, text=text, steps=settings["steps"], flow_shift=13.0,
                             guidance_scale=7.5, deep_cache=False)
    plan = choose_plan(world, settings["parallel"] if world > 1 else "auto", JobShape(
        uses_cfg=True, cfg_batched=False, heads=model.config.num_attention_heads,
        image_tokens=image_tokens(*shape[2:]), cache="off"))
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "RANK": str(rank), "WORLD_SIZE": str(world)})
    ctx = group.start(plan, device, rank=rank, world=world, init_method=f"file://{store}")
    counter = _Bytes()
    session = JobSession(ctx)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    stamps = []

    def on_step(_done, _total, _latents) -> None:
        sync()
        stamps.append(time.perf_counter())

    sync()
    stamps.append(time.perf_counter())
    session.denoise(model, request, on_step=on_step)
    steady = [b - a for a, b in zip(stamps[1:], stamps[2:])] or [stamps[1] - stamps[0]]  # step 1 warms up
    cfg_bytes = session.cfg_split.bytes_received if session.cfg_split else 0
    row = {"plan": plan.describe, "s_per_step": sum(steady) / len(steady),
           "cfg_bytes": cfg_bytes / settings["steps"], "all_to_all_bytes": counter.all_to_all / settings["steps"],
           "gather_bytes": counter.gather / settings["steps"]}
    rows = [None] * world
    dist.all_gather_object(rows, row)
    if rank == 0:
        with open(out, "w") as f:
            json.dump(rows, f)
    group.stop()


def run_world(world: int, settings: dict) -> list[dict]:
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="hyc-bench-") as folder:
        out = os.path.join(folder, "rows.json")
        if world == 1:
            settings = {**settings}
        mp.start_processes(_rank, args=(world, settings, os.path.join(folder, "store"), out), nprocs=world,
                           start_method="spawn")
        with open(out) as f:
            return json.load(f)


def mib(n: float) -> str:
    return f"{n / 2**20:.3f}"


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", default="1,2,4", help="comma list of process counts (8 needs 8 GPUs, or patience)")
    parser.add_argument("--parallel", default="auto", choices=("auto", "cfg", "ulysses", "cfg+ulysses"))
    parser.add_argument("--size", default=None, help="width*height (default 1280*720; 128*96 with --tiny)")
    parser.add_argument("--frames", type=int, default=None, help="video frames (default 129; 17 with --tiny)")
    parser.add_argument("--steps", type=int, default=4, help="steps per run (the first is left out of s/step)")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--dtype", choices=("bfloat16", "float32"), default=None)
    parser.add_argument("--tiny", action="store_true", help="a small transformer with 8 heads (the CPU setting)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per rank on the CPU")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA GPU; use --device cpu --tiny (gloo)")
    settings = {"size": args.size or ("128*96" if args.tiny else "1280*720"),
                "frames": args.frames or (17 if args.tiny else 129), "steps": max(2, args.steps),
                "device": args.device, "dtype": args.dtype or ("bfloat16" if args.device == "cuda" else "float32"),
                "tiny": args.tiny, "parallel": args.parallel, "threads": args.threads,
                "text_tokens": 40 if args.tiny else 831}
    card = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU ({os.cpu_count()} cores), gloo"
    print(f"HunyuanCustom on several processes: {settings['size']} x {settings['frames']} frames, "
          f"{settings['steps']} steps (2 CFG passes each), {settings['dtype']}, on {card}"
          + (" (TINY transformer)" if args.tiny else ""), flush=True)
    table = [("ranks", "split", "s/step", "x 1 rank", "MiB/step/rank", "cfg gather", "all-to-all", "token gather")]
    results, base = [], None
    for world in [int(n) for n in args.ranks.split(",")]:
        try:
            rows = run_world(world, settings)
        except Exception as exc:  # one world size that cannot run must not hide the others
            table.append((str(world), f"FAILED: {str(exc).strip().splitlines()[-1][:90]}", "", "", "", "", "", ""))
            continue
        seconds = max(r["s_per_step"] for r in rows)  # the slowest rank paces the step
        base = base or (seconds if world == 1 else None)
        busiest = max(rows, key=lambda r: r["cfg_bytes"] + r["all_to_all_bytes"] + r["gather_bytes"])
        total = busiest["cfg_bytes"] + busiest["all_to_all_bytes"] + busiest["gather_bytes"]
        table.append((str(world), rows[0]["plan"].split(": ", 1)[1], f"{seconds:.3f}",
                      f"{base / seconds:.2f}" if base else "n/a", mib(total), mib(busiest["cfg_bytes"]),
                      mib(busiest["all_to_all_bytes"]), mib(busiest["gather_bytes"])))
        results.append({"world": world, "ranks": rows})
        print(f"  {world} ranks: {seconds:.3f} s/step", flush=True)
    widths = [max(len(str(line[i])) for line in table) for i in range(len(table[0]))]
    print("\n" + "\n".join("  ".join(str(v).ljust(w) for v, w in zip(line, widths)).rstrip() for line in table))
    print("\ns/step: the slowest rank's, steps after the first; MiB/step/rank: what the busiest rank sends or "
          "receives per step (the all-to-alls counted as sent, the gathers as received).")
    return results


if __name__ == "__main__":
    _pack.import_pack()
    main()
