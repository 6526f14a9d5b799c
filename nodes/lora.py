"""HunyuanCustomLoRA: one LoRA from ComfyUI's models/loras on top of a HYC_MODEL (chainable).

Nothing loads here: the output is the same generator with the LoRA added to its list; the sampler
applies the list as runtime branches (pipelines/diffusion_models/lora_runtime.py), so another LoRA or
strength next run does not load the transformer again.
"""

from __future__ import annotations

from . import comfy
from .model_loader import CATEGORY, WEIGHT_SUFFIXES

FOLDER = "loras"


def _choices() -> list[str]:
    names = [n for n in comfy.folder_files(FOLDER) if n.lower().endswith(WEIGHT_SUFFIXES)]
    return names or [f"(no files in models/{FOLDER})"]


def _path(lora_name: str) -> str:
    """The file a picked name stands for, inside models/loras only (comfy.resolve_model_path)."""
    try:
        return comfy.resolve_model_path(FOLDER, lora_name)
    except FileNotFoundError as exc:
        raise ValueError(str(exc)) from None


def _problem(lora_name: str) -> str | None:
    """What is wrong with the picked file, from its header (remembered until the file changes)."""
    from ..pipelines import weights_io
    from ..pipelines.diffusion_models.lora_files import check_lora

    try:
        path = _path(lora_name)
    except ValueError as exc:
        return str(exc)
    return weights_io.remembered_problem("lora", [path], lambda: check_lora(path))


class HunyuanCustomLoRA:
    DESCRIPTION = (
        "Adds a HunyuanVideo LoRA (models/loras) to the model; chain several. Formats: musubi-tuner/kohya, "
        "diffusion-pipe/original PEFT, diffusers, ComfyUI saves. The LoRA runs beside the weights, so changing "
        "LoRAs or strengths does not reload the transformer. HunyuanVideo T2V LoRAs were trained without the "
        "reference image: how well they work on HunyuanCustom is untested here."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("HYC_MODEL",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The model with this LoRA added: into the sampler or another HunyuanCustom LoRA node.",)
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("HYC_MODEL", {"tooltip": "From HunyuanCustom Model Loader or another HunyuanCustom LoRA."}),
                "lora_name": (_choices(), {"tooltip": (
                    "models/loras: a HunyuanVideo (13B) LoRA .safetensors. Wan, Flux, SD, HunyuanVideo 1.5 LoRAs and "
                    "LyCORIS LoHa/LoKr files are refused with a message saying what they are.")}),
                "strength": ("FLOAT", {"default": 1.0, "min": -2.0, "max": 2.0, "step": 0.05, "tooltip": (
                    "How much of the LoRA: 1 as trained, 0 off, negative to push away from it.")}),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, lora_name=None):
        # Only lora_name: ComfyUI then skips its own combo check for it (our check covers that) but still
        # checks strength's range. The header is read here, so a wrong file is heard of in the queue dialog.
        # The message goes out as it is: ComfyUI puts "lora_name - " before it.
        if lora_name is None:
            return True
        return _problem(lora_name) or True

    def apply(self, model, lora_name, strength=1.0):
        from ..pipelines.diffusion_models.lora_files import LoraChoice

        if not hasattr(model, "with_loras"):
            raise TypeError(f"the 'model' input must come from HunyuanCustom Model Loader (got {type(model).__name__})")
        problem = _problem(lora_name)
        if problem:
            raise ValueError(f"lora_name: {problem}")
        return (model.with_loras([LoraChoice(_path(lora_name), float(strength))]),)


NODE_CLASS_MAPPINGS = {"HunyuanCustomLoRA": HunyuanCustomLoRA}
NODE_DISPLAY_NAME_MAPPINGS = {"HunyuanCustomLoRA": "HunyuanCustom LoRA"}
