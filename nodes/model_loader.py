"""HunyuanCustomModelLoader: picks the four model parts from ComfyUI's model folders.

Nothing is loaded here: the output (HYC_MODEL) loads each part when the sampler first needs it,
so queueing a graph is instant and only the stage that runs occupies memory.
"""

from __future__ import annotations

import os

from . import comfy
from ..pipelines.parallel.plan import GPU_CHOICES
from .validation import refuse

WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt", ".bin", ".sft")
CATEGORY = "HunyuanCustom"
WHISPER_DOWNLOAD = ("Download the folder openai/whisper-tiny from Hugging Face into "
                    "ComfyUI/models/audio_encoders/whisper-tiny/, refresh the page (R) and pick it")


def _weights(folder: str) -> list[str]:
    return [n for n in comfy.folder_files(folder) if n.lower().endswith(WEIGHT_SUFFIXES)]


def _choices(folder: str, empty: list[str] | None = None) -> list[str]:
    """Each model once, in the form that loads: a model folder (ends with "/"; diffusers, transformers
    and upstream's VAE layouts) stands for the files inside it, which alone would not load (shards)
    or would load the same model twice over. A folder of transformer .pt checkpoints whose config.json
    only gives their constructor arguments does not load as a folder: its files are listed instead.
    An upstream fp8 checkpoint's scale map is part of that checkpoint, not a model."""
    files = _weights(folder)
    folders = comfy.folder_subdirs(folder)
    if folder == "diffusion_models":  # only safetensors folders load as a folder (diffusers layout)
        folders = [d for d in folders if any(f.startswith(d) and f.endswith((".safetensors", ".sft")) for f in files)]
    present = set(files)
    names = [f for f in files if not f.startswith(tuple(folders)) and not _is_fp8_map(f, present)]
    return names + folders or (empty if empty is not None else [f"(no files in models/{folder})"])


def _is_fp8_map(name: str, present: set[str]) -> bool:
    stem, _, suffix = name.rpartition(".")
    return stem.endswith("_map") and f"{stem[:-len('_map')]}.{suffix}" in present


def _vision_file(llava_path: str, choice: str | None) -> str | None:
    """The LLaVA vision file for a single-file text_encoder: the picked one, or for 'auto' the
    clip_vision file holding the LLaVA projector. None for a LLaVA folder (it has its own tower)."""
    if not os.path.isfile(llava_path):
        return None
    if choice and choice != "auto":
        return comfy.resolve_model_path("clip_vision", choice)
    from ..pipelines.text_encoders.files import TextEncoderFilesError, find_llava_vision

    candidates = [comfy.resolve_model_path("clip_vision", name) for name in _weights("clip_vision")]
    try:
        return str(find_llava_vision(candidates))
    except TextEncoderFilesError as exc:
        raise RuntimeError(str(exc)) from None


