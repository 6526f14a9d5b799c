"""Peak GPU memory and seconds per denoising step of the FULL-SIZE transformer, synthetic weights.

Answers "does 1280x720 x 129 frames fit on a 24 GB card with these options, and how fast?" without
the real 26 GB download: the model has HYVideo-T/2's exact shapes with random values, the text
inputs have the real lengths (LLaVA 831 tokens, CLIP 768). Prints figures; it is not a test.

    python benchmarks/gpu_memory.py --size 1280*720 --frames 129 --offload group --fp8 keep --steps 2
    python benchmarks/gpu_memory.py --size 960*544 --frames 129 --offload none --attention flash
    python benchmarks/gpu_memory.py --tiny --device cpu        # smoke run of the script itself

Options map onto the model loader node's: --offload none|group (the sampler's 'model' mode is
'none' during sampling), --fp8 keep (block Linears stored as float8 with a per-layer scale, as the
fp8 checkpoints load with fp8_mode=keep), --attention (diffusers' attention backends).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

try:
    from . import _pack, vram_estimate  # imported as hunyuan_custom.benchmarks.<name> (the tests)
except ImportError:
    import _pack  # run as a script: benchmarks/ is sys.path[0]
    import vram_estimate



def build_model(tiny: bool, dtype: torch.dtype, fp8: bool) -> nn.Module:
    """The model vram_estimate.py counts (same shapes and dtypes as loaded), filled with values."""
    from hunyuan_custom.pipelines.transformer_keys import FULL_SIZE_CONFIG

    config = {**FULL_SIZE_CONFIG, **(vram_estimate.TINY_TRANSFORMER if tiny else {})}
    model = vram_estimate.build_shape_only_transformer(config, dtype, fp8)
    model.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            fan_in = param.shape[-1] if param.ndim > 1 else 1
            values = torch.randn(param.shape, generator=generator) * (0.5 / fan_in**0.5 if param.ndim > 1 else 0.02)
            if param.ndim == 1 and name.endswith("weight"):
                values += 1.0
            param.data = values.to(param.dtype)
        for name, buf in model.named_buffers():
            if name.endswith("weight_scale"):
                buf.fill_(1.0)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1280*720")
    parser.add_argument("--frames", type=int, default=129)
    parser.add_argument("--steps", type=int, default=2, help="denoising steps to time (each is 2 CFG passes)")
    parser.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default="bfloat16")
    parser.add_argument("--offload", choices=("none", "group"), default="none")
    parser.add_argument("--fp8", choices=("none", "keep"), default="none")
    parser.add_argument("--attention", default="default", help="diffusers attention backend, e.g. native, flash, sage")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true",
                        help="tiny model at 64*48 x 9 frames unless --size/--frames say otherwise (check the script on a CPU)")
    args = parser.parse_args()
    if args.tiny and "--size" not in sys.argv:
        args.size = "64*48"
    if args.tiny and "--frames" not in sys.argv:
        args.frames = 9

    _pack.import_pack()
    from hunyuan_custom.pipelines import schema
    from hunyuan_custom.pipelines.sampling import DenoiseRequest, denoise, initial_noise, latent_shape
    from hunyuan_custom.pipelines.text_encoding import TextConditioning

    width, height = schema.parse_size(args.size)
    dtype = getattr(torch, args.dtype)
    device = torch.device(args.device)
    cuda = device.type == "cuda"

    started = time.perf_counter()
    model = build_model(args.tiny, dtype, args.fp8 == "keep")
    print(f"built synthetic model: {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters, "
          f"{sum(p.numel() * p.element_size() for p in model.parameters()) / 2**30:.1f} GiB, "
          f"{time.perf_counter() - started:.0f} s")
    if args.attention != "default":
        model.set_attention_backend(args.attention)
    if args.offload == "group":
        model.enable_group_offload(device, offload_device=torch.device("cpu"), offload_type="block_level",
                                   num_blocks_per_group=1, use_stream=cuda)
    else:
        model.to(device)

    cfg = model.config
    text_len, image_extra, n_tokens = (831, 575, 130) if not args.tiny else (40, 3, 30)
    mask = torch.zeros(2, text_len, dtype=torch.int64)
    mask[:, : n_tokens] = 1
    mask[1, -image_extra:] = 1  # upstream's quirk on the cond row; the uncond row is rewritten
    text = TextConditioning(states=torch.randn(2, text_len, cfg.text_embed_dim), mask=mask,
                            pooled=torch.randn(2, cfg.pooled_projection_dim))
    shape = latent_shape(args.frames, height, width, channels=cfg.in_channels)
    ref = torch.randn(1, cfg.in_channels, 1, shape[3], shape[4])
    request = DenoiseRequest(latents=initial_noise(0, shape), ref_latents=ref, text=text, steps=args.steps,
                             flow_shift=13.0, guidance_scale=7.5)
    tokens = (shape[2] + 1) * (shape[3] // 2) * (shape[4] // 2)
    print(f"video {width}x{height}x{args.frames}: latent {list(shape)}, {tokens} image tokens per pass")

    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times: list[float] = []
    last = [time.perf_counter()]

    def on_step(done: int, total: int, _latents) -> None:
        if cuda:
            torch.cuda.synchronize()
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now
        print(f"step {done}/{total}: {times[-1]:.2f} s", flush=True)

    with torch.no_grad():
        denoise(model, request, on_step=on_step)
    first, rest = times[0], times[1:]
    per_step = sum(rest) / len(rest) if rest else first
    print(f"seconds per step (2 CFG passes): {per_step:.2f} (first step {first:.2f}); 30 steps ~ {30 * per_step / 60:.1f} min")
    if cuda:
        print(f"peak GPU memory allocated: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB, "
              f"reserved: {torch.cuda.max_memory_reserved() / 2**30:.2f} GiB "
              f"(device total {torch.cuda.get_device_properties(device).total_memory / 2**30:.0f} GiB)")
    print(f"options: dtype={args.dtype} offload={args.offload} fp8={args.fp8} attention={args.attention}")


if __name__ == "__main__":
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    main()
