"""Peak GPU memory of every local stage (text encoders, transformer, VAE decode), measured on a real
card with synthetic full-size weights, next to benchmarks/vram_estimate.py's estimate.

Each stage runs the code path pipelines/generate.py runs, on models with the released shapes and
dtypes but made-up values (benchmarks/synthetic_models.py; no 40 GB download):
  text         LLaVA-Llama-3-8B + CLIP-L placed as load_text_encoders places them (--offload group:
               LLaVA's decoder layers streamed, text_encoder_offload.py; else both whole on the GPU),
               then text_encoders/cache.encode_text_conditioning with CFG: two LLaVA passes of the real
               length (95 template + 256 text tokens, <image> expanded to 576 features = 926
               positions) and two CLIP passes, then the encoders are freed.
  transformer  HYVideo-T/2 (fp8 block Linears with --fp8 keep), group offload or whole on the GPU,
               `--steps` denoising steps (two batch-1 CFG passes each) of the real token count
               through sampling.denoise, the 831 text tokens all valid; with --deep-cache on (the
               default) every step stores, the worst moment of a 30-step run, as the estimate counts.
  vae          HunyuanVideoVAE tiled decode of the whole latent (upstream's 64-frame tiles unless
               --vae-tile-frames), then the video goes to the CPU, as generate.py does.
Peak statistics are reset before each stage and each stage is freed before the next (with --offload
none the transformer stays on the GPU through the decode, as in generate.py). At the end one table:
peak allocated / reserved (torch.cuda.max_memory_*), vram_estimate's figure for the same options,
their ratio, and whether the stage is CONFIRMED.

To confirm README's "Memory" table (720p x 129 frames, bf16), on a GPU:

    python benchmarks/gpu_memory.py --size 1280*720 --frames 129 --offload group --fp8 keep
    python benchmarks/gpu_memory.py --size 1280*720 --frames 129 --offload model --fp8 keep --budget-gib 80
    python benchmarks/gpu_memory.py --stages vae --vae-tile-frames 32     # the other VAE columns
    python benchmarks/gpu_memory.py --stages vae --vae-tile-frames 16

The first is the 24 GB claim (run it on any card; --budget-gib 24 is the default), the second needs an
80 GB card. A stage counts as CONFIRMED when its measured peak allocated is at most the estimate + 10%
and its peak reserved plus the CUDA context (what else the card had in use when the script started)
fits in --budget-gib. Add `--fp8 dequantize` for the table's bf16 transformer figures. Each stage can
run alone (--stages text / transformer / vae) where a command has a time limit; the full 720p run takes
minutes (filling 21 B synthetic parameters on the CPU, two 720p steps, the VAE decode; the estimates
take ~20 s). CPU RAM: up to ~55 GB with --offload group and a bf16 transformer (its 26 GB plus the pinned
copy diffusers streams from), about half with --fp8 keep.

    python benchmarks/gpu_memory.py --tiny --device cpu     # smoke run of the script itself (seconds)

Options map onto the model loader node's: --offload none|model|group, --fp8 keep (block Linears stored
as float8 with a per-layer scale, as fp8 checkpoints load with fp8_mode=keep), --attention (diffusers'
attention backends for the transformer). On a CPU there are no CUDA statistics: the table shows the
estimate and "n/a".
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import time
from dataclasses import dataclass
from typing import Any, Callable
from unittest import mock

import torch
from torch import nn

try:
    from . import _pack  # imported as hunyuan_custom.benchmarks.<name> (the tests)
except ImportError:
    import _pack  # run as a script: benchmarks/ is sys.path[0]

from hunyuan_custom.pipelines.diffusion_models.step_cache import CACHE_NAMES, DEEPCACHE, CacheSettings  # noqa: E402

GIB = 2**30
CONFIRM_TOLERANCE = 0.10  # measured peak allocated may exceed the estimate by this much
STAGES = ("text", "transformer", "vae")


@dataclass
class StageResult:
    """One stage: what the card reported (None on a CPU) and what vram_estimate.py expects."""

    stage: str
    label: str
    seconds: float
    peak_allocated: int | None = None
    peak_reserved: int | None = None
    left_allocated: int | None = None  # after the stage was freed: ~0, or the transformer kept with offload none
    kept: str = ""  # what stays on the device on purpose after the stage
    error: str = ""
    estimate: Any = None  # vram_estimate.StageEstimate

    @property
    def ratio(self) -> float | None:
        if self.peak_allocated is None or self.estimate is None or not self.estimate.peak_total:
            return None
        return self.peak_allocated / self.estimate.peak_total

    def confirmed(self, budget_bytes: int, context_bytes: int) -> bool | None:
        if self.peak_allocated is None or self.ratio is None:
            return None
        return (not self.error and self.ratio <= 1 + CONFIRM_TOLERANCE
                and self.peak_reserved + context_bytes <= budget_bytes)


class Card:
    """Peak statistics of the device (no-ops off CUDA)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.context = 0
        if self.cuda:
            torch.zeros(1, device=device)  # creates the CUDA context
            free, total = torch.cuda.mem_get_info(device)
            self.total = total
            # The context plus whatever other processes hold: the card memory this script cannot use.
            self.context = total - free - torch.cuda.memory_reserved(device)

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def reset(self) -> None:
        if self.cuda:
            self.sync()
            torch.cuda.reset_peak_memory_stats(self.device)

    def free(self) -> None:
        gc.collect()
        if self.cuda:
            self.sync()
            torch.cuda.empty_cache()

    def record(self, result: StageResult) -> None:
        if self.cuda:
            self.sync()
            result.peak_allocated = torch.cuda.max_memory_allocated(self.device)
            result.peak_reserved = torch.cuda.max_memory_reserved(self.device)

    def record_left(self, result: StageResult) -> None:
        if self.cuda:
            result.left_allocated = torch.cuda.memory_allocated(self.device)


