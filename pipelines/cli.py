"""Command line: `python -m hunyuan_custom generate --backend local|remote ...`.

Same schema and pipelines as the nodes. Every input is checked before any model is loaded or
any request is sent; bad input ends with one `error: ...` line on stderr and exit code 2, a
failure during the run with exit code 1, Ctrl-C with 130. The output file appears only when
complete and an existing file is never overwritten.
"""

from __future__ import annotations

import argparse
import os
import re
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
    gen.add_argument("--backend", choices=(schema.LOCAL, schema.REMOTE), default=schema.LOCAL,
                     help=f"local: on this machine (default {schema.LOCAL}); remote: WaveSpeed's hosted model")
    gen.add_argument("--image", required=True, help="reference image (a cut-out subject on white works best)")
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--negative-prompt", default=schema.FIELDS["negative_prompt"].default,
                     help="what to avoid (default: empty, nothing to avoid)")
    # Options only one backend uses default to None, so that the other can name the ones it ignores.
    gen.add_argument("--subject", default=None, help="(local) the word(s) for the reference subject in "
                     f"'The {{subject}} looks like <image>'; default {_default('subject')}")
    gen.add_argument("--size", default=None, help=f"W*H (default {_default('size')}; with --video the source's "
                     "size, rounded down to multiples of 16)")
    gen.add_argument("--num-frames", type=int, default=None,
                     help=f"4n+1 up to {schema.MAX_FRAMES} (local; default {_default('num_frames')}; with --video the "
                     "source's length; 0: as long as --audio or --video; over 129 frames is made in windows)")
    gen.add_argument("--steps", type=int, default=None, help=f"(local; default {_default('steps')})")
    gen.add_argument("--guidance-scale", type=float, default=None, help=f"(default {_default('guidance_scale')})")
    gen.add_argument("--flow-shift", type=float, default=None, help=f"(default {_default('flow_shift')})")
    gen.add_argument("--seed", type=int, default=schema.FIELDS["seed"].default,
                     help=f"-1 = random (reported; default {schema.FIELDS['seed'].default})")
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
    audio = gen.add_argument_group("audio-driven mode (local; the audio checkpoint as --transformer)")
    audio.add_argument("--audio", metavar="FILE", help="a voice or song (wav, mp3, flac, m4a, or a video's sound) the "
                       "subject speaks or sings to; the mp4 carries it, cut to the video, as AAC")
    audio.add_argument("--audio-strength", type=float, default=None,
                       help=f"0-1 (default {schema.FIELDS['audio_strength'].default}, as upstream's scripts)")
    audio.add_argument("--audio-encoder", metavar="PATH", help="Whisper: the whisper-tiny folder (openai/whisper-tiny "
                       "from Hugging Face, as upstream downloads it) or its model.safetensors")
    local.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    local.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default=None,
                       help="default: bfloat16 on cuda, float32 on cpu")
    local.add_argument("--offload", choices=("auto", "model", "group", "none"), default=None,
                       help="auto (default): whole transformer (and text encoders) on the GPU when they fit in free "
                            "VRAM, else group offload (blocks / LLaVA layers streamed from CPU RAM)")
    local.add_argument("--fp8-mode", choices=("dequantize", "keep"), default=None,
                       help="for fp8 checkpoints only: keep = store the weights in fp8 (half the transformer's "
                            "memory, scaled per layer at run time); dequantize (default) = convert them to --dtype "
                            "when loading")
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
    local.add_argument("--parallel", choices=("auto", "cfg", "ulysses", "cfg+ulysses", "windows"), default=None,
                       help="with several processes (torchrun --nproc-per-node N -m hunyuan_custom generate ...): "
                            "how the N ranks share the job. cfg: the two guidance passes on 2 ranks (exact); ulysses: "
                            "each pass's tokens split over the ranks; auto (default): cfg first, then ulysses; "
                            "windows: not available yet. See README, Several GPUs")
    local.add_argument("--compile", action="store_true",
                       help="torch.compile the transformer's blocks: faster steps after a first step that compiles "
                            "(a minute or more); needs Triton on a GPU (a C++ compiler on the CPU)")
    local.add_argument("--lora", action="append", metavar="FILE[:STRENGTH]",
                       help="a HunyuanVideo LoRA (musubi-tuner/kohya, diffusion-pipe, diffusers or ComfyUI "
                            ".safetensors) at STRENGTH (-2..2, default 1); repeat for several")
    edit = gen.add_argument_group("editing (local, with the editing checkpoint hunyuancustom_editing_720P)")
    edit.add_argument("--video", help="source video: the reference subject is put into it where --mask is white")
    edit.add_argument("--mask", help="mask video (or one image for every frame): white where the new subject goes")
    expand = schema.FIELDS["expand"]
    edit.add_argument("--expand", type=int, default=None,
                      help=f"grow the mask by about N pixels, shrink it when negative (default {expand.default}, "
                           f"upstream's; {expand.min:g} to {expand.max:g})")
    edit.add_argument("--mask-box", action="store_true", help="fill each frame's mask out to its bounding box")
    edit.add_argument("--pose", help="pose video (e.g. a DWPose skeleton on black) drawn inside the mask")
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
    params = {"prompt": args.prompt, "negative_prompt": args.negative_prompt,
              "size": args.size or schema.FIELDS["size"].default, "seed": args.seed,
              "enable_safety_checker": not args.disable_safety_checker,
              **_given(guidance_scale=args.guidance_scale, flow_shift=args.flow_shift)}
    return schema.validate(params, schema.REMOTE, names=[*params, "guidance_scale", "flow_shift"])


