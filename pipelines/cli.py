"""Command line: `python -m hunyuan_custom generate --backend local|remote ...`.

Same schema and pipelines as the nodes. Every input is checked before any model is loaded or
any request is sent; bad input ends with one `error: ...` line on stderr and exit code 2, a
failure during the run with exit code 1, Ctrl-C with 130. The output file appears only when
complete and an existing file is never overwritten.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from . import schema


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def _default(name: str) -> str:
    """A field's default as --help shows it, with the modes that differ (from the schema)."""
    field = schema.FIELDS[name]
    other = ", ".join(f"{value} for {mode}" for mode, value in field.mode_defaults.items())
    return f"{field.default}" + (f"; {other}" if other else "")


def _help(text: str) -> str:
    return text.replace("%", "%%")  # argparse formats help with %


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hunyuan_custom", description="HunyuanCustom video generation.")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="reference image + prompt -> mp4",
                         description="Generate a video of the reference subject. Local needs the four model paths; "
                                     "remote needs WAVESPEED_API_KEY (or the config file).")
    gen.add_argument("--backend", choices=(schema.LOCAL, schema.REMOTE), default=schema.LOCAL)
    gen.add_argument("--image", required=True, help="reference image (a cut-out subject on white works best)")
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--negative-prompt", default=schema.FIELDS["negative_prompt"].default)
    gen.add_argument("--subject", default=schema.FIELDS["subject"].default,
                     help="the word for the reference subject in 'The {subject} looks like <image>'")
    gen.add_argument("--size", default=schema.FIELDS["size"].default, help="W*H, e.g. 1280*720")
    gen.add_argument("--num-frames", type=int, default=None, help=f"4n+1 (local; default {_default('num_frames')})")
    gen.add_argument("--steps", type=int, default=None, help=f"(local; default {_default('steps')})")
    gen.add_argument("--guidance-scale", type=float, default=None, help=f"(default {_default('guidance_scale')})")
    gen.add_argument("--flow-shift", type=float, default=None, help=f"(default {_default('flow_shift')})")
    gen.add_argument("--seed", type=int, default=schema.FIELDS["seed"].default, help="-1 = random (reported)")
    gen.add_argument("--disable-safety-checker", action="store_true", help="(remote) do not ask WaveSpeed to check")
    local = gen.add_argument_group("local backend")
    local.add_argument("--transformer", help="transformer checkpoint (upstream .pt, ComfyUI .safetensors, diffusers folder)")
    local.add_argument("--vae", help="VAE file or folder")
    local.add_argument("--text-encoder", help="LLaVA: folder llava-llama-3-8b-v1_1, or ComfyUI's "
                       "llava_llama3_fp16/_fp8_scaled.safetensors (then also --llava-vision, --llava-tokenizer)")
    local.add_argument("--text-encoder-2", help="CLIP-L: folder openai_clip-vit-large-patch14, or ComfyUI's "
                       "clip_l.safetensors (then also --clip-tokenizer)")
    local.add_argument("--llava-vision", help="ComfyUI's llava_llama3_vision.safetensors (models/clip_vision); "
                       "only with a single-file --text-encoder")
    local.add_argument("--llava-tokenizer", help="folder with the Llama-3 tokenizer, e.g. "
                       "ComfyUI/comfy/text_encoders/llama_tokenizer; only with a single-file --text-encoder")
    local.add_argument("--clip-tokenizer", help="folder with the CLIP tokenizer, e.g. ComfyUI/comfy/sd1_tokenizer; "
                       "only with a single-file --text-encoder-2")
    local.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    local.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default=None,
                       help="default: bfloat16 on cuda, float32 on cpu")
    local.add_argument("--offload", choices=("auto", "model", "group", "none"), default="auto",
                       help="auto: whole transformer (and text encoders) on the GPU when they fit in free VRAM, "
                            "else group offload (blocks / LLaVA layers streamed from CPU RAM)")
    local.add_argument("--fp8-mode", choices=("dequantize", "keep"), default="dequantize")
    local.add_argument("--cache", choices=schema.CACHE_NAMES, default=None,
                       help=_help("step cache (default deepcache): " + "; ".join(
                           f"{o.name}: {o.does}" for o in schema.CACHE_OPTIONS.values())
                           + ". Published speedups are HunyuanVideo T2V figures (see README, Speed)"))
    local.add_argument("--cache-threshold", type=float, default=None, metavar="X",
                       help=_help(schema.FIELDS["cache_threshold"].tooltip.replace("-1 uses", "omitted or -1 uses")))
    local.add_argument("--cache-start", type=float, default=None, metavar="F",
                       help=_help(schema.FIELDS["cache_start"].tooltip))
    local.add_argument("--cache-end", type=float, default=None, metavar="F", help=_help(schema.FIELDS["cache_end"].tooltip))
    local.add_argument("--no-deep-cache", action="store_true", help="the older spelling of --cache off")
    local.add_argument("--compile", action="store_true",
                       help="torch.compile the transformer's blocks: faster steps after a first step that compiles "
                            "(a minute or more); needs Triton on a GPU (a C++ compiler on the CPU)")
    gen.add_argument("--output", required=True, help="output .mp4 path (never overwritten)")
    return parser