@contextlib.contextmanager
def measuring(card: Card, result: StageResult):
    """Reset the peaks, run, record them; an out-of-memory error is reported in the table, not raised."""
    card.free()
    card.reset()
    started = time.perf_counter()
    try:
        yield
        card.sync()
    except torch.cuda.OutOfMemoryError as exc:  # an alias of torch.OutOfMemoryError
        result.error = "out of memory: " + str(exc).split("\n")[0][:120]
        print(f"{result.stage}: {result.error}", flush=True)
    finally:
        result.seconds = time.perf_counter() - started
        card.record(result)


# ---------------------------------------------------------------------------------------------
# stages


def run_text_stage(args: argparse.Namespace, card: Card, dtype: torch.dtype) -> StageResult:
    """Both encoders placed as load_text_encoders places them, then encode_text_conditioning with CFG
    (no cache), which encodes and frees them: the whole text stage of generate.py minus the disk."""
    from hunyuan_custom.pipelines.text_encoders import prompt_template as pt
    from hunyuan_custom.pipelines.conditioning.reference import uncond_llava_pixel_values
    from hunyuan_custom.pipelines.text_encoders.offload import apply_text_group_offloading
    from hunyuan_custom.pipelines.text_encoders.cache import encode_text_conditioning
    from hunyuan_custom.pipelines.text_encoders.encoding import TextEncoders

    from .synthetic_models import FullBudgetTokenizer, synthetic_text_encoders

    from .vram_estimate import text_offload_of

    offload = text_offload_of(args.offload)
    # Template + text tokens: upstream's 95 + 256; tiny: 8, as vram_estimate counts them.
    crop_start, text_len = (4, 4) if args.tiny else (pt.LLAVA_CROP_START, pt.LLAVA_TEXT_LEN)
    started = time.perf_counter()
    built = list(synthetic_text_encoders(args.tiny, dtype))
    print(f"text: synthetic LLaVA + CLIP-L filled on the CPU in {time.perf_counter() - started:.0f} s", flush=True)
    size = int(built[0].config.vision_config.image_size)
    placed_at: list[float] = []

    def load_synthetic(_llava_path, _clip_path, _dtype, device, *, crop_start, text_len, offload="model"):
        llava, clip = built.pop(0), built.pop(0)  # no reference kept here: free() must be able to drop them
        if offload == "group":
            apply_text_group_offloading(llava, device)
        else:
            llava.to(device)
        clip.to(device)
        card.sync()
        placed_at.append(time.perf_counter())
        llava_tokenizer = FullBudgetTokenizer(crop_start + text_len, filler_id=1,
                                              image_token_id=int(llava.config.image_token_id))
        clip_tokenizer = FullBudgetTokenizer(int(clip.config.max_position_embeddings), filler_id=1)
        return TextEncoders(llava, llava_tokenizer, clip, clip_tokenizer, crop_start=crop_start, text_len=text_len)

    label = "text encoders" + (" (LLaVA streamed)" if offload == "group" else " (whole)")
    result = StageResult("text", label, 0.0)
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(1, 3, size, size, generator=generator)
    with measuring(card, result), torch.no_grad():
        start = time.perf_counter()
        text = encode_text_conditioning(
            "synthetic-llava", "synthetic-clip", prompt="synthetic", negative_prompt="synthetic", subject="man",
            pixel_values=pixels, uncond_pixel_values=uncond_llava_pixel_values(size=size), do_cfg=True, dtype=dtype,
            device=card.device, cache=None, crop_start=crop_start, text_len=text_len, loader=load_synthetic,
            offload=offload)
        card.sync()
        if placed_at:
            print(f"text: placed on {card.device} in {placed_at[0] - start:.1f} s, encoded (2 LLaVA + 2 CLIP passes, "
                  f"freed) in {time.perf_counter() - placed_at[0]:.1f} s; states {list(text.states.shape)}", flush=True)
        del text
    built.clear()
    card.free()
    card.record_left(result)
    return result