class HunyuanCustomModelLoader:
    DESCRIPTION = (
        "Chooses the HunyuanCustom transformer, VAE and text encoders for local sampling. "
        "Files are read only when the sampler runs; the format is recognised from the contents. Text encoders: "
        "upstream's transformers folders or ComfyUI's single files (llava_llama3_*.safetensors with "
        "llava_llama3_vision.safetensors from models/clip_vision, clip_l.safetensors). The audio-driven mode "
        "also needs whisper-tiny from models/audio_encoders (audio_encoder)."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("HYC_MODEL",)
    RETURN_NAMES = ("model",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "transformer": (_choices("diffusion_models"), {"tooltip": (
                    "models/diffusion_models: upstream hunyuancustom_720P/mp_rank_00_model_states.pt (or _fp8.pt "
                    "with its _fp8_map.pt beside it), ComfyUI's hunyuan_video_custom_720p_bf16/fp8_scaled "
                    ".safetensors, or a diffusers folder.")}),
                "vae": (_choices("vae"), {"tooltip": (
                    "models/vae: upstream vae_3d/hyvae_v1_0801/ folder (config.json + pytorch_model.pt), "
                    "hunyuan_video_vae_bf16.safetensors, or a diffusers folder.")}),
                "text_encoder": (_choices("text_encoders"), {"tooltip": (
                    "models/text_encoders: LLaVA-Llama-3-8B. ComfyUI's llava_llama3_fp16.safetensors or "
                    "llava_llama3_fp8_scaled.safetensors (then llava_vision is needed too), or the folder "
                    "llava-llama-3-8b-v1_1/ (xtuner/llava-llama-3-8b-v1_1-transformers).")}),
                "text_encoder_2": (_choices("text_encoders"), {"tooltip": (
                    "models/text_encoders: CLIP-L. ComfyUI's clip_l.safetensors or the folder "
                    "openai_clip-vit-large-patch14/.")}),
                "dtype": (["bfloat16", "float16", "float32"], {"default": "bfloat16", "tooltip": (
                    "Compute precision. bfloat16 is what the model was trained in; float32 only for checks.")}),
                "fp8_mode": (["dequantize", "keep"], {"default": "dequantize", "tooltip": (
                    "fp8 checkpoints only: 'keep' stores weights in fp8 (half the memory, scaled per layer at run "
                    "time); 'dequantize' converts them to the compute dtype when loading.")}),
                "offload": (["auto", "model", "group", "none"], {"default": "auto", "tooltip": (
                    "auto: each stage whole on the GPU when it fits, else 'group'. model: one stage at a time, "
                    "whole (720p: ~29 GB fp8 keep, ~41 GB bf16). group: blocks streamed from CPU RAM (720p on "
                    "24 GB). none: all on the GPU (80 GB). See README > Memory.")}),
                "attention": (["default", "native", "flash", "sage", "_native_cudnn"], {"default": "default", "tooltip": (
                    "Attention kernel (diffusers' dispatcher). flash/sage need those packages installed.")}),
            },
            # Optional and last, so workflows saved before it keep their widget order.
            "optional": {
                "llava_vision": (["auto"] + _weights("clip_vision"), {"default": "auto", "tooltip": (
                    "models/clip_vision: the LLaVA vision tower, llava_llama3_vision.safetensors. Only for a "
                    "single-file text_encoder (a LLaVA folder has it inside). auto: the clip_vision file that "
                    "holds the LLaVA projector.")}),
                # Last of all, so workflows saved before it keep their widget order.
                "audio_encoder": (["none"] + _choices("audio_encoders", empty=[]), {"default": "none", "tooltip": (
                    "models/audio_encoders: Whisper for the audio-driven mode (HunyuanCustom Audio node, with the "
                    "audio checkpoint hunyuancustom_audio_720P): the folder whisper-tiny/ (openai/whisper-tiny from "
                    "Hugging Face, as upstream downloads it) or its model.safetensors. none: no audio mode.")}),
                # After audio_encoder, so workflows saved before it keep their widget order.
                "gpus": (list(GPU_CHOICES), {"default": "1", "tooltip": (
                    "Several GPUs for one job: worker processes on the other GPUs (started with the first job, "
                    "kept warm, ended when the model is unloaded). With guidance the two passes run on two GPUs "
                    "(exact, about 2x); more GPUs split each pass's tokens (Ulysses). Each GPU holds the whole "
                    "transformer. Refused with one GPU.")}),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, transformer=None, vae=None, text_encoder=None, text_encoder_2=None, llava_vision="auto",
                        audio_encoder="none"):
        # Only the file inputs: ComfyUI skips its own combo check for every input named here (and for
        # ALL inputs if this took **kwargs, letting dtype='float64' through /prompt). The same header-only
        # check as when the sampler starts (remembered by size and mtime, so a queue reads each header
        # once): a broken or wrong file is heard of in the queue dialog, not minutes later. Problems are
        # raised, not returned: ComfyUI would repeat a returned message under each input named here
        # (nodes/validation.py).
        if None in (transformer, vae, text_encoder, text_encoder_2, llava_vision):
            return True  # a linked input: known only when the node runs, checked then
        files, problems = _model_files(transformer, vae, text_encoder, text_encoder_2, llava_vision, audio_encoder)
        problems = problems or files.problems()
        if problems:
            refuse(problems)
        return True

    def load(self, transformer, vae, text_encoder, text_encoder_2, dtype="bfloat16", fp8_mode="dequantize",
             offload="auto", attention="default", llava_vision="auto", audio_encoder="none", gpus="1"):
        from ..pipelines.generate import GenerationError, LocalGenerator, RuntimeOptions
        from ..pipelines.parallel.plan import ParallelSetupError
        from ..pipelines.parallel.workers import WorkerGenerator, worker_count

        files, problems = _model_files(transformer, vae, text_encoder, text_encoder_2, llava_vision, audio_encoder)
        if problems:
            raise RuntimeError(" ".join(problems))
        device = str(comfy.torch_device())
        if device == "cpu" and dtype != "float32":
            dtype = "float32"  # CPU kernels for bf16 attention are slow and not what users expect
        try:
            world = worker_count(str(gpus), device)
        except ParallelSetupError as exc:
            raise RuntimeError(str(exc)) from None
        options = RuntimeOptions(device=device, dtype=dtype, fp8_mode=fp8_mode, offload=offload, attention=attention)
        try:
            if world > 1:
                return (WorkerGenerator(files, options, world),)
            return (LocalGenerator(files, options),)
        except GenerationError as exc:
            raise RuntimeError(str(exc)) from None


def _model_files(transformer: str, vae: str, text_encoder: str, text_encoder_2: str, llava_vision: str,
                 audio_encoder: str | None = "none"):
    """(ModelFiles, []) for the picked names, or (None, the problems) when some cannot be found."""
    from ..pipelines.generate import ModelFiles

    paths, problems = {}, []
    for key, folder, name in (("transformer", "diffusion_models", transformer), ("vae", "vae", vae),
                              ("text_encoder", "text_encoders", text_encoder),
                              ("text_encoder_2", "text_encoders", text_encoder_2)):
        try:
            paths[key] = comfy.resolve_model_path(folder, name)
        except FileNotFoundError as exc:
            problems.append(f"{key}: {exc}")
    if audio_encoder not in (None, "none"):
        try:
            paths["audio_encoder"] = comfy.resolve_model_path("audio_encoders", audio_encoder)
        except FileNotFoundError as exc:
            problems.append(f"audio_encoder: {exc}. {WHISPER_DOWNLOAD}")
    if problems:
        return None, problems
    try:
        vision = _vision_file(paths["text_encoder"], llava_vision)
    except (FileNotFoundError, RuntimeError) as exc:
        return None, [f"llava_vision: {exc}"]
    llava_tokenizer, clip_tokenizer = comfy.tokenizer_folders()
    return ModelFiles(
        transformer=paths["transformer"], vae=paths["vae"], text_encoder=paths["text_encoder"],
        text_encoder_2=paths["text_encoder_2"], llava_vision=vision,
        llava_tokenizer=llava_tokenizer if os.path.isfile(paths["text_encoder"]) else None,
        clip_tokenizer=clip_tokenizer if os.path.isfile(paths["text_encoder_2"]) else None,
        audio_encoder=paths.get("audio_encoder"),
    ), []


NODE_CLASS_MAPPINGS = {"HunyuanCustomModelLoader": HunyuanCustomModelLoader}
NODE_DISPLAY_NAME_MAPPINGS = {"HunyuanCustomModelLoader": "HunyuanCustom Model Loader"}
