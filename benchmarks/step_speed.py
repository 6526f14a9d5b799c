"""Sampling speed of every step cache, with compiled blocks on and off, for each attention backend.

What runs is pipelines/sampling.denoise, as generate.py runs it (two batch-1 CFG passes per step,
the step cache attached for the run), on a transformer with the released shapes and made-up values
(benchmarks/synthetic_models.py, as benchmarks/gpu_memory.py builds it; no 40 GB download).

Each cache runs twice:
  adaptive  at its recommended threshold: what it skips depends on the weights, and random weights
            are not HunyuanCustom's, so on synthetic weights this row says little about real runs;
  forced    at a fixed skip pattern (--forced-every: every 2nd step after the first 20 %, never the
            last), so the speed depends only on the kernels and each cache's own overhead (TaylorSeer's
            pattern is its interval: 2; deepcache's is upstream's, at 30 steps only).
The table gives seconds per step and for the whole run, the ratio to `off`, the blocks that ran
(counted, of steps x 2 passes x 60), the bf16 TFLOP/s the computed blocks reached (an analytic count
of their matmuls and attention; % of the card's peak when known) and the largest difference of the
final latents from `off`'s (same attention, same compile setting). Nothing is asserted.

On a GPU (full-size synthetic weights; minutes to fill them, then the runs):

    python benchmarks/step_speed.py                                   # 720p x 129, 30 steps: hours
    python benchmarks/step_speed.py --size 960*544 --frames 33 --steps 10 --caches off,teacache,fbcache
    python benchmarks/step_speed.py --attention all --compile off,on --fp8 keep

A 720p x 129 step is tens of seconds on an H100, so start with the second line. `--compile on` compiles
the blocks during the first step of the first run (minutes), not counted in "s/step" (the first step
of every run is left out of it; "run s" counts every step). Without a GPU:

    python benchmarks/step_speed.py --tiny --device cpu               # tiny models, seconds
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import time
from dataclasses import dataclass, field

import torch
from torch import nn

try:
    from . import _pack  # imported as hunyuan_custom.benchmarks.<name> (the tests)
except ImportError:
    import _pack  # run as a script: benchmarks/ is sys.path[0]

ATTENTION_BACKENDS = ("native", "flash", "sage", "_native_cudnn", "_native_flash")
# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) by a part of the device name, from the vendor's
# datasheets; --peak-tflops overrides.
CARD_PEAKS = (("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.4), ("H200", 989.4), ("GH200", 989.4),
              ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.1), ("L40", 181.0), ("RTX 4090", 165.2),
              ("RTX 5090", 209.5), ("A6000", 154.8), ("L4", 121.0))


@dataclass
class Row:
    attention: str
    compiled: bool
    cache: str
    mode: str  # "adaptive" | "forced" | "" (off, deepcache)
    setting: str
    steps: int
    seconds: list[float] = field(default_factory=list)  # per step
    blocks: int = 0
    attention_runs: int = 0
    flops: float = 0.0
    max_diff: float | None = None
    error: str = ""

    @property
    def run_seconds(self) -> float:
        return sum(self.seconds)

    @property
    def step_seconds(self) -> float:
        steady = self.seconds[1:] or self.seconds  # the first step pays for compiling and warm-up
        return sum(steady) / max(1, len(steady))


def block_flops(config, tokens: int) -> float:
    """Matmul + attention FLOPs of one double or single block over `tokens` tokens (image + text).

    Both kinds hold 12 d^2 weights per token stream (double: QKV 3d^2 + out d^2 + MLP 8d^2 per stream;
    single: 7d^2 in + 5d^2 out) and attend over all tokens: 2 * 12 d^2 * L + 4 L^2 d."""
    d = config.num_attention_heads * config.attention_head_dim
    return 2 * 12 * d * d * tokens + 4 * tokens * tokens * d


def card_peak(device: torch.device, override: float | None) -> tuple[float | None, str]:
    if override:
        return override, f"{override:g} TFLOP/s (given)"
    if device.type != "cuda":
        return None, "no peak for a CPU"
    name = torch.cuda.get_device_name(device)
    for part, peak in CARD_PEAKS:
        if part in name:
            return peak, f"{name}: {peak:g} TFLOP/s dense bf16 (datasheet)"
    return None, f"{name}: peak unknown (pass --peak-tflops)"


def installed_backends(device: torch.device) -> list[str]:
    """Attention backends diffusers can use here (their packages importable, CUDA-only ones on CUDA)."""
    import importlib.util

    found = ["native"]
    if device.type == "cuda":
        if importlib.util.find_spec("flash_attn"):
            found.append("flash")
        if importlib.util.find_spec("sageattention"):
            found.append("sage")
        found += ["_native_cudnn", "_native_flash"]
    return found


def forced_pattern(steps: int, every: int) -> frozenset[int]:
    """Every `every`-th step skipped after the first 20 % (MagCache's rule, so all caches can follow),
    never the last."""
    start = math.ceil(0.2 * steps)
    return frozenset(i for i in range(start, steps - 1) if (i - start) % every == every - 1)


def build_model(args: argparse.Namespace, dtype: torch.dtype, compiled: bool, device: torch.device) -> nn.Module:
    """The synthetic transformer, compiled (before any hook, as generate.py does) and placed."""
    from hunyuan_custom.pipelines.diffusion_models.compile_blocks import compile_blocks
    from hunyuan_custom.pipelines.offload_policy import stream_transformer_blocks

    from .synthetic_models import synthetic_transformer

    started = time.perf_counter()
    model = synthetic_transformer(args.tiny, dtype, args.fp8 == "keep")
    if compiled:
        compile_blocks(model, **({"backend": args.compile_backend} if args.compile_backend else {}))
    if args.offload == "group":
        stream_transformer_blocks(model, device)
    else:
        model.to(device)
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters, offload {args.offload}, "
          f"compile {'on' if compiled else 'off'}, ready in {time.perf_counter() - started:.0f} s", flush=True)
    return model


def run_one(model: nn.Module, row: Row, request, device: torch.device, flops_per_block: float) -> torch.Tensor | None:
    from hunyuan_custom.pipelines import sampling
    from hunyuan_custom.pipelines.diffusion_models.block_counter import counting_block_evaluations

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    last = [time.perf_counter()]

    def on_step(done: int, total: int, _latents) -> None:
        sync()
        now = time.perf_counter()
        row.seconds.append(now - last[0])
        last[0] = now

    try:
        with torch.no_grad(), counting_block_evaluations(model) as counts:
            sync()
            last[0] = time.perf_counter()
            latents = sampling.denoise(model, request, on_step=on_step)
    except Exception as exc:  # one failing backend or cache must not hide the other rows
        row.error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ''}"
        print(f"  {row.cache} {row.mode}: FAILED {row.error}", flush=True)
        return None
    row.blocks, row.attention_runs = counts.blocks, counts.attention
    row.flops = counts.blocks * flops_per_block
    print(f"  {row.attention:>8} compile {'on ' if row.compiled else 'off'} {row.cache:>10} {row.mode:>8}: "
          f"{row.run_seconds:.2f} s, {row.blocks} blocks", flush=True)
    return latents.float().cpu()


def format_table(rows: list[Row], peak: float | None, per_run_blocks: int) -> list[str]:
    header = ("attention", "compile", "cache", "mode", "setting", "s/step", "run s", "x off", "blocks run",
              "TFLOP/s", "% peak", "max |d| vs off")
    table = [header]
    offs = {(r.attention, r.compiled): r for r in rows if r.cache == "off" and not r.error}
    for r in rows:
        if r.error:
            table.append((r.attention, "on" if r.compiled else "off", r.cache, r.mode, r.setting, "FAILED", r.error,
                          "", "", "", "", ""))
            continue
        off = offs.get((r.attention, r.compiled))
        ratio = f"{off.run_seconds / r.run_seconds:.2f}" if off and r.run_seconds else "n/a"
        tflops = r.flops / r.run_seconds / 1e12 if r.run_seconds else 0.0
        table.append((r.attention, "on" if r.compiled else "off", r.cache, r.mode, r.setting,
                      f"{r.step_seconds:.3f}", f"{r.run_seconds:.2f}", ratio, f"{r.blocks}/{per_run_blocks}",
                      f"{tflops:.3g}", f"{100 * tflops / peak:.0f}%" if peak else "n/a",
                      "n/a" if r.max_diff is None else f"{r.max_diff:.3g}"))
    widths = [max(len(str(line[i])) for line in table) for i in range(len(header))]
    return ["  ".join(str(v).ljust(w) for v, w in zip(line, widths)).rstrip() for line in table]


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default=None, help="width*height (default 1280*720; 64*48 with --tiny)")
    parser.add_argument("--frames", type=int, default=None, help="video frames (default 129; 9 with --tiny)")
    parser.add_argument("--steps", type=int, default=30, help="denoising steps per run (deepcache acts at 30 only)")
    parser.add_argument("--caches", default="all", help="comma list of cache names, or all")
    parser.add_argument("--modes", default="adaptive,forced", help="adaptive, forced or both (comma list)")
    parser.add_argument("--forced-every", type=int, default=2, metavar="N",
                        help="forced pattern: every Nth step skipped after the first 20%% (default 2)")
    parser.add_argument("--attention", default="native",
                        help="comma list of diffusers attention backends, or all (those installed here)")
    parser.add_argument("--compile", default=None, help="off, on or off,on (default: off,on on a GPU, off on a CPU)")
    parser.add_argument("--compile-backend", default=None, help=argparse.SUPPRESS)  # tests: dynamo's "eager"
    parser.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default=None,
                        help="default bfloat16 on a GPU, float32 on a CPU")
    parser.add_argument("--offload", choices=("model", "group"), default="model",
                        help="model: the transformer whole on the device; group: its blocks streamed from CPU RAM")
    parser.add_argument("--fp8", choices=("dequantize", "keep"), default="dequantize",
                        help="keep: block Linears stored as float8 with a per-layer scale (fp8_mode=keep)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the card's dense bf16 peak, if not known")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny models at 64*48 x 9 frames (the CPU setting)")
    args = parser.parse_args(argv)

    _pack.import_pack()
    from hunyuan_custom.pipelines import schema
    from hunyuan_custom.pipelines.diffusion_models.compile_blocks import compile_unavailable_reason
    from hunyuan_custom.pipelines.diffusion_models.deep_cache import UPSTREAM_REUSE_STEPS
    from hunyuan_custom.pipelines.diffusion_models.step_cache import CacheSettings
    from hunyuan_custom.pipelines.sampling import DenoiseRequest

    from . import vram_estimate

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA GPU here; use --device cpu (with --tiny)")
    caches = list(schema.CACHE_NAMES) if args.caches == "all" else [c.strip() for c in args.caches.split(",")]
    unknown = [c for c in caches if c not in schema.CACHE_NAMES]
    if unknown:
        parser.error(f"--caches: unknown {unknown}; choose from {', '.join(schema.CACHE_NAMES)}")
    if "off" not in caches:
        caches.insert(0, "off")  # the reference for the ratio and the differences
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - {"adaptive", "forced"}:
        parser.error("--modes: adaptive, forced or adaptive,forced")
    backends = installed_backends(device) if args.attention == "all" else [a.strip() for a in args.attention.split(",")]
    compile_settings = args.compile or ("off,on" if device.type == "cuda" else "off")
    compiled_list = [{"off": False, "on": True}[c.strip()] for c in compile_settings.split(",")]
    if True in compiled_list and not args.compile_backend:
        reason = compile_unavailable_reason(device)
        if reason:
            print(f"compile on: skipped, {reason}", flush=True)
            compiled_list = [c for c in compiled_list if not c] or [False]
    width, height = schema.parse_size(args.size or ("64*48" if args.tiny else "1280*720"))
    frames = args.frames or (9 if args.tiny else 129)
    text_tokens = 40 if args.tiny else 831
    dtype = getattr(torch, args.dtype or ("bfloat16" if device.type == "cuda" else "float32"))
    peak, peak_text = card_peak(device, args.peak_tflops)
    forced = forced_pattern(args.steps, args.forced_every)
    print(f"HunyuanCustom step speed: {width}x{height} x {frames} frames, {args.steps} steps (2 CFG passes each), "
          f"{dtype}, offload {args.offload}, fp8 {args.fp8}, on {device}" + (" (TINY shapes)" if args.tiny else ""),
          flush=True)
    print(f"forced pattern skips steps {sorted(forced)} ({len(forced)} of {args.steps}); peak: {peak_text}",
          flush=True)

    rows: list[Row] = []
    per_run_blocks = 0
    for compiled in compiled_list:
        model = build_model(args, dtype, compiled, device)
        config = model.config
        per_run_blocks = args.steps * 2 * (config.num_layers + config.num_single_layers)
        shape, latents, ref, text = vram_estimate.transformer_inputs(config, width, height, frames, text_tokens, dtype,
                                                                     device)
        tokens = (shape[2] + 1) * (shape[3] // config.patch_size) * (shape[4] // config.patch_size) + text_tokens
        flops_per_block = block_flops(config, tokens)
        for backend in backends:
            try:
                model.set_attention_backend(backend)
            except Exception as exc:
                rows.append(Row(backend, compiled, "(all)", "", "", args.steps,
                                error=f"backend unavailable: {str(exc).splitlines()[0][:100]}"))
                continue
            reference = None
            for name in caches:
                for mode in (("",) if name in ("off", "deepcache") else modes):
                    if mode == "forced":
                        threshold = 2.0 if name == "taylorseer" else None
                        setting = "interval 2" if name == "taylorseer" else f"skip {len(forced)} steps"
                    else:
                        threshold = None
                        recommended = schema.CACHE_OPTIONS[name].recommended
                        setting = "" if name in ("off", "deepcache") else \
                            f"{'interval' if name == 'taylorseer' else 'threshold'} {recommended:g}"
                    if name == "deepcache":
                        setting = "upstream" if args.steps in UPSTREAM_REUSE_STEPS else "inactive (not 30 steps)"
                    row = Row(backend, compiled, name, mode, setting, args.steps)
                    request = DenoiseRequest(latents=latents, ref_latents=ref, text=text, steps=args.steps,
                                             flow_shift=13.0, guidance_scale=7.5, cache=CacheSettings(name, threshold),
                                             cache_forced_skips=forced if mode == "forced" and name != "taylorseer"
                                             else None)
                    out = run_one(model, row, request, device, flops_per_block)
                    if out is not None:
                        if name == "off":
                            reference = out
                        if reference is not None:
                            row.max_diff = float((out - reference).abs().max())
                    rows.append(row)
        del model, latents, ref, text
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print("\n".join(["", *format_table(rows, peak, per_run_blocks)]))
    print(f"\nblocks run: of {per_run_blocks} (steps x 2 CFG passes x blocks); TFLOP/s: the computed blocks' "
          "matmuls and attention over the whole run's time. Adaptive rows on synthetic weights skip at random; "
          "the forced rows are the speed to compare. Published figures (HunyuanVideo T2V): README, Speed.")
    return rows


if __name__ == "__main__":
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    _pack.import_pack()
    import importlib

    importlib.import_module("hunyuan_custom.benchmarks.step_speed").main()