def place_transformer(model: nn.Module, args: argparse.Namespace, device: torch.device) -> None:
    """As LocalGenerator.transformer: attention backend, then group offload hooks or the whole model."""
    from hunyuan_custom.pipelines.offload_policy import stream_transformer_blocks

    from .vram_estimate import sampling_offload_of

    if args.attention != "default":
        model.set_attention_backend(args.attention)
    if sampling_offload_of(args.offload) == "group":
        stream_transformer_blocks(model, device)
    else:
        model.to(device)


def build_transformer(args: argparse.Namespace, dtype: torch.dtype) -> nn.Module:
    from .synthetic_models import synthetic_transformer

    started = time.perf_counter()
    model = synthetic_transformer(args.tiny, dtype, args.fp8 == "keep")
    print(f"transformer: synthetic model {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters, "
          f"{sum(p.numel() * p.element_size() for p in model.parameters()) / GIB:.1f} GiB, filled in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    return model


def run_transformer_stage(args: argparse.Namespace, card: Card, dtype: torch.dtype, width: int, height: int,
                          frames: int) -> tuple[StageResult, nn.Module | None]:
    """Sampling as generate.py runs it. Returns the model too when it stays on the device (offload none)."""
    from hunyuan_custom.pipelines import sampling

    from . import vram_estimate

    model = build_transformer(args, dtype)
    label = "transformer" + (" (blocks streamed)" if vram_estimate.sampling_offload_of(args.offload) == "group"
                             else " (whole)")
    result = StageResult("transformer", label, 0.0)
    times: list[float] = []
    with measuring(card, result), torch.no_grad():
        place_transformer(model, args, card.device)
        shape, latents, ref, text = vram_estimate.transformer_inputs(model.config, width, height, frames,
                                                                     args.text_tokens, dtype, card.device)
        request = sampling.DenoiseRequest(latents=latents, ref_latents=ref, text=text, steps=args.steps,
                                          flow_shift=13.0, guidance_scale=7.5, cache=CacheSettings(cache_name(args)))
        tokens = (shape[2] + 1) * (shape[3] // 2) * (shape[4] // 2)
        print(f"transformer: video {width}x{height}x{frames}: latent {list(shape)}, {tokens} image tokens + "
              f"{args.text_tokens} text tokens per pass", flush=True)
        last = [time.perf_counter()]

        def on_step(done: int, total: int, _latents) -> None:
            card.sync()
            now = time.perf_counter()
            times.append(now - last[0])
            last[0] = now
            print(f"transformer: step {done}/{total}: {times[-1]:.2f} s", flush=True)

        with contextlib.ExitStack() as stack:
            if cache_name(args) == DEEPCACHE:
                # Every step stores, as vram_estimate counts it: the worst moment of a 30-step run.
                stack.enter_context(mock.patch.object(sampling, "upstream_deep_cache_mode", lambda _i, _n: "store"))
            out = sampling.denoise(model, request, on_step=on_step)
        del out, latents, ref, text, request
    if times:
        rest = times[1:] or times
        per_step = sum(rest) / len(rest)
        print(f"transformer: seconds per step (2 CFG passes): {per_step:.2f} (first step {times[0]:.2f}); "
              f"30 steps ~ {30 * per_step / 60:.1f} min", flush=True)
    keep = None
    if args.offload == "none" and not result.error:
        keep = model  # generate.py leaves it on the device through the decode
        result.kept = "the transformer, on the device until the decode ends with offload none"
    elif args.offload == "model":
        model.to("cpu")  # generate.py: moved off before the decode
    del model
    card.free()
    card.record_left(result)
    return result, keep


def run_vae_stage(args: argparse.Namespace, card: Card, dtype: torch.dtype, width: int, height: int,
                  frames: int) -> StageResult:
    """Tiled decode of the whole latent, then the video to the CPU and its float frames there."""
    from hunyuan_custom.pipelines.sampling import latent_shape

    from .synthetic_models import synthetic_vae

    started = time.perf_counter()
    vae = synthetic_vae(args.tiny, dtype)
    print(f"vae: synthetic VAE filled in {time.perf_counter() - started:.0f} s", flush=True)
    tile = f"{args.vae_tile_frames}-frame" if args.vae_tile_frames else f"upstream's {vae.config.sample_tsize}-frame"
    result = StageResult("vae", f"VAE decode ({tile} tiles)", 0.0)
    shape = latent_shape(frames, height, width, channels=vae.config.latent_channels)
    latents = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(card.device)  # denoise's float32 output
    tiles: list[int] = []
    with measuring(card, result), torch.no_grad():
        vae.to(card.device)
        video = vae.decode((latents / vae.scaling_factor).to(vae.dtype), tiled=True,
                           on_tile=lambda done, total: tiles.append(total), tile_frames=args.vae_tile_frames)
        frames_out = (video.cpu().float() / 2 + 0.5).clamp(0, 1)[0].permute(1, 2, 3, 0).contiguous()
        print(f"vae: decoded {tiles[-1] if tiles else 1} tiles -> frames {list(frames_out.shape)}", flush=True)
        del video, frames_out
    vae.to("cpu")
    del vae, latents
    card.free()
    card.record_left(result)
    return result


# ---------------------------------------------------------------------------------------------
# estimates (vram_estimate.py with the same options)


def estimate_stage(stage: str, args: argparse.Namespace, dtype: torch.dtype, width: int, height: int, frames: int,
                   transformer_weights: Callable[[], int]):
    from . import vram_estimate as ve

    if stage == "text":
        return ve.estimate_text_encoders(dtype, tiny=args.tiny, attention="flash",
                                         offload=ve.text_offload_of(args.offload))
    if stage == "transformer":
        model = ve.shape_only_transformer(args.tiny, dtype, fp8=args.fp8 == "keep")
        estimate = ve.estimate_transformer(model, width, height, frames, offload=ve.sampling_offload_of(args.offload),
                                           attention="flash", text_tokens=args.text_tokens,
                                           deep_cache=cache_name(args) == DEEPCACHE)
        return with_cache_state(estimate, cache_name(args), model.config, width, height, frames, dtype,
                                args.text_tokens)
    extra = transformer_weights() if args.offload == "none" else 0
    return ve.estimate_vae_decode(width, height, frames, ve.shape_only_vae(dtype, tiny=args.tiny), attention="flash",
                                  resident_extra=extra, tile_frames=args.vae_tile_frames)


def cache_name(args: argparse.Namespace) -> str:
    """--cache, or what --deep-cache says (on: deepcache, off: off)."""
    return args.cache or (DEEPCACHE if args.deep_cache == "on" else "off")


def with_cache_state(estimate, cache: str, config, width: int, height: int, frames: int, dtype: torch.dtype,
                     text_tokens: int):
    """The transformer estimate plus what an adaptive step cache keeps between steps (offload 'auto'
    counts it too); deepcache's stored input is already among the estimate's activations."""
    from hunyuan_custom.pipelines.diffusion_models.step_cache_memory import state_bytes
    from hunyuan_custom.pipelines.sampling import latent_shape

    extra = state_bytes(cache, latent_shape(frames, height, width), config, dtype.itemsize, text_tokens)
    if extra:
        estimate.peak_total += extra
        estimate.peak_activations += extra
        estimate.notes.append(f"{cache} state: {extra / 2**30:.2f} GiB kept between steps (added to the peak)")
    return estimate


def shape_only_transformer_bytes(args: argparse.Namespace, dtype: torch.dtype) -> int:
    from . import vram_estimate as ve

    return ve.tensor_bytes(ve.shape_only_transformer(args.tiny, dtype, fp8=args.fp8 == "keep"))


# ---------------------------------------------------------------------------------------------
# report


def _gib(n: int | None) -> str:
    from . import vram_estimate

    return "n/a" if n is None else vram_estimate.gib(n).strip()


def format_table(results: list[StageResult], card: Card, budget_gib: float) -> list[str]:
    budget = int(budget_gib * GIB)
    header = ("stage", "peak allocated", "peak reserved", "estimate", "measured/est.", "seconds", "confirmed")
    rows = [header]
    for r in results:
        ratio = r.ratio
        confirmed = r.confirmed(budget, card.context)
        rows.append((r.label, _gib(r.peak_allocated), _gib(r.peak_reserved),
                     _gib(r.estimate.peak_total) if r.estimate is not None else "n/a",
                     f"{ratio:.2f}" if ratio is not None else "n/a", f"{r.seconds:.1f}",
                     "n/a" if confirmed is None else ("yes" if confirmed else "NO")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in results:
        if r.error:
            lines.append(f"{r.label}: {r.error}")
        if r.left_allocated:
            why = f" ({r.kept})" if r.kept else ""
            lines.append(f"{r.label}: {_gib(r.left_allocated)} still allocated after the stage was freed{why}")
    if card.cuda:
        lines.append(f"CONFIRMED = peak allocated <= estimate + {CONFIRM_TOLERANCE:.0%} and peak reserved + "
                     f"{_gib(card.context)} CUDA context (and other processes) <= {budget_gib:g} GiB; "
                     f"card total {_gib(card.total)}")
    else:
        lines.append(f"no CUDA statistics on {card.device.type}: estimates only")
    return lines


def main(argv: list[str] | None = None) -> list[StageResult]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", default=",".join(STAGES), help="comma list of text, transformer, vae")
    parser.add_argument("--size", default=None, help="width*height (default 1280*720; 64*48 with --tiny)")
    parser.add_argument("--frames", type=int, default=None, help="video frames (default 129; 9 with --tiny)")
    parser.add_argument("--steps", type=int, default=2, help="denoising steps to time (each is 2 CFG passes)")
    parser.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default="bfloat16")
    parser.add_argument("--offload", choices=("none", "model", "group"), default="group",
                        help="the loader's offload: group streams LLaVA's layers and the transformer's blocks; "
                             "model keeps each stage whole on the device while it runs; none also keeps the "
                             "transformer there through the decode")
    parser.add_argument("--fp8", choices=("dequantize", "none", "keep"), default="dequantize",
                        help="keep: block Linears stay float8 (fp8 checkpoints with fp8_mode=keep); "
                             "dequantize (= none): everything in --dtype")
    parser.add_argument("--attention", default="default",
                        help="diffusers attention backend for the transformer, e.g. native, flash, sage")
    parser.add_argument("--deep-cache", choices=("on", "off"), default="on",
                        help="on: every measured step stores deepcache's block input (the worst moment of a "
                             "30-step run, as the estimate counts); off: no deepcache")
    parser.add_argument("--cache", choices=CACHE_NAMES, default=None,
                        help="the sampler's step cache (default: deepcache, or off with --deep-cache off); an "
                             "adaptive one (teacache, magcache, fbcache, taylorseer) runs at its recommended "
                             "threshold and its state is added to the estimate (diffusion_models/step_cache_memory.py)")
    parser.add_argument("--vae-tile-frames", type=int, default=None, metavar="N",
                        help="VAE decode: temporal tile of N video frames (a multiple of 16; default upstream's 64)")
    parser.add_argument("--budget-gib", type=float, default=24.0,
                        help="card size the measured peak reserved + CUDA context must fit (24 for the README claim)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny models at 64*48 x 9 frames: a check of the script")
    args = parser.parse_args(argv)

    _pack.import_pack()
    from hunyuan_custom.pipelines import schema

    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown or not stages:
        parser.error(f"--stages: unknown {unknown}; use a comma list of text, transformer, vae")
    stages = [s for s in STAGES if s in stages]  # generate.py's order
    if args.vae_tile_frames is not None:
        from hunyuan_custom.pipelines.vae.model import check_tile_frames

        try:
            check_tile_frames(args.vae_tile_frames)
        except ValueError as exc:
            parser.error(f"--vae-tile-frames: {exc}")
    width, height = schema.parse_size(args.size or ("64*48" if args.tiny else "1280*720"))
    frames = args.frames or (9 if args.tiny else 129)
    args.text_tokens = 40 if args.tiny else 831  # LLaVA tokens after the template crop, all valid (the longest)
    dtype = getattr(torch, args.dtype)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA GPU here; use --device cpu (with --tiny for a smoke run)")
    card = Card(device)
    print(f"HunyuanCustom measured peak memory per stage: {width}x{height} x {frames} frames, {args.dtype}, offload "
          f"{args.offload}, fp8 {args.fp8}, attention {args.attention}, cache {cache_name(args)}, VAE tiles "
          f"{args.vae_tile_frames or 'upstream'}, on {device}" + (" (TINY shapes)" if args.tiny else ""), flush=True)

    # Card.free collects garbage between stages so that no dead stage holds memory; only what the
    # stages make can be garbage, so everything alive now (the imports, a caller's objects) is set
    # aside (gc.freeze): each collection then takes milliseconds instead of about a second in a
    # process full of modules, such as the test suite.
    gc.freeze()
    try:
        results: list[StageResult] = []
        resident: nn.Module | None = None  # the transformer with offload none, on the device until the decode ends
        for stage in stages:
            if stage == "text":
                result = run_text_stage(args, card, dtype)
            elif stage == "transformer":
                result, resident = run_transformer_stage(args, card, dtype, width, height, frames)
            else:
                if args.offload == "none" and resident is None:
                    resident = build_transformer(args, dtype)  # as after sampling with offload none
                    place_transformer(resident, args, device)
                result = run_vae_stage(args, card, dtype, width, height, frames)
                if resident is not None:
                    result.kept = "the transformer, kept with offload none; freed after the decode"
            started = time.perf_counter()
            result.estimate = estimate_stage(stage, args, dtype, width, height, frames,
                                             lambda: shape_only_transformer_bytes(args, dtype))
            print(f"{stage}: measured peak allocated {_gib(result.peak_allocated)}, reserved "
                  f"{_gib(result.peak_reserved)}; estimate {_gib(result.estimate.peak_total)} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
            results.append(result)
        del resident
        card.free()
    finally:
        gc.unfreeze()
    print("\n".join(["", *format_table(results, card, args.budget_gib)]))
    return results


if __name__ == "__main__":
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    # Run as a script: import this file as part of the pack so that its relative imports work.
    _pack.import_pack()
    import importlib

    importlib.import_module("hunyuan_custom.benchmarks.gpu_memory").main()
