"""HunyuanCustomModelLoader: picks the four model parts from ComfyUI's model folders.

Nothing is loaded here: the output (HYC_MODEL) loads each part when the sampler first needs it,
so queueing a graph is instant and only the stage that runs occupies memory.
"""

from __future__ import annotations

import os

from . import comfy

WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt", ".bin", ".sft")
CATEGORY = "HunyuanCustom"


def _weights(folder: str) -> list[str]:
    return [n for n in comfy.folder_files(folder) if n.lower().endswith(WEIGHT_SUFFIXES)]


def _choices(folder: str, folders_too: bool = True) -> list[str]:
    # Folders (diffusers / upstream layouts, transformers model folders) end with "/".
    names = _weights(folder) + (comfy.folder_subdirs(folder) if folders_too else [])
    return names or [f"(no files in models/{folder})"]


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
        "llava_llama3_vision.safetensors from models/clip_vision, clip_l.safetensors)."
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
                    "auto: per stage, whole on the GPU when it fits in the free memory, else as 'group' (the "
                    "console says which). model: one stage at a time, whole, on the GPU (720p x 129 needs ~29 GB "
                    "with fp8 keep, ~41 GB in bf16). group: transformer blocks and LLaVA's layers streamed from CPU "
                    "RAM, shorter VAE decode tiles if needed (720p on 24 GB cards; needs the models' size in free "
                    "CPU RAM). none: everything stays on the GPU (80 GB class).")}),
                "attention": (["default", "native", "flash", "sage", "_native_cudnn"], {"default": "default", "tooltip": (
                    "Attention kernel (diffusers' dispatcher). flash/sage need those packages installed.")}),
            },
            # Optional and last, so workflows saved before it keep their widget order.
            "optional": {
                "llava_vision": (["auto"] + _weights("clip_vision"), {"default": "auto", "tooltip": (
                    "models/clip_vision: the LLaVA vision tower, llava_llama3_vision.safetensors. Only for a "
                    "single-file text_encoder (a LLaVA folder has it inside). auto: the clip_vision file that "
                    "holds the LLaVA projector.")}),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, transformer=None, vae=None, text_encoder=None, text_encoder_2=None):
        # Only the four file inputs: ComfyUI skips its own combo check for every input named here
        # (and for ALL inputs if this took **kwargs, letting dtype='float64' through /prompt), and
        # it repeats a returned message under each input named here.
        for key, folder, name in (("transformer", "diffusion_models", transformer), ("vae", "vae", vae),
                                  ("text_encoder", "text_encoders", text_encoder),
                                  ("text_encoder_2", "text_encoders", text_encoder_2)):
            if name is None:
                continue
            try:
                comfy.resolve_model_path(folder, name)
            except FileNotFoundError as exc:
                return f"{key}: {exc}"  # named, as ComfyUI shows this under each of the four inputs
        return True

    def load(self, transformer, vae, text_encoder, text_encoder_2, dtype="bfloat16", fp8_mode="dequantize",
             offload="auto", attention="default", llava_vision="auto"):
        from ..pipelines.generate import GenerationError, LocalGenerator, ModelFiles, RuntimeOptions

        llava_path = comfy.resolve_model_path("text_encoders", text_encoder)
        clip_path = comfy.resolve_model_path("text_encoders", text_encoder_2)
        llava_tokenizer, clip_tokenizer = comfy.tokenizer_folders()
        files = ModelFiles(
            transformer=comfy.resolve_model_path("diffusion_models", transformer),
            vae=comfy.resolve_model_path("vae", vae),
            text_encoder=llava_path,
            text_encoder_2=clip_path,
            llava_vision=_vision_file(llava_path, llava_vision),
            llava_tokenizer=llava_tokenizer if os.path.isfile(llava_path) else None,
            clip_tokenizer=clip_tokenizer if os.path.isfile(clip_path) else None,
        )
        device = str(comfy.torch_device())
        if device == "cpu" and dtype != "float32":
            dtype = "float32"  # CPU kernels for bf16 attention are slow and not what users expect
        try:
            return (LocalGenerator(files, RuntimeOptions(device=device, dtype=dtype, fp8_mode=fp8_mode,
                                                         offload=offload, attention=attention)),)
        except GenerationError as exc:
            raise RuntimeError(str(exc)) from None


NODE_CLASS_MAPPINGS = {"HunyuanCustomModelLoader": HunyuanCustomModelLoader}
NODE_DISPLAY_NAME_MAPPINGS = {"HunyuanCustomModelLoader": "HunyuanCustom Model Loader"}
