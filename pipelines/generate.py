"""Local generation, stage by stage: a Job (prompt, conditions, settings) -> video frames.

Stages run one at a time so their peaks do not add up: the text encoders load, encode and are
freed (and their result is cached: a new seed does not re-run the 8 B LLaVA); the VAE encodes the
reference (and whatever else the job's conditions need: conditioning/); the transformer samples;
the VAE decodes in tiles. Between runs the transformer and
VAE stay in CPU RAM (not VRAM), so the next run skips the disk but leaves the GPU free for others.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from . import schema
from .conditioning.base import StageContext, checkpoint_mismatch, merge_inputs
from .job import Job

if TYPE_CHECKING:
    from .diffusion_models.lora_files import LoraChoice

log = logging.getLogger(__name__)

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
_LOADER_DTYPE = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}
OFFLOAD_MODES = ("auto", "none", "model", "group")
FP8_MODES = ("dequantize", "keep")
ATTENTION_BACKENDS = ("default", "native", "flash", "sage", "_native_cudnn", "_native_flash")

StatusCallback = Callable[[str], None]
# (stage, done, total, latents); stages: "sampling" (steps), "window" (windows of a long run), "decoding" (tiles)
ProgressCallback = Callable[[str, int, int, "torch.Tensor | None"], None]


class GenerationError(RuntimeError):
    """A user-facing error of local generation (names the file or value that is wrong)."""


class CheckpointModeError(GenerationError):
    """The transformer checkpoint and the job's conditions do not go together (found from the
    checkpoint's header, before anything loads). str() is worded for ComfyUI; `cli_message` for
    the command line."""

    def __init__(self, message: str, cli_message: str):
        super().__init__(message)
        self.cli_message = cli_message


@dataclass(frozen=True)
class ModelFiles:
    """Where the model parts are (files or folders, as users download them).

    The text encoders are transformers folders (upstream's) or ComfyUI's single files; a single
    Llama-3 file also needs the LLaVA vision file and the Llama-3 tokenizer folder, clip_l the CLIP
    tokenizer folder (ComfyUI ships both tokenizers in comfy/)."""

    transformer: str
    vae: str
    text_encoder: str  # LLaVA: llava-llama-3-8b-v1_1/ folder, or llava_llama3_fp16 / _fp8_scaled.safetensors
    text_encoder_2: str  # CLIP-L: openai_clip-vit-large-patch14/ folder, or clip_l.safetensors
    llava_vision: str | None = None  # llava_llama3_vision.safetensors (with a single Llama-3 file)
    llava_tokenizer: str | None = None  # a folder with the Llama-3 tokenizer (comfy/text_encoders/llama_tokenizer)
    clip_tokenizer: str | None = None  # a folder with the CLIP tokenizer (comfy/sd1_tokenizer)
    audio_encoder: str | None = None  # whisper-tiny (audio-driven mode only)

    def check(self) -> None:
        """Fail before anything loads if a model file is missing, broken or of the wrong kind."""
        problems = self.problems()
        if problems:
            raise GenerationError(" ".join(p if p.endswith(".") else p + "." for p in problems))

    def problems(self) -> list[str]:
        """Every problem of the model files, each naming its input, from headers and metadata only:
        the container and its integrity, the keys and shapes that decide the kind, the fp8 map beside
        an fp8 checkpoint, the text encoders' kinds. Remembered by the files' size and mtime, so the
        check before every job reads each header once (weights_io.remembered_problem)."""
        from . import weights_io
        from .diffusion_models.loading import check_transformer
        from .text_encoders.files import clip_source, llava_source
        from .vae.loading import check_vae

        missing = [f"{name}: {path!r} does not exist; point it at the downloaded file or folder"
                   for name, path in (("transformer", self.transformer), ("vae", self.vae),
                                      ("text_encoder", self.text_encoder), ("text_encoder_2", self.text_encoder_2))
                   if not path or not os.path.exists(path)]
        if missing:
            return missing
        checks = (
            ("transformer", [self.transformer], lambda: check_transformer(self.transformer)),
            ("vae", [self.vae], lambda: check_vae(self.vae)),
            ("text_encoder", [self.text_encoder, self.llava_vision, self.llava_tokenizer],
             lambda: llava_source(self.text_encoder, self.llava_vision, self.llava_tokenizer)),
            ("text_encoder_2", [self.text_encoder_2, self.clip_tokenizer],
             lambda: clip_source(self.text_encoder_2, self.clip_tokenizer)),
        )
        found = []
        for name, paths, check in checks:
            problem = weights_io.remembered_problem(name, paths, check)
            if problem:  # the text encoders' messages already start with their input's name
                found.append(problem if problem.startswith(name + ":") else f"{name}: {problem}")
        return found


@dataclass(frozen=True)
class RuntimeOptions:
    """How to run: device, compute dtype, fp8 handling, offload, attention kernel."""

    device: str = "cuda"
    dtype: str = "bfloat16"
    fp8_mode: str = "dequantize"
    # none: all on device; model: one stage on the device at a time; group: block offload;
    # auto: model when the job fits in free VRAM, else group (offload_policy.py)
    offload: str = "auto"
    attention: str = "default"
    vae_tiling: bool = True  # upstream always decodes tiled (tiles only kick in above the tile size)

    def check(self) -> None:
        if self.dtype not in DTYPES:
            raise GenerationError(f"dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        if self.offload not in OFFLOAD_MODES:
            raise GenerationError(f"offload {self.offload!r} is not one of {', '.join(OFFLOAD_MODES)}")
        if self.fp8_mode not in FP8_MODES:
            raise GenerationError(f"fp8_mode {self.fp8_mode!r} is not one of {', '.join(FP8_MODES)}")
        if self.attention not in ATTENTION_BACKENDS:
            raise GenerationError(f"attention {self.attention!r} is not one of {', '.join(ATTENTION_BACKENDS)}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise GenerationError("device 'cuda' was asked for but torch sees no CUDA GPU; use device 'cpu'")

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]


@dataclass
class GenerationResult:
    frames: torch.Tensor  # [F, H, W, 3] float32 0..1 on the CPU
    fps: float
    seed: int
    latents: torch.Tensor = field(repr=False, default=None)
    audio: dict[str, Any] | None = None  # the track the video carries (a condition's), ComfyUI AUDIO
    frame_count: int = 0  # frames made (the frames were handed to `on_frames` when `frames` is empty)


def output_audio(job: Job) -> dict[str, Any] | None:
    """The track a planned job's video carries (its first condition that has one), cut to the video."""
    return next((a for c in job.spec.conditions if (a := c.output_audio(job.num_frames, schema.FPS)) is not None), None)


def llava_image_size(llava_path: str, llava_vision: str | None = None) -> int:
    """The square image size the LLaVA vision tower takes (336 for the released model): from the folder's
    config.json, or from the vision file's shapes for a single Llama-3 file."""
    if os.path.isfile(llava_path):
        from .text_encoders.files import TextEncoderFilesError, llava_image_size as from_vision_file

        if not llava_vision:
            raise GenerationError(f"text_encoder: {llava_path} is a single file; the LLaVA vision file "
                                  "(llava_llama3_vision.safetensors) is needed too")
        try:
            return from_vision_file(llava_vision)
        except TextEncoderFilesError as exc:
            raise GenerationError(f"llava_vision: {exc}") from None
    try:
        config = json.loads((Path(llava_path) / "config.json").read_text())
    except (OSError, ValueError, RecursionError) as exc:
        raise GenerationError(f"text_encoder: cannot read {Path(llava_path) / 'config.json'}: "
                              f"{'nested too deeply' if isinstance(exc, RecursionError) else exc}") from None
    return int((config.get("vision_config") or {}).get("image_size", 336))


def describe_cache(job: Job) -> str:
    """The job's step cache for the status line, saying when deepcache has nothing to do."""
    from .diffusion_models.deep_cache import UPSTREAM_REUSE_STEPS

    from .windows import window_count

    text = job.cache.describe()
    windows = window_count((job.num_frames - 1) // 4 + 1)
    if job.cache.name == "deepcache" and windows > 1:
        text += f" (does not act on a video in {windows} windows: they move every step; every step runs in full)"
    elif job.cache.name == "deepcache" and job.steps not in UPSTREAM_REUSE_STEPS:
        text += (" (acts only at 30 steps: the one step is not cached)" if job.steps == 1 else
                 f" (acts only at 30 steps: none of these {job.steps} steps is cached)")
    return text


def _reported(choice: Any, status: StatusCallback) -> Any:
    """An offload policy's choice, said on the status line and in the log."""
    status(choice.describe())
    log.info("HunyuanCustom: %s", choice.describe())
    return choice


class LocalGenerator:
    """Loads lazily, keeps the transformer/VAE between runs (in CPU RAM), generates videos."""

    def __init__(self, files: ModelFiles, options: RuntimeOptions = RuntimeOptions()):
        files.check()
        options.check()
        self.files = files
        self.options = options
        self._transformer: torch.nn.Module | None = None
        self._grouped = False  # group offloading hooks are on the transformer (they stay for its lifetime)
        self._compile_asked = False  # whether the loaded transformer was loaded for a job with compile on
        self._vae = None
        self._lock = threading.Lock()
        # The sampling loop (sampling.denoise); several processes put their session's in (parallel/).
        self.sampler: Callable[..., torch.Tensor] | None = None

    # -- loading --------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return torch.device(self.options.device)

    def transformer(self, status: StatusCallback, latent_shape: tuple[int, ...] | None = None,
                    compile: bool = False, cache: str = "deepcache", loras: tuple = ()) -> torch.nn.Module:
        """The transformer on the device (or hooked for group offloading). `latent_shape`, the step
        `cache` and the `loras` to apply let offload='auto' judge whether this job fits with the whole
        model on the GPU.
        `compile`: its blocks compiled (diffusion_models/compile_blocks.py); they are compiled under the offload
        hooks, so a change of this setting loads the transformer again."""
        if self._transformer is not None and compile != self._compile_asked:
            from .diffusion_models.compile_blocks import blocks_compiled

            if compile or blocks_compiled(self._transformer):
                status(f"compile turned {'on' if compile else 'off'}: loading the transformer again")
                self._transformer, self._grouped = None, False
            self._compile_asked = compile
        if self._transformer is None:
            from .diffusion_models.loading import load_transformer

            status(f"loading transformer {Path(self.files.transformer).name}")
            model = load_transformer(self.files.transformer, dtype=_LOADER_DTYPE[self.options.dtype],
                                     fp8_mode=self.options.fp8_mode, device="cpu")
            model.eval().requires_grad_(False)
            if self.options.attention != "default":
                model.set_attention_backend(self.options.attention)
            if compile:
                self._compile(model, status)  # before group offloading hooks onto the blocks
            self._transformer, self._compile_asked = model, compile
        if (not self._grouped and self.device.type == "cuda"
                and self._offload_mode(latent_shape, status, cache, loras) == "group"):
            from .offload_policy import stream_transformer_blocks

            stream_transformer_blocks(self._transformer, self.device)
            self._grouped = True
        if not self._grouped:
            self._transformer.to(self.device)
        return self._transformer

    def apply_loras(self, model: torch.nn.Module, loras: tuple, status: StatusCallback) -> None:
        from .diffusion_models.lora_files import LoraError
        from .diffusion_models.lora_runtime import apply_loras, place_loras

        try:
            apply_loras(model, loras, status)
        except LoraError as exc:
            raise GenerationError(f"lora: {exc}") from None
        place_loras(model, self.device, self.options.torch_dtype)

    def _compile(self, model: torch.nn.Module, status: StatusCallback) -> None:
        from .diffusion_models.compile_blocks import compile_blocks, compile_unavailable_reason

        reason = compile_unavailable_reason(self.device)
        if reason:
            message = f"compile is on, but {reason}: the transformer runs uncompiled (turn compile off to hide this)"
            status(message)
            log.warning("HunyuanCustom: %s", message)
            return
        compile_blocks(model)
        status("compile: the transformer's blocks compile during the first step (a minute or more)")

    def _offload_mode(self, latent_shape: tuple[int, ...] | None, status: StatusCallback,
                      cache: str = "deepcache", loras: tuple = ()) -> str:
        if self.options.offload != "auto":
            return self.options.offload
        from .diffusion_models.lora_files import lora_bytes
        from .diffusion_models.lora_runtime import placed_bytes
        from .diffusion_models.step_cache_memory import state_bytes
        from .offload_policy import TEXT_TOKENS, available_vram, choose_offload, module_bytes, sequence_tokens

        model = self._transformer
        if latent_shape is None:
            return "model"
        tokens = sequence_tokens(latent_shape, int(model.config.patch_size), int(model.config.patch_size_t))
        itemsize = self.options.torch_dtype.itemsize
        # What the model (and its LoRAs) already hold on the GPU from the last job is free for this one.
        available = available_vram(self.device) + module_bytes(model, self.device) + placed_bytes(model, self.device)
        state, adapters = state_bytes(cache, latent_shape, model.config, itemsize, TEXT_TOKENS), lora_bytes(loras, itemsize)
        what = " and ".join(w for w, b in ((f"{cache} state", state), ("LoRAs", adapters)) if b)
        choice = choose_offload(module_bytes(model), tokens, itemsize, available, state + adapters, what)
        return _reported(choice, status).mode

    def _text_offload_mode(self, status: StatusCallback) -> str:
        """Text encoders: "group" streams LLaVA's decoder layers from CPU RAM (~4 GiB of VRAM instead
        of ~16). 'group' asks for it; 'auto' when LLaVA + CLIP would not fit whole (sizes from the
        files' headers, before loading); 'model'/'none' never. Only on CUDA, like the transformer's."""
        if self.device.type != "cuda" or self.options.offload in ("model", "none"):
            return "model"
        if self.options.offload == "group":
            return "group"
        from .text_encoders import sizes
        from .offload_policy import available_vram, choose_text_offload

        itemsize = self.options.torch_dtype.itemsize
        choice = choose_text_offload(sizes.llava_bytes(self.files.text_encoder, itemsize, self.files.llava_vision),
                                     sizes.clip_bytes(self.files.text_encoder_2, itemsize), itemsize,
                                     available_vram(self.device))
        return _reported(choice, status).mode

    def _vae_tile_frames(self, vae, width: int, height: int, frames: int, status: StatusCallback) -> int | None:
        """Temporal decode tile for this job: with offload 'auto'/'group' on CUDA, the longest of upstream's
        64 / 32 / 16 frames that fits the free VRAM (offload_policy.choose_vae_tile_frames); None (= upstream's
        tiling, bit-identical) otherwise. Call with the VAE already on the device."""
        if self.options.offload not in ("auto", "group") or self.device.type != "cuda":
            return None
        from .offload_policy import available_vram, choose_vae_tile_frames

        choice = choose_vae_tile_frames(width, height, frames, vae.dtype.itemsize, available_vram(self.device),
                                        upstream_frames=vae.config.sample_tsize, tile_px=vae.config.sample_size)
        log.info("HunyuanCustom: %s", choice.describe())
        if not choice.is_upstream or not choice.fits:
            status(choice.describe())
        return None if choice.is_upstream else choice.tile_frames

    def vae(self, status: StatusCallback):
        if self._vae is None:
            from .vae.loading import load_vae

            status(f"loading VAE {Path(self.files.vae).name}")
            self._vae = load_vae(self.files.vae, dtype=self.options.torch_dtype, device="cpu")
        return self._vae.to(self.device)

    def release(self) -> None:
        """Give the GPU back after a run, an error or a Cancel (weights stay in CPU RAM)."""
        if self._transformer is not None:
            from .diffusion_models.lora_runtime import drop_device_copies

            drop_device_copies(self._transformer)  # the LoRA branches' tensors (the branches stay on)
        if self.device.type != "cpu":
            if self._transformer is not None and not self._grouped:
                self._transformer.to("cpu")
            if self._vae is not None:
                self._vae.to("cpu")
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def unload(self) -> None:
        self._transformer = None
        self._grouped = False
        self._vae = None

    def with_loras(self, loras: "tuple[LoraChoice, ...] | list[LoraChoice]") -> "WithLoras":
        """This generator (its loaded models shared) running with `loras` on top."""
        return WithLoras(self, tuple(loras))

    @staticmethod
    def check_loras(loras: "tuple[LoraChoice, ...] | list[LoraChoice]", status: StatusCallback | None = None) -> None:
        """Each LoRA file from its header (format, refusals), before anything loads; a partial match is said."""
        from .diffusion_models.lora_files import LoraError, check_lora

        for lora in loras:
            try:
                warning = check_lora(lora.path)
            except LoraError as exc:
                raise GenerationError(f"lora: {exc}") from None
            if warning and status:
                status(warning)

    # -- generation -----------------------------------------------------------------------------
    def check_job(self, job: Job) -> None:
        """Everything about the job that can fail before loading: the transformer's variant (from
        its header) against the conditions, and each condition's own checks."""
        from .diffusion_models.checkpoints import CheckpointError, checkpoint_variant

        self.files.check()  # again: a file may have changed since the generator was made (remembered otherwise)
        try:
            have = checkpoint_variant(self.files.transformer)
        except (CheckpointError, OSError) as exc:
            raise GenerationError(f"transformer: {exc}") from None
        message = checkpoint_mismatch(have, job.spec.conditions)
        if message:
            raise CheckpointModeError(message, checkpoint_mismatch(have, job.spec.conditions, cli=True))
        for condition in job.spec.conditions:
            condition.check(self.files)
        from .diffusion_models.step_cache import cache_unavailable_reason

        reason = cache_unavailable_reason(job.cache.name)
        if reason:
            raise GenerationError(reason)

    def generate(
        self,
        job: Job,
        *,
        status: StatusCallback | None = None,
        progress: ProgressCallback | None = None,
        check_cancel: Callable[[], None] | None = None,
        loras: "tuple[LoraChoice, ...] | list[LoraChoice]" = (),
        on_frames: Callable[[torch.Tensor], None] | None = None,
    ) -> GenerationResult:
        """Generate one video. The job was validated when it was made (Job.from_params); here the
        conditions plan it and the checkpoint is checked against them, before anything loads.
        `loras` run on top of the transformer as it was loaded (diffusion_models/lora_runtime.py):
        another list or strength next time changes no weight and reads no checkpoint again.
        `on_frames`: takes the decoded frames part by part as uint8 [f, H, W, 3] (the result's
        `frames` is then empty), so a writer can stream them: RAM holds one decode tile of frames."""
        say = status or (lambda _text: None)
        cancel = check_cancel or (lambda: None)
        self.check_job(job)
        self.check_loras(loras)
        job, notes = job.planned()
        for note in notes:
            say(note)
            log.info("HunyuanCustom: %s", note)
        from .sampling import windowed_cache_refusal

        refusal = windowed_cache_refusal(job.cache.name, (job.num_frames - 1) // 4 + 1)
        if refusal:  # before anything loads
            raise GenerationError(refusal)
        with self._lock:
            try:
                return self._generate(job, say, progress, cancel, tuple(loras), on_frames)
            finally:
                self.release()

    def _generate(self, job: Job, say: StatusCallback, progress: ProgressCallback | None,
                  cancel: Callable[[], None], loras: tuple = (),
                  on_frames: Callable[[torch.Tensor], None] | None = None) -> GenerationResult:
        from .conditioning.reference import llava_pixel_values, uncond_llava_pixel_values
        from .sampling import DenoiseRequest, denoise, initial_noise, latent_shape
        from .windows import one_window, window_count
        from .text_encoders.cache import encode_text_conditioning

        spec = job.spec
        dtype = self.options.torch_dtype
        image_size = llava_image_size(self.files.text_encoder, self.files.llava_vision)
        cancel()
        text = encode_text_conditioning(
            self.files.text_encoder, self.files.text_encoder_2, prompt=spec.prompt,
            negative_prompt=spec.negative_prompt, subject=spec.subject,
            pixel_values=llava_pixel_values(spec.reference, size=image_size),
            uncond_pixel_values=uncond_llava_pixel_values(size=image_size) if job.uses_cfg else None,
            do_cfg=job.uses_cfg, dtype=dtype, device=self.device, status=say,
            offload=lambda: self._text_offload_mode(say), llava_vision=self.files.llava_vision,
            llava_tokenizer=self.files.llava_tokenizer, clip_tokenizer=self.files.clip_tokenizer,
        )
        cancel()
        ctx = StageContext(width=job.width, height=job.height, num_frames=job.num_frames, seed=job.seed,
                           device=self.device, dtype=dtype, files=self.files,
                           generator=torch.Generator("cpu").manual_seed(job.seed),
                           vae_tiled=self.options.vae_tiling, status=say, cancel=cancel)
        inputs: dict[str, Any] = {}
        for condition in spec.conditions:  # e.g. audio features, before the VAE takes the device
            merge_inputs(inputs, condition.encode(ctx))
            cancel()

        vae = self.vae(say)
        for condition in spec.conditions:  # the reference first: the generator's draws follow this order
            merge_inputs(inputs, condition.encode_latents(vae, ctx))
        if self.options.offload != "none":
            vae.to("cpu")

        # Offload 'auto' judges one window: a longer video runs window after window (windows.py).
        model = self.transformer(say, one_window(latent_shape(job.num_frames, job.height, job.width)),
                                 compile=job.compile, cache=job.cache.name, loras=tuple(loras))
        self.apply_loras(model, loras, say)
        shape = latent_shape(job.num_frames, job.height, job.width, channels=int(model.config.in_channels))
        windows = window_count(shape[2])
        in_windows = f" in {windows} windows of 129 frames" if windows > 1 else ""
        say(f"sampling {job.steps} step{'' if job.steps == 1 else 's'}{in_windows}, seed {job.seed}, "
            f"{describe_cache(job)}")
        request = DenoiseRequest(
            latents=initial_noise(job.seed, shape), text=text, steps=job.steps, flow_shift=job.flow_shift,
            guidance_scale=job.guidance_scale, cache=job.cache, **inputs,
        )
        on_step = (lambda i, n, x: progress("sampling", i, n, x)) if progress else None
        # A windowed run also reports each window ("window", windows done, windows in the run).
        on_window = (lambda i, n: progress("window", i, n, None)) if progress and windows > 1 else None
        with torch.no_grad():
            try:
                latents = (self.sampler or denoise)(model, request, on_step=on_step, check_cancel=cancel,
                                                    on_window=on_window)
            except Exception as exc:
                from .diffusion_models.compile_blocks import is_compile_error

                if job.compile and is_compile_error(exc):
                    first = (str(exc).strip().splitlines() or [""])[0][:300]
                    raise GenerationError(f"compile: torch could not compile the transformer's blocks "
                                          f"({type(exc).__name__}: {first}); turn compile off") from exc
                raise
        if self.options.offload != "none" and not self._grouped and self.device.type != "cpu":
            model.to("cpu")
            torch.cuda.empty_cache()

        vae = self.vae(say)
        tiled = self.options.vae_tiling
        tile_frames = self._vae_tile_frames(vae, job.width, job.height, job.num_frames, say) if tiled else None
        say("decoding video")

        def on_tile(done: int, total: int) -> None:
            cancel()
            if progress:
                progress("decoding", done, total, None)

        # Part by part as the temporal tiles finish (bit for bit the whole decode): the device never
        # holds the whole video, and with `on_frames` neither does the CPU.
        frames = None if on_frames is not None else torch.empty(job.num_frames, job.height, job.width, 3)
        count = 0
        for video in vae.decode_parts((latents / vae.scaling_factor).to(vae.dtype), tiled=tiled, on_tile=on_tile,
                                      tile_frames=tile_frames):
            # To the CPU first: each float32 copy of a whole 720p x 129 video is 1.3 GiB of VRAM otherwise.
            part = (video.cpu().float() / 2 + 0.5).clamp(0, 1)[0].permute(1, 2, 3, 0).contiguous()
            del video
            if on_frames is not None:
                on_frames((part * 255.0).round().to(torch.uint8))  # as video_io.frames_to_uint8 rounds
            else:
                frames[count:count + part.shape[0]] = part  # no second whole copy (a cat of the parts)
            count += part.shape[0]
        if frames is None:
            frames = torch.empty(0, job.height, job.width, 3)
        elif count != frames.shape[0]:  # the VAE and the job disagree: a bug, not a user error
            raise RuntimeError(f"the VAE decoded {count} frames, the job has {frames.shape[0]}")
        audio = output_audio(job)
        return GenerationResult(frames=frames, fps=float(schema.FPS), seed=job.seed, latents=latents.cpu(),
                                audio=audio, frame_count=count)


class WithLoras:
    """A LocalGenerator with LoRAs on top (the HYC_MODEL a LoRA node outputs): the same loaded models, so
    another LoRA list or strength never loads the transformer again. Everything else is the generator's."""

    def __init__(self, base: LocalGenerator, loras: tuple) -> None:
        self.base, self.loras = base, tuple(loras)

    def with_loras(self, loras) -> "WithLoras":
        return WithLoras(self.base, self.loras + tuple(loras))

    def generate(self, job: Job, **kwargs: Any) -> GenerationResult:
        return self.base.generate(job, loras=self.loras + tuple(kwargs.pop("loras", ())), **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name in ("base", "loras"):  # not set yet (copy/pickle): no recursion
            raise AttributeError(name)
        return getattr(self.base, name)
