"""HunyuanCustomEdit: adds a source video and a mask to a HYC_PROMPT (video-driven editing mode)."""

from __future__ import annotations

from typing import Any

from ..pipelines import schema
from .widgets import widgets

_MASK_TOOLTIP = (
    "White where the new subject goes, black where the source stays. A MASK batch (any segmentation "
    "node, Convert Image to Mask, ...) or a mask video as IMAGE frames (HunyuanCustom Load Video); IMAGE "
    "frames are made grey the way upstream does it (its BGR weights on RGB frames). Resized to the "
    "video; one frame applies to every frame."
)
_POSE_TOOLTIP = (
    "Optional pose frames (e.g. a DWPose preprocessor's skeleton on black, made from the source "
    "video): drawn inside the mask instead of black, so the new subject follows the pose "
    "(upstream's --pose-enhance)."
)
_AUDIO_TOOLTIP = (
    "Optional sound of the source (HunyuanCustom Load Video's or Get Video Components' audio): the "
    "Sampler's audio output passes it on, cut to the edited video's length."
)


class HunyuanCustomEdit:
    DESCRIPTION = (
        "Video editing: puts the prompt's reference subject into a source video where the mask is "
        "white (replace a person, an animal, a product...). Needs the editing checkpoint "
        "(hunyuancustom_editing_720P) in the Model Loader. The Sampler's size and num_frames decide the "
        "output: the frames used are the shortest of num_frames, the video and the mask, rounded down "
        "to 4n+1 (num_frames 0: the whole source, up to 60 s, in 129-frame windows); a source of another "
        "size is scaled to cover the size and centre-cropped. Upstream "
        "edits with 50 steps and flow shift 5."
    )
    CATEGORY = "HunyuanCustom"
    RETURN_TYPES = ("HYC_PROMPT",)
    RETURN_NAMES = ("prompt",)
    OUTPUT_TOOLTIPS = ("The prompt with the editing video: connect it to HunyuanCustom Sampler (local).",)
    FUNCTION = "edit"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "prompt": ("HYC_PROMPT", {"tooltip": "From HunyuanCustom Prompt: the texts and the subject's "
                                                     "reference image."}),
                "video": ("IMAGE", {"tooltip": "The source video's frames (HunyuanCustom Load Video, core Load Video "
                                               "-> Get Video Components, or any video loader)."}),
                "mask": ("MASK,IMAGE", {"tooltip": _MASK_TOOLTIP}),
                **widgets(schema.EDIT_FIELDS),
            },
            "optional": {
                "pose": ("IMAGE", {"tooltip": _POSE_TOOLTIP}),
                "audio": ("AUDIO", {"tooltip": _AUDIO_TOOLTIP}),
            },
        }

    def edit(self, prompt: Any, video: Any, mask: Any, expand: int, box: bool, pose: Any = None,
             audio: Any = None) -> tuple:
        from ..pipelines.conditioning.base import ConditionError
        from ..pipelines.conditioning.edit import EditCondition

        if not hasattr(prompt, "with_condition"):
            raise TypeError(f"HunyuanCustom Edit: the 'prompt' input must come from a HunyuanCustom Prompt node "
                            f"(got {type(prompt).__name__})")
        try:
            condition = EditCondition(video, mask, expand=expand, box=box, pose=pose, audio=audio)
            return (prompt.with_condition(condition),)
        except (ConditionError, schema.ParameterError) as exc:
            raise ValueError(f"HunyuanCustom Edit: {exc}") from None


NODE_CLASS_MAPPINGS = {"HunyuanCustomEdit": HunyuanCustomEdit}
NODE_DISPLAY_NAME_MAPPINGS = {"HunyuanCustomEdit": "HunyuanCustom Edit"}
