"""Load-time and peak-memory benchmark for the transformer loader (a script, not a test).

Builds a synthetic checkpoint with full-size HunyuanCustom shapes (hidden 3072, 24 heads, text dims
4096/768), truncated to a few blocks so it is about 2.4 GB in bf16, first in the upstream `.pt`
layout (`module` dict), then as ComfyUI-style safetensors. Each is loaded through
`transformer_loading.load_transformer` in a fresh subprocess, which then reads every weight once
(so memory-mapped pages count), and reports time and peak RSS (VmHWM / ru_maxrss). Only one checkpoint
exists at a time and the temp folder is deleted at the end.

    python benchmarks/load_benchmark.py [--double 2] [--single 1] [--dtype keep] [--dir /tmp]

Goal: peak RSS <= 1.25 x the file size (dtype "keep"; a dtype change needs the new copy too).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    from . import _pack  # imported as hunyuan_custom.benchmarks.<name> (the tests)
except ImportError:
    import _pack  # run as a script: benchmarks/ is sys.path[0]

ROOT = Path(__file__).resolve().parents[1]
HIDDEN, HEADS, TEXT_DIM, POOLED_DIM, MLP, LATENT = 3072, 24, 4096, 768, 4, 16


def upstream_shapes(double: int, single: int) -> dict[str, tuple[int, ...]]:
    """Upstream key -> shape for a HYVideo-T/2 transformer with `double` + `single` blocks."""
    h, d, m = HIDDEN, HIDDEN // HEADS, HIDDEN * MLP
    shapes: dict[str, tuple[int, ...]] = {}

    def linear(name: str, out_f: int, in_f: int) -> None:
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (out_f, in_f), (out_f,)

    shapes["img_in.proj.weight"], shapes["img_in.proj.bias"] = (h, LATENT, 1, 2, 2), (h,)
    linear("txt_in.input_embedder", h, TEXT_DIM)
    linear("txt_in.t_embedder.mlp.0", h, 256)
    linear("txt_in.t_embedder.mlp.2", h, h)
    linear("txt_in.c_embedder.linear_1", h, TEXT_DIM)
    linear("txt_in.c_embedder.linear_2", h, h)
    for i in range(2):
        p = f"txt_in.individual_token_refiner.blocks.{i}"
        for norm in ("norm1", "norm2"):
            shapes[f"{p}.{norm}.weight"], shapes[f"{p}.{norm}.bias"] = (h,), (h,)
        linear(f"{p}.self_attn_qkv", 3 * h, h)
        linear(f"{p}.self_attn_proj", h, h)
        linear(f"{p}.mlp.fc1", m, h)
        linear(f"{p}.mlp.fc2", h, m)
        linear(f"{p}.adaLN_modulation.1", 2 * h, h)
    linear("time_in.mlp.0", h, 256)
    linear("time_in.mlp.2", h, h)
    linear("vector_in.in_layer", h, POOLED_DIM)
    linear("vector_in.out_layer", h, h)
    for i in range(double):
        for s in ("img", "txt"):
            p = f"double_blocks.{i}.{s}"
            linear(f"{p}_mod.linear", 6 * h, h)
            linear(f"{p}_attn_qkv", 3 * h, h)
            shapes[f"{p}_attn_q_norm.weight"] = shapes[f"{p}_attn_k_norm.weight"] = (d,)
            linear(f"{p}_attn_proj", h, h)
            linear(f"{p}_mlp.fc1", m, h)
            linear(f"{p}_mlp.fc2", h, m)
    for i in range(single):
        p = f"single_blocks.{i}"
        linear(f"{p}.linear1", 3 * h + m, h)
        linear(f"{p}.linear2", h, h + m)
        shapes[f"{p}.q_norm.weight"] = shapes[f"{p}.k_norm.weight"] = (d,)
        linear(f"{p}.modulation.linear", 3 * h, h)
    linear("final_layer.linear", LATENT * 4, h)
    linear("final_layer.adaLN_modulation.1", 2 * h, h)
    return shapes


def config_json(double: int, single: int) -> dict:
    """The fixtures' config.json format for the truncated full-size model."""
    return {
        "constructor_kwargs": {
            "patch_size": [1, 2, 2], "in_channels": LATENT, "out_channels": LATENT, "hidden_size": HIDDEN,
            "mlp_width_ratio": float(MLP), "mlp_act_type": "gelu_tanh", "num_heads": HEADS,
            "depth_double_blocks": double, "depth_single_blocks": single, "rope_dim_list": [16, 56, 56],
            "qkv_bias": True, "qk_norm": True, "qk_norm_type": "rms", "guidance_embed": False,
            "video_condition": False, "audio_condition": False,
        },
        "args_namespace": {"text_projection": "single_refiner", "text_states_dim": TEXT_DIM,
                           "text_states_dim_2": POOLED_DIM, "use_attention_mask": True},
    }


def make_state_dict(double: int, single: int):
    import torch

    gen = torch.Generator().manual_seed(0)
    sd = {}
    for key, shape in upstream_shapes(double, single).items():
        t = torch.empty(shape, dtype=torch.bfloat16)
        t.normal_(0.0, 0.02, generator=gen)
        sd[key] = t
    return sd


# ----------------------------------------------------------------------------------------------
# child process: load, read every weight, report