def _job(args: argparse.Namespace, spec):
    """The local job: texts and sampler settings validated, defaults from the schema for the mode."""
    from .job import Job

    if args.no_deep_cache and args.cache not in (None, "off"):
        raise CliError(f"--no-deep-cache (= --cache off) contradicts --cache {args.cache}; give only --cache")
    return Job.from_params(spec, {"size": args.size or schema.FIELDS["size"].default, "seed": args.seed,
                                  **_given(num_frames=args.num_frames, steps=args.steps,
                                           guidance_scale=args.guidance_scale, flow_shift=args.flow_shift,
                                           cache="off" if args.no_deep_cache else args.cache,
                                           cache_threshold=args.cache_threshold, cache_start=args.cache_start,
                                           cache_end=args.cache_end, compile=args.compile or None)})


# Options one backend does not use: (flags, why), in the order they are reported.
_REMOTE_IGNORES = (
    (("--num-frames", "--steps"), "WaveSpeed chooses the length and the steps itself (129 frames at 25 fps)"),
    (("--subject",), "WaveSpeed's request has no subject word; name the subject in --prompt instead"),
    (("--transformer", "--vae", "--text-encoder", "--text-encoder-2", "--llava-vision", "--llava-tokenizer",
      "--clip-tokenizer", "--audio-encoder", "--device", "--dtype", "--offload", "--fp8-mode", "--no-deep-cache",
      "--cache", "--cache-threshold", "--cache-start", "--cache-end", "--compile", "--lora", "--parallel"),
     "they are options of the local backend"),
)
_LOCAL_IGNORES = ((("--disable-safety-checker",), "it is an option of the remote backend (WaveSpeed)"),)


def ignored_options(args: argparse.Namespace) -> list[str]:
    """One warning per group of given options that the chosen backend does not use."""
    groups = _REMOTE_IGNORES if args.backend == schema.REMOTE else _LOCAL_IGNORES
    warnings = []
    for flags, why in groups:
        given = [flag for flag in flags if getattr(args, flag[2:].replace("-", "_")) not in (None, False)]
        if given:
            warnings.append(f"the {args.backend} backend ignores {', '.join(given)}: {why}")
    return warnings


def _with_audio(args: argparse.Namespace, spec):
    """The spec with the --audio track attached (checked now: a bad file ends here, before any loading)."""
    from .conditioning.audio import AudioCondition
    from .conditioning.base import ConditionError

    if args.audio is None:
        if args.audio_strength is not None:
            raise CliError("--audio-strength needs --audio FILE")
        return spec
    strength = schema.check_value("audio_strength", schema.FIELDS["audio_strength"].default
                                  if args.audio_strength is None else args.audio_strength)
    try:
        return spec.with_condition(AudioCondition.from_file(args.audio, strength))
    except ConditionError as exc:
        raise CliError(f"--audio {exc}") from None


_INPUTS = r"\b(transformer|vae|text_encoder_2|text_encoder|llava_vision|audio_encoder)"


def _flag_names(message: str) -> str:
    """The model-file checks name their inputs as the nodes do ('text_encoder_2: ...', 'give it as
    text_encoder'); say the CLI's flags instead."""
    def flag(match: re.Match) -> str:
        return "--" + match.group(1).replace("_", "-")

    message = re.sub(_INPUTS + r"(?=:| takes\b)", flag, message)
    return re.sub(r"(?<=\bas )" + _INPUTS + r"\b", flag, message)


