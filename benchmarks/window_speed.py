"""Long videos: time per step and peak memory for 1, 2, 4 and 8 windows (129 ... 1053 frames).

What runs is pipelines/sampling.denoise as generate.py runs it (two batch-1 CFG passes per step, no
step cache), on a transformer with the released shapes and made-up values (synthetic_models.py), at
4 * (33 * w - 1) + 1 frames for w windows. The table is the figure behind the README's claim: the
time of a step grows with the windows (one forward per window and pass), the memory does not (one
window's activations; only the latent itself, a few MB at 720p x 60 s, grows with the length).
Nothing is asserted.

    python benchmarks/window_speed.py --size 960*544 --steps 3          # on a GPU: peak = max_memory_allocated
    python benchmarks/window_speed.py --tiny --device cpu               # tiny models, seconds

On a CPU the peak is the live tensor bytes (benchmarks/vram_counter.py, weights left out), counted
in a separate one-step run so the counting does not slow the timed run.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import torch

try:
    from . import _pack  # imported as hunyuan_custom.benchmarks.<name> (the tests)
except ImportError:
    import _pack  # run as a script: benchmarks/ is sys.path[0]

MIB = 2**20


@dataclass
class Row:
    windows: int
    frames: int
    latents: int
    step_seconds: float = 0.0
    peak_bytes: int = 0

    @property
    def seconds_per_window(self) -> float:
        return self.step_seconds / self.windows


def frames_for(windows: int) -> int:
    """The longest video of `windows` windows: 33 latents each."""
    return 4 * (33 * windows - 1) + 1


def _request(model, width: int, height: int, frames: int, steps: int, text_tokens: int):
    from hunyuan_custom.pipelines.sampling import DenoiseRequest

    from .vram_estimate import transformer_inputs

    device = model.x_embedder.proj.weight.device
    dtype = model.x_embedder.proj.weight.dtype
    _shape, latents, ref, text = transformer_inputs(model.config, width, height, frames, text_tokens, dtype, device)
    return DenoiseRequest(latents=latents, ref_latents=ref, text=text, steps=steps, flow_shift=13.0,
                          guidance_scale=7.5, cache=None, deep_cache=False)


def measure(model, row: Row, width: int, height: int, steps: int, text_tokens: int, device: torch.device) -> Row:
    from hunyuan_custom.pipelines import sampling

    from .vram_counter import LiveBytesCounter

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times: list[float] = []
    last = [0.0]

    def on_step(_done, _total, _latents) -> None:
        sync()
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    request = _request(model, width, height, row.frames, steps, text_tokens)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    with torch.no_grad():
        sync()
        last[0] = time.perf_counter()
        sampling.denoise(model, request, on_step=on_step)
    timed = times[1:] or times  # the first step warms up kernels
    row.step_seconds = sum(timed) / len(timed)
    if device.type == "cuda":
        row.peak_bytes = int(torch.cuda.max_memory_allocated(device))
    else:
        counter = LiveBytesCounter(device.type)
        with torch.no_grad(), counter:
            sampling.denoise(model, _request(model, width, height, row.frames, 1, text_tokens))
        row.peak_bytes = int(counter.peak.total)
    return row


def format_table(rows: list[Row], device: torch.device) -> list[str]:
    what = "peak allocated (MiB)" if device.type == "cuda" else "peak live tensors (MiB)"
    lines = [f"{'windows':>7} {'frames':>6} {'latents':>7} {'s/step':>8} {'s/step/window':>13} {what:>24}"]
    for r in rows:
        lines.append(f"{r.windows:>7} {r.frames:>6} {r.latents:>7} {r.step_seconds:>8.3f} {r.seconds_per_window:>13.3f} "
                     f"{r.peak_bytes / MIB:>24.1f}")
    return lines


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", default="1,2,4,8", help="comma list of window counts")
    parser.add_argument("--size", default=None, help="width*height (default 960*544; 64*48 with --tiny)")
    parser.add_argument("--steps", type=int, default=3, help="steps per run (the first is not timed)")
    parser.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default=None,
                        help="default bfloat16 on a GPU, float32 on a CPU")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny models at 64*48 (the CPU setting)")
    args = parser.parse_args(argv)

    from hunyuan_custom.pipelines import schema

    from .synthetic_models import synthetic_transformer

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA GPU here; use --device cpu (with --tiny)")
    try:
        counts = [int(w) for w in args.windows.split(",") if w.strip()]
    except ValueError:
        parser.error(f"--windows: {args.windows!r} is not a comma list of whole numbers")
    if not counts or min(counts) < 1 or frames_for(max(counts)) > schema.MAX_FRAMES:
        parser.error(f"--windows: from 1 to {(schema.MAX_FRAMES + 3) // 132} ({schema.MAX_FRAMES} frames at most)")
    if args.steps < 2:
        parser.error("--steps: at least 2 (the first step is not timed)")
    width, height = schema.parse_size(args.size or ("64*48" if args.tiny else "960*544"))
    dtype = getattr(torch, args.dtype or ("bfloat16" if device.type == "cuda" else "float32"))
    text_tokens = 40 if args.tiny else 831
    print(f"HunyuanCustom window speed: {width}x{height}, {args.steps} steps (2 CFG passes each), {dtype}, on "
          f"{device}" + (" (TINY shapes)" if args.tiny else ""), flush=True)
    model = synthetic_transformer(args.tiny, dtype, False).to(device)
    rows = []
    for w in counts:
        frames = frames_for(w)
        rows.append(measure(model, Row(w, frames, (frames - 1) // 4 + 1), width, height, args.steps, text_tokens,
                            device))
        print(f"  {w} window(s), {frames} frames: {rows[-1].step_seconds:.3f} s/step", flush=True)
    print("\n".join(format_table(rows, device)))
    return rows


if __name__ == "__main__":
    _pack.import_pack()
    import importlib

    importlib.import_module("hunyuan_custom.benchmarks.window_speed").main()
