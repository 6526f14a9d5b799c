"""HunyuanCustomPrompt: texts + subject word + reference image(s) -> one HYC_PROMPT value."""

from __future__ import annotations

from typing import Any

from ..pipelines import schema
from .widgets import validation_message, widget

_IMAGE_TOOLTIP = (
    "Reference image of the subject (e.g. from HunyuanCustom Load Reference Image): a cut-out "
    "subject on white works best. Of a batch only the first frame is used."
)
_EXTRA_IMAGE_TOOLTIP = (
    "Optional extra subject. Multi-subject = the references are placed side by side on one white "
    "image (equal-width cells, centred); the released checkpoint was trained on ONE reference image, "
    "so this composite is what the model sees. Of a batch only the first frame is used."
)


class HunyuanCustomPrompt:
    """Bundles what both samplers (local and WaveSpeed) need to describe the video."""

    DESCRIPTION = (
        "The prompt for HunyuanCustom: what happens in the video, what to avoid, the word for the "
        "subject, and its reference image. Feed it to the local or the WaveSpeed sampler; the subject "
        "word is used by the local sampler only (WaveSpeed's request has none, so name the subject in the "
        "prompt too). With image_2/image_3 the subjects are composed side by side into one reference image."
    )
    CATEGORY = "HunyuanCustom"
    RETURN_TYPES = ("HYC_PROMPT",)
    RETURN_NAMES = ("prompt",)
    OUTPUT_TOOLTIPS = ("Texts, subject and reference image for a HunyuanCustom sampler.",)
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "prompt": widget("prompt"),
                "negative_prompt": widget("negative_prompt"),
                "subject": widget("subject"),
                "image": ("IMAGE", {"tooltip": _IMAGE_TOOLTIP}),
            },
            "optional": {
                "image_2": ("IMAGE", {"tooltip": _EXTRA_IMAGE_TOOLTIP}),
                "image_3": ("IMAGE", {"tooltip": _EXTRA_IMAGE_TOOLTIP}),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, prompt: Any = None) -> bool | str:
        # Only `prompt` (empty by default, the usual mistake): ComfyUI repeats a returned message
        # under every input named here, so naming subject/negative_prompt too blamed all three for
        # one empty prompt. The subject is checked when the node runs (in milliseconds, before any
        # sampler). A linked prompt arrives as None and is checked then too.
        return True if prompt is None else validation_message({"prompt": prompt}, schema.LOCAL)

    def build(self, prompt: str, negative_prompt: str, subject: str, image: Any,
              image_2: Any = None, image_3: Any = None) -> tuple:
        from ..pipelines.conditioning.prompt_spec import PromptSpec

        texts = schema.validate({"prompt": prompt, "negative_prompt": negative_prompt, "subject": subject},
                                schema.LOCAL, names=schema.PROMPT_FIELDS)
        images = [img for img in (image, image_2, image_3) if img is not None]
        reference = reference_image(images)
        spec = PromptSpec.create(texts["prompt"], texts["negative_prompt"], texts["subject"].strip(), reference,
                                 num_references=len(images))
        return (spec,)


def reference_image(images: list) -> Any:
    """One ComfyUI IMAGE [1,H,W,3] float32: the first frame of a single image as it is (no
    quantisation), or the side-by-side composite of several (pipelines.conditioning.reference)."""
    import torch

    from ..pipelines.conditioning.reference import compose_references, reference_size_problem

    if not images:
        raise ValueError("image: connect a reference image of the subject.")
    for name, img in zip(("image", "image_2", "image_3"), images):
        if not isinstance(img, torch.Tensor) or img.ndim != 4 or img.shape[0] < 1 or img.shape[-1] not in (3, 4):
            shape = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
            raise ValueError(f"{name}: expected a ComfyUI IMAGE [B,H,W,3], got {shape}.")
        problem = reference_size_problem(int(img.shape[2]), int(img.shape[1]))
        if problem:
            raise ValueError(f"{name}: {problem}.")
    if len(images) == 1:
        first = images[0][:1, :, :, :3]
        return first.detach().to("cpu", torch.float32).clamp(0, 1).contiguous()
    composite = compose_references(images)  # uint8 HxWx3
    return torch.from_numpy(composite).to(torch.float32).div(255).unsqueeze(0)


NODE_CLASS_MAPPINGS = {"HunyuanCustomPrompt": HunyuanCustomPrompt}
NODE_DISPLAY_NAME_MAPPINGS = {"HunyuanCustomPrompt": "HunyuanCustom Prompt"}
