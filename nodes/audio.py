"""HunyuanCustomAudio: attaches a sound track to a prompt (the audio-driven mode)."""

from __future__ import annotations

from typing import Any

from .widgets import widget


class HunyuanCustomAudio:
    DESCRIPTION = (
        "Audio-driven mode (a talking or singing subject): attaches a voice or song to the prompt, and the "
        "local sampler moves the subject's mouth and body with it. Needs the audio checkpoint "
        "(hunyuancustom_audio_720P) and whisper-tiny in the Model Loader. The sampler's audio output carries "
        "the track cut to the video: wire it into the video saver. The sampler's num_frames 0 makes the video as "
        "long as the track (up to 60 s, in 129-frame windows). Local only (WaveSpeed has no audio input)."
    )
    CATEGORY = "HunyuanCustom"
    RETURN_TYPES = ("HYC_PROMPT",)
    RETURN_NAMES = ("prompt",)
    OUTPUT_TOOLTIPS = ("The prompt with the audio attached: connect it to HunyuanCustom Sampler (local).",)
    FUNCTION = "attach"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "prompt": ("HYC_PROMPT", {"tooltip": "From HunyuanCustom Prompt: texts and the subject's picture "
                                                     "(a cut-out face or upper body works best)."}),
                "audio": ("AUDIO", {"tooltip": (
                    "The voice or song, e.g. from HunyuanCustom Load Audio (or core Load Audio). The video's first frame starts with the track's "
                    "first sample; 129 frames are 5.16 s. Shorter audio leaves the last frames silent, longer audio "
                    "is cut (Whisper still hears up to 30 s of it, as upstream). A clear voice without music works "
                    "best.")}),
                "audio_strength": widget("audio_strength"),
            },
        }

    def attach(self, prompt: Any, audio: Any, audio_strength: float) -> tuple:
        from ..pipelines.conditioning.audio import AudioCondition

        if not hasattr(prompt, "with_condition"):
            raise TypeError(f"prompt: connect a HunyuanCustom Prompt node (got {type(prompt).__name__}).")
        return (prompt.with_condition(AudioCondition.from_comfy(audio, audio_strength)),)


NODE_CLASS_MAPPINGS = {"HunyuanCustomAudio": HunyuanCustomAudio}
NODE_DISPLAY_NAME_MAPPINGS = {"HunyuanCustomAudio": "HunyuanCustom Audio"}