def _check_output(path: str) -> Path:
    out = Path(path)
    if out.suffix.lower() != ".mp4":
        raise CliError(f"--output {path!r} must end in .mp4")
    if out.exists():
        raise CliError(f"--output {path} already exists; choose another name (files are never overwritten)")
    if not out.parent.exists():
        raise CliError(f"--output folder {out.parent} does not exist")
    if not os.access(out.parent, os.W_OK):
        raise CliError(f"--output folder {out.parent} is not writable")
    return out


def _given(**values: Any) -> dict[str, Any]:
    """The options the user gave: the others take the schema's default for the job's mode."""
    return {k: v for k, v in values.items() if v is not None}


def _remote_params(args: argparse.Namespace) -> dict[str, Any]:
    params = {"prompt": args.prompt, "negative_prompt": args.negative_prompt, "size": args.size, "seed": args.seed,
              "enable_safety_checker": not args.disable_safety_checker,
              **_given(guidance_scale=args.guidance_scale, flow_shift=args.flow_shift)}
    return schema.validate(params, schema.REMOTE, names=[*params, "guidance_scale", "flow_shift"])


def _job(args: argparse.Namespace, spec):
    """The local job: texts and sampler settings validated, defaults from the schema for the mode."""
    from .job import Job

    if args.no_deep_cache and args.cache not in (None, "off"):
        raise CliError(f"--no-deep-cache (= --cache off) contradicts --cache {args.cache}; give only --cache")
    return Job.from_params(spec, {"size": args.size, "seed": args.seed,
                                  **_given(num_frames=args.num_frames, steps=args.steps,
                                           guidance_scale=args.guidance_scale, flow_shift=args.flow_shift,
                                           cache="off" if args.no_deep_cache else args.cache,
                                           cache_threshold=args.cache_threshold, cache_start=args.cache_start,
                                           cache_end=args.cache_end, compile=args.compile or None)})


def _status(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _run_local(args: argparse.Namespace, job, output: Path) -> None:
    import torch

    from .generate import CheckpointModeError, GenerationError, LocalGenerator, ModelFiles, RuntimeOptions
    from .media.video_io import write_video

    missing = [flag for flag, value in (("--transformer", args.transformer), ("--vae", args.vae),
                                        ("--text-encoder", args.text_encoder), ("--text-encoder-2", args.text_encoder_2))
               if not value]
    if missing:
        raise CliError("the local backend needs " + ", ".join(missing))
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = args.dtype or ("bfloat16" if device == "cuda" else "float32")
    try:
        generator = LocalGenerator(
            ModelFiles(args.transformer, args.vae, args.text_encoder, args.text_encoder_2,
                       llava_vision=args.llava_vision, llava_tokenizer=args.llava_tokenizer,
                       clip_tokenizer=args.clip_tokenizer),
            RuntimeOptions(device=device, dtype=dtype, offload=args.offload, fp8_mode=args.fp8_mode),
        )
        generator.check_job(job)
    except CheckpointModeError as exc:
        raise CliError(exc.cli_message) from None
    except GenerationError as exc:
        raise CliError(str(exc)) from None
    last = {"stage": None}

    def progress(stage: str, done: int, total: int, _latents) -> None:
        if stage != last["stage"] or done == total or done % 5 == 0:
            _status(f"{stage}: {done}/{total}")
        last["stage"] = stage

    result = generator.generate(job, status=_status, progress=progress)
    write_video(output, result.frames, result.fps)
    _status(f"seed {result.seed}")


def _run_remote(params: dict[str, Any], spec, output: Path) -> None:
    from .conditioning.base import remote_refusal
    from .wavespeed.client import run_job

    refusal = remote_refusal(spec.conditions)
    if refusal:
        raise CliError(f"{refusal} Use --backend local.")
    result = run_job(params, spec.reference, output, on_status=_status)
    if result.seed is not None:
        _status(f"seed {result.seed} (as reported by WaveSpeed)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # Everything the user typed is checked before any model loads or request goes out.
        texts = schema.validate({"prompt": args.prompt, "negative_prompt": args.negative_prompt,
                                 "subject": args.subject}, schema.LOCAL, names=schema.PROMPT_FIELDS)
        params = _remote_params(args) if args.backend == schema.REMOTE else None
        output = _check_output(args.output)
        from .conditioning.prompt_spec import PromptSpec
        from .media.image_io import ImageLoadError, load_image_file

        try:
            reference = load_image_file(args.image).image
        except ImageLoadError as exc:
            raise CliError(str(exc)) from None
        spec = PromptSpec.create(texts["prompt"], texts["negative_prompt"], texts["subject"].strip(), reference)
        if args.backend == schema.LOCAL:
            _run_local(args, _job(args, spec), output)
        else:
            _run_remote(params, spec, output)
    except (CliError, schema.ParameterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: cancelled; no output was written", file=sys.stderr)
        return 130
    except Exception as exc:  # a clear line, never a traceback (set HYC_DEBUG=1 for one)
        if os.environ.get("HYC_DEBUG"):
            raise
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(str(output))
    return 0