def peak_rss() -> int:
    """Peak resident memory of this process in bytes.

    VmHWM (Linux) belongs to the current address space, so it starts fresh in the child; ru_maxrss
    is kept across fork+exec and would start at the parent's size.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def quantize_blocks(sd: dict) -> dict:
    """Upstream --use-fp8 layout: block Linears as float8_e4m3fn, per-module scale in the map's `module`."""
    import torch

    scales = {}
    for key, w in sd.items():
        if key.startswith(("double_blocks.", "single_blocks.")) and key.endswith(".weight") and w.ndim == 2:
            scale = w.abs().max().float() / torch.finfo(torch.float8_e4m3fn).max
            sd[key] = (w.float() / scale).to(torch.float8_e4m3fn)
            scales[key[: -len(".weight")]] = scale
    return {"module": scales}


def child(path: str, dtype: str, fp8_mode: str = "dequantize") -> None:
    import torch

    torch.set_num_threads(1)
    _pack.import_pack()
    from hunyuan_custom.pipelines.diffusion_models.loading import load_transformer

    import diffusers  # noqa: F401  (imported before the baseline so it is not counted as weights)
    import accelerate  # noqa: F401

    baseline = peak_rss()
    t0 = time.perf_counter()
    model = load_transformer(path, dtype=dtype, fp8_mode=fp8_mode)
    t_load = time.perf_counter() - t0
    rss_after_load = peak_rss()
    t0 = time.perf_counter()
    checksum = 0.0
    with torch.no_grad():
        for p in model.parameters():  # read every weight once: mapped pages now count in RSS
            flat = p.view(torch.uint8) if p.element_size() == 1 else p  # no amax kernel for float8 on CPU
            checksum += float(torch.amax(flat))  # reads every element without a temporary copy
    t_touch = time.perf_counter() - t0
    peak = peak_rss()
    n_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    print(json.dumps({
        "format": model.hyc_checkpoint_format, "load_s": t_load, "read_all_s": t_touch,
        "baseline_rss": baseline, "peak_rss_after_load": rss_after_load, "peak_rss": peak,
        "model_bytes": n_bytes, "checksum": checksum,
    }))


# ----------------------------------------------------------------------------------------------
# parent: write, measure, delete


def measure(path: Path, dtype: str, fp8_mode: str = "dequantize") -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(path), "--dtype", dtype, "--fp8-mode", fp8_mode],
        capture_output=True, text=True,
    )
    if out.returncode:
        raise SystemExit(f"loading {path} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(label: str, path: Path, r: dict) -> None:
    size = path.stat().st_size
    gib = 1024**3
    net = r["peak_rss"] - r["baseline_rss"]
    print(
        f"{label:<30} file {size / gib:6.2f} GiB | load {r['load_s']:6.2f} s (+ read all weights {r['read_all_s']:6.2f} s) | "
        f"peak RSS {r['peak_rss'] / gib:5.2f} GiB = {r['peak_rss'] / size:4.2f}x file "
        f"(after load only {r['peak_rss_after_load'] / gib:5.2f} GiB; imports baseline {r['baseline_rss'] / gib:4.2f} GiB; "
        f"above baseline {net / gib:5.2f} GiB = {net / size:4.2f}x) | model {r['model_bytes'] / gib:5.2f} GiB [{r['format']}]",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--double", type=int, default=2, help="double-stream blocks (each ~0.68 GB bf16)")
    parser.add_argument("--single", type=int, default=1, help="single-stream blocks (each ~0.28 GB bf16)")
    parser.add_argument("--dtype", default="keep", help="keep / bf16 / fp16 / fp32")
    parser.add_argument("--dir", default=None, help="where to write the temporary checkpoints")
    parser.add_argument("--fp8", action="store_true", help="also measure an upstream fp8 .pt + _map.pt (keep / dequantize)")
    parser.add_argument("--fp8-mode", default="dequantize", help=argparse.SUPPRESS)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.dtype, args.fp8_mode)
        return

    import torch
    from safetensors.torch import save_file

    work = Path(tempfile.mkdtemp(prefix="hyc_load_bench_", dir=args.dir))
    try:
        (work / "config.json").write_text(json.dumps(config_json(args.double, args.single)))
        t0 = time.perf_counter()
        sd = make_state_dict(args.double, args.single)
        pt = work / "mp_rank_00_model_states.pt"
        torch.save({"module": sd}, pt)
        del sd
        print(f"wrote {pt.name} in {time.perf_counter() - t0:.1f} s", flush=True)
        report("upstream .pt (module)", pt, measure(pt, args.dtype))

        # the same tensors as safetensors, read back memory-mapped from the .pt, then the .pt goes
        st = work / "hunyuan_video_custom_bf16.safetensors"
        save_file(torch.load(pt, weights_only=True, mmap=True)["module"], str(st))
        pt.unlink()
        report("ComfyUI safetensors", st, measure(st, args.dtype))
        if args.fp8:
            from safetensors.torch import load_file

            sd = load_file(str(st))
            st.unlink()
            fp8 = work / "mp_rank_00_model_states_fp8.pt"
            torch.save(quantize_blocks(sd), work / "mp_rank_00_model_states_fp8_map.pt")
            torch.save({"module": sd}, fp8)
            del sd
            for mode in ("keep", "dequantize"):
                report(f"upstream fp8 .pt ({mode})", fp8, measure(fp8, args.dtype, mode))
            fp8.unlink()
        else:
            st.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