def _status(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


_EDIT_FLAGS = {"video": "--video", "mask": "--mask", "pose": "--pose", "expand": "--expand", "box": "--mask-box"}


def _edit_error(args: argparse.Namespace, exc: Exception) -> CliError:
    """A condition's message ('mask: ...') in the command line's words ('--mask m.mp4: ...')."""
    text = str(exc)
    name, sep, rest = text.partition(":")
    if sep and name in _EDIT_FLAGS:
        value = getattr(args, name if name != "box" else "mask_box", None)
        shown = f" {value}" if name in ("video", "mask", "pose") else ""
        return CliError(f"{_EDIT_FLAGS[name]}{shown}:{rest}")
    return CliError(_flag_names(text))  # e.g. 'audio_encoder: ...' -> '--audio-encoder: ...'


def _edit_condition(args: argparse.Namespace):
    """--video/--mask (+ --expand, --mask-box, --pose) as an EditCondition; with no --size or
    --num-frames, the source's size (rounded down to multiples of 16) and length are the job's."""
    from .conditioning.base import ConditionError
    from .conditioning.edit import EditCondition, frame_rate_note
    from .conditioning.edit_pixels import frames_used
    from .media.video_io import VideoError, read_audio, read_video_uint8

    if not (args.video and args.mask):
        raise CliError("editing needs both --video FILE and --mask FILE" if args.video or args.mask else
                       "--expand, --mask-box and --pose only apply with --video FILE --mask FILE")
    def read(flag: str, path: str):
        try:
            return read_video_uint8(path)
        except VideoError as exc:  # e.g. "video file not found: m.mp4": say which flag named it
            raise CliError(f"{flag}: {exc}") from None

    video, fps = read("--video", args.video)
    mask, _ = read("--mask", args.mask)
    pose = read("--pose", args.pose)[0] if args.pose else None
    try:
        audio = read_audio(args.video)
    except VideoError as exc:
        raise CliError(f"--video: {exc}") from None
    try:
        condition = EditCondition(video, mask, expand=schema.FIELDS["expand"].default if args.expand is None else args.expand,
                                  box=args.mask_box, pose=pose, audio=audio)
    except ConditionError as exc:
        raise _edit_error(args, exc) from None
    if note := frame_rate_note(fps):
        _status(f"note: {note}")
    width, height = condition.source_size
    if args.size is None:
        rounded = (width // 16 * 16, height // 16 * 16)
        if min(rounded) < 16:
            raise CliError(f"--video {args.video}: the video is {width}x{height}; editing needs at least 16x16 pixels")
        if rounded != (width, height):
            _status(f"note: the source is {width}x{height}; the edit is {rounded[0]}x{rounded[1]} (multiples of 16, "
                    "the edges cropped); --size W*H picks another size")
        args.size = f"{rounded[0]}*{rounded[1]}"
    if args.num_frames is None:
        available = frames_used(video.shape[0], mask.shape[0])
        longest = int(schema.FIELDS["num_frames"].max)
        # The smallest 4n+1 that holds every frame: the VAE then sees all of them, as upstream.
        args.num_frames = min((available + 2) // 4 * 4 + 1, longest)
        if available > longest:
            _status(f"note: the source has {available} frames; the edit uses the first {longest} "
                    "(the most the sampler makes); --num-frames N picks fewer")
    return condition


LORA_STRENGTH = (-2.0, 2.0)  # as the LoRA node's widget


def _loras(values: list[str] | None) -> list:
    """--lora FILE[:STRENGTH] values, each file's header checked (format, refusals) before anything loads.
    A trailing ':number' is the strength; any other colon belongs to the path (C:\\loras\\x.safetensors)."""
    from .diffusion_models.lora_files import LoraChoice, LoraError, check_lora

    choices = []
    for value in values or []:
        path, strength = value, 1.0
        head, sep, tail = value.rpartition(":")
        if sep and head and "/" not in tail and "\\" not in tail:
            try:
                path, strength = head, float(tail)
            except ValueError:
                pass
        if not LORA_STRENGTH[0] <= strength <= LORA_STRENGTH[1]:
            raise CliError(f"--lora {value}: strength {strength:g} is outside {LORA_STRENGTH[0]:g}..{LORA_STRENGTH[1]:g}")
        try:
            check_lora(path)  # a partial match is told once, when it is applied to the loaded transformer
        except LoraError as exc:
            raise CliError(f"--lora {value}: {exc}") from None
        choices.append(LoraChoice(path, strength))
    return choices


def _run_local(args: argparse.Namespace, job, output: Path) -> None:
    import torch

    from .conditioning.base import ConditionError
    from .generate import CheckpointModeError, GenerationError, LocalGenerator, ModelFiles, RuntimeOptions

    missing = [flag for flag, value in (("--transformer", args.transformer), ("--vae", args.vae),
                                        ("--text-encoder", args.text_encoder), ("--text-encoder-2", args.text_encoder_2))
               if not value]
    if missing:
        raise CliError("the local backend needs " + ", ".join(missing))
    loras = _loras(args.lora)
    if job.mode == "audio" and not args.audio_encoder:
        raise CliError("--audio needs --audio-encoder: Whisper, the whisper-tiny folder (openai/whisper-tiny from "
                       "Hugging Face, as upstream downloads it) or its model.safetensors")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = args.dtype or ("bfloat16" if device == "cuda" else "float32")
    from .parallel.group import world_size_from_env

    world = world_size_from_env()
    if world > 1 and device == "cuda":  # torchrun: one GPU per process
        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    elif world == 1 and args.parallel not in (None, "auto"):
        raise CliError(f"--parallel {args.parallel} needs several processes: start the command with "
                       "torchrun --nproc-per-node N -m hunyuan_custom generate ...")
    try:
        generator = LocalGenerator(
            ModelFiles(args.transformer, args.vae, args.text_encoder, args.text_encoder_2,
                       llava_vision=args.llava_vision, llava_tokenizer=args.llava_tokenizer,
                       clip_tokenizer=args.clip_tokenizer, audio_encoder=args.audio_encoder),
            RuntimeOptions(device=device, dtype=dtype, offload=args.offload or "auto",
                           fp8_mode=args.fp8_mode or "dequantize"),
        )
        generator.check_job(job)
        job, notes = job.planned()  # the conditions' own checks (e.g. an empty mask); generate says the notes,
        for note in notes:  # but of the planned job, which no longer knows that num_frames 0 chose its length
            if note.startswith(f"num_frames {schema.FOLLOW_INPUT}:"):
                _status(note)
        plan = None
        if world > 1:
            from .parallel.launch import plan_for_job
            from .parallel.plan import ParallelSetupError

            try:
                plan = plan_for_job(args.transformer, job, args.parallel or "auto", world)
            except ParallelSetupError as exc:
                raise CliError(f"{exc} (torchrun --nproc-per-node {world})") from None
    except CheckpointModeError as exc:
        raise CliError(exc.cli_message) from None
    except ConditionError as exc:
        raise _edit_error(args, exc) from None
    except GenerationError as exc:
        raise CliError(_flag_names(str(exc))) from None
    last = {"stage": None}

    def progress(stage: str, done: int, total: int, _latents) -> None:
        if stage != last["stage"] or done == total or done % 5 == 0:
            _status(f"{stage}: {done}/{total}")
        last["stage"] = stage

    if plan is not None:
        from .parallel.launch import run_job

        result = run_job(generator, job, plan, lead=lambda g: _generate_mp4(g, job, output, progress, loras),
                         status=_status, loras=loras)
        if result is not None:
            _status(f"seed {result.seed}")
        return
    result = _generate_mp4(generator, job, output, progress, loras)
    _status(f"seed {result.seed}")


def _generate_mp4(generator, job, output: Path, progress, loras: list | tuple = ()):
    """Generate the planned job straight into an H.264 mp4 (frames written as the VAE decodes them, so
    RAM holds one decode tile of frames whatever the length), with the job's audio (if any) cut to the
    video as AAC."""
    import tempfile

    from .generate import output_audio
    from .media.video_stream import VideoStream
    from .media.wav_io import write_wav

    with tempfile.TemporaryDirectory(prefix="hyc-audio-") as tmp:
        wav = None
        audio = output_audio(job)
        if audio is not None:
            wav = os.path.join(tmp, "audio.wav")
            write_wav(audio, wav, max_seconds=job.num_frames / float(schema.FPS))
        with VideoStream(output, job.width, job.height, schema.FPS, audio_path=wav) as writer:
            return generator.generate(job, status=_status, progress=progress, on_frames=writer.write, loras=loras)


def _remote_setup(spec) -> tuple[str, Any]:
    """What a remote run needs before anything is sent, checked as bad input (exit 2): a job WaveSpeed
    can render, the key, and readable WAVESPEED_* settings."""
    from .conditioning.base import remote_refusal
    from .wavespeed import config as wavespeed_config
    from .wavespeed.client import Settings

    refusal = remote_refusal(spec.conditions)
    if refusal:
        raise CliError(f"{refusal} Use --backend local.")
    try:
        return wavespeed_config.get_api_key(), Settings.from_env()
    except wavespeed_config.ConfigError as exc:
        raise CliError(str(exc)) from None


def _run_remote(params: dict[str, Any], spec, output: Path, api_key: str, settings: Any) -> None:
    import logging

    from .wavespeed.client import run_job

    # The client also logs each retry (for ComfyUI's console); here the status lines already say it.
    client_log = logging.getLogger(run_job.__module__)
    was_disabled, client_log.disabled = client_log.disabled, True
    try:
        result = run_job(params, spec.reference, output, on_status=_status, settings=settings, api_key=api_key)
    finally:
        client_log.disabled = was_disabled
    if result.seed is not None:
        _status(f"seed {result.seed} (as reported by WaveSpeed)")


def _failure_line(exc: BaseException) -> str:
    """A run-time failure in one line. The pack's own errors and OS errors already say what went
    wrong and what to do; anything else is a bug or a library's surprise, so it keeps its type."""
    text = " ".join(str(exc).split())
    package = (__package__ or "").split(".")[0]
    if text and (type(exc).__module__.split(".")[0] == package or isinstance(exc, OSError)):
        return text
    return f"unexpected failure ({type(exc).__name__}: {text or 'no message'}); set HYC_DEBUG=1 for the details"


FOLLOWER_REFUSAL_DELAY_S = 3.0


def _follower_rank() -> bool:
    """A rank other than 0 under torchrun: it works silently (rank 0 says everything once)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and int(os.environ.get("RANK", "0")) > 0


def main(argv: list[str] | None = None) -> int:
    """The command line (`python -m hunyuan_custom`, the `hunyuan-custom` script): Ctrl-C at any point,
    the first second of imports (torch, diffusers) included, ends with one line and exit code 130."""
    try:
        return _ranked_main(argv)
    except KeyboardInterrupt:
        print("error: cancelled; no output was written", file=sys.stderr)
        return 130


def _ranked_main(argv: list[str] | None) -> int:
    """Parses the flags; a follower rank under torchrun runs silently (rank 0 speaks for all)."""
    args = build_parser().parse_args(argv)
    if _follower_rank() and not os.environ.get("HYC_DEBUG"):
        import contextlib

        with open(os.devnull, "w") as quiet, contextlib.redirect_stderr(quiet), contextlib.redirect_stdout(quiet):
            code = _main(args)
        if code == 2:
            # Every rank refuses the same bad input; torchrun ends all ranks when the first one exits,
            # so a follower gives rank 0 a moment to print the message.
            import time

            time.sleep(FOLLOWER_REFUSAL_DELAY_S)
        return code
    return _main(args)


def _main(args: argparse.Namespace) -> int:
    from .conditioning.base import ConditionError

    try:
        # Everything the user typed is checked before any model loads or request goes out.
        subject = schema.FIELDS["subject"].default if args.subject is None else args.subject
        texts = schema.validate({"prompt": args.prompt, "negative_prompt": args.negative_prompt,
                                 "subject": subject}, schema.LOCAL, names=schema.PROMPT_FIELDS)
        params = _remote_params(args) if args.backend == schema.REMOTE else None
        output = _check_output(args.output)
        from .conditioning.prompt_spec import PromptSpec
        from .media.image_io import ImageLoadError, load_image_file

        from .conditioning.reference import reference_size_problem

        try:
            reference = load_image_file(args.image).image
        except ImageLoadError as exc:
            raise CliError(f"--image: {exc}") from None
        problem = reference_size_problem(int(reference.shape[2]), int(reference.shape[1]))
        if problem:
            raise CliError(f"--image {args.image}: {problem}")
        spec = PromptSpec.create(texts["prompt"], texts["negative_prompt"], texts["subject"].strip(), reference)
        if args.audio and (args.video or args.mask):  # before reading either (the spec would say it in node names)
            raise CliError("--audio cannot be combined with --video/--mask: the audio-driven mode and editing each "
                           "need their own checkpoint; keep one of them")
        if args.video or args.mask or args.pose or args.mask_box or args.expand is not None:
            spec = spec.with_condition(_edit_condition(args))
        spec = _with_audio(args, spec)
        job = _job(args, spec) if args.backend == schema.LOCAL else None
        remote = _remote_setup(spec) if job is None else None
        for warning in ignored_options(args):
            print(f"warning: {warning}", file=sys.stderr)
        if job is not None:
            _run_local(args, job, output)
        else:
            _run_remote(params, spec, output, *remote)
    except (CliError, schema.ParameterError, ConditionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: cancelled; no output was written", file=sys.stderr)
        return 130
    except Exception as exc:  # a clear line, never a traceback (set HYC_DEBUG=1 for one)
        if os.environ.get("HYC_DEBUG"):
            raise
        print(f"error: {_failure_line(exc)}", file=sys.stderr)
        return 1
    print(str(output))
    return 0
