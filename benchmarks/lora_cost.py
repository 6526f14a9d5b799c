"""What a LoRA costs at run time (diffusion_models/lora_runtime.py): memory, step time, switching time.

A rank-R LoRA on every Linear of the double and single blocks (what musubi-tuner and diffusion-pipe
train by default) is made for a transformer with the released shapes and made-up values
(benchmarks/synthetic_models.py), written as a diffusers-format file and applied as the sampler applies
it. Printed: the LoRA's size (file, CPU RAM in float32, device copy in the compute dtype), the seconds
per step without and with it (pipelines/sampling.denoise, no step cache), the seconds to apply it and
to switch its strength (no checkpoint is read), and the largest difference a strength of 0 makes (must
be 0). Nothing is asserted.

    python benchmarks/lora_cost.py --size 960*544 --frames 33 --steps 4     # a GPU, minutes
    python benchmarks/lora_cost.py --fp8 keep --offload group                  # fp8 weights, streamed blocks
    python benchmarks/lora_cost.py --tiny --device cpu                         # tiny shapes, seconds
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

try:
    from . import _pack  # imported as hunyuan_custom.benchmarks.<name> (the tests)
except ImportError:
    import _pack  # run as a script: benchmarks/ is sys.path[0]


def write_block_lora(model: torch.nn.Module, path: Path, rank: int) -> int:
    """A diffusers-format LoRA on every block Linear of `model`; returns its parameter count."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    tensors = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and name.startswith(("transformer_blocks.", "single_transformer_blocks.")):
            tensors[f"transformer.{name}.lora_A.weight"] = torch.randn(rank, module.in_features, generator=g,
                                                                        dtype=torch.bfloat16) * 0.01
            tensors[f"transformer.{name}.lora_B.weight"] = torch.randn(module.out_features, rank, generator=g,
                                                                        dtype=torch.bfloat16) * 0.01
    save_file(tensors, str(path))
    return sum(t.numel() for t in tensors.values())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default=None, help="width*height (default 960*544; 64*48 with --tiny)")
    parser.add_argument("--frames", type=int, default=None, help="video frames (default 33; 9 with --tiny)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default=None,
                        help="default bfloat16 on a GPU, float32 on a CPU")
    parser.add_argument("--fp8", choices=("dequantize", "keep"), default="dequantize")
    parser.add_argument("--offload", choices=("model", "group"), default="model")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny shapes at 64*48 x 9 frames (the CPU setting)")
    args = parser.parse_args(argv)

    _pack.import_pack()
    from hunyuan_custom.pipelines import schema
    from hunyuan_custom.pipelines.diffusion_models.lora_files import LoraChoice
    from hunyuan_custom.pipelines.diffusion_models.lora_runtime import apply_loras, applied_loras, place_loras
    from hunyuan_custom.pipelines.offload_policy import stream_transformer_blocks
    from hunyuan_custom.pipelines.sampling import DenoiseRequest, denoise
    from hunyuan_custom.pipelines.diffusion_models.step_cache import CacheSettings

    from . import synthetic_models, vram_estimate

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA GPU here; use --device cpu (with --tiny)")
    dtype = getattr(torch, args.dtype or ("bfloat16" if device.type == "cuda" else "float32"))
    width, height = schema.parse_size(args.size or ("64*48" if args.tiny else "960*544"))
    frames = args.frames or (9 if args.tiny else 33)
    model = synthetic_models.synthetic_transformer(args.tiny, dtype, args.fp8 == "keep")
    if args.offload == "group" and device.type == "cuda":
        stream_transformer_blocks(model, device)
    else:
        model.to(device)
    _shape, latents, ref, text = vram_estimate.transformer_inputs(model.config, width, height, frames,
                                                                  40 if args.tiny else 256, dtype, device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def per_step() -> tuple[float, torch.Tensor]:
        request = DenoiseRequest(latents=latents, ref_latents=ref, text=text, steps=args.steps, flow_shift=13.0,
                                 guidance_scale=7.5, cache=CacheSettings("off"))
        times: list[float] = []
        last = [time.perf_counter()]

        def on_step(_done, _total, _latents) -> None:
            sync()
            now = time.perf_counter()
            times.append(now - last[0])
            last[0] = now

        with torch.no_grad():
            sync()
            last[0] = time.perf_counter()
            out = denoise(model, request, on_step=on_step)
        steady = times[1:] or times  # the first step warms the kernels up
        return sum(steady) / len(steady), out

    def timed(call) -> float:
        sync()
        start = time.perf_counter()
        call()
        sync()
        return time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "block_lora.safetensors"
        params = write_block_lora(model, path, args.rank)
        plain_s, plain = per_step()
        apply_s = timed(lambda: (apply_loras(model, [LoraChoice(str(path), 1.0)]), place_loras(model, device, dtype)))
        lora_s, _ = per_step()
        stored = sum(b.nbytes for b in applied_loras(model).values())  # elements the branches keep
        switch_s = timed(lambda: (apply_loras(model, [LoraChoice(str(path), 0.5)]), place_loras(model, device, dtype)))
        apply_loras(model, [LoraChoice(str(path), 0.0)])  # strength 0: the branches come off
        _zero_s, zero = per_step()
        branches = applied_loras(model)
        file_mib = path.stat().st_size / 2**20
    figures = {
        "lora_params_M": params / 1e6, "file_MiB": file_mib, "plain_s_per_step": plain_s,
        "lora_s_per_step": lora_s, "apply_s": apply_s, "switch_s": switch_s,
        "strength0_max_diff": float((zero - plain).abs().max()), "branches_left_at_strength0": len(branches),
        "stored_elements": stored,
    }
    cpu_mib, device_mib = stored * 4 / 2**20, stored * dtype.itemsize / 2**20
    dtype_name = str(dtype).removeprefix("torch.")
    print(f"LoRA rank {args.rank} on every block Linear: {params / 1e6:.1f} M parameters, file {file_mib:.1f} MiB "
          f"(bf16); CPU RAM {cpu_mib:.1f} MiB (float32), {device} {device_mib:.1f} MiB ({dtype_name}) while sampling")
    print(f"{width}x{height} x {frames} frames, {dtype_name}, fp8 {args.fp8}, offload {args.offload}, on {device}"
          + (" (TINY shapes)" if args.tiny else ""))
    print(f"  s/step without LoRA {plain_s:.3f}, with {lora_s:.3f} ({(lora_s / plain_s - 1) * 100:+.1f} %)")
    print(f"  apply {apply_s:.2f} s, switch strength {switch_s:.2f} s (no checkpoint read); strength 0 gives the "
          f"plain output: max diff {figures['strength0_max_diff']:g}")
    return figures


if __name__ == "__main__":
    _pack.import_pack()
    import importlib

    importlib.import_module("hunyuan_custom.benchmarks.lora_cost").main()
