"""HunyuanCustomLoadAudio: a voice or song from ComfyUI's input folder, or the pack's example song.

Core Load Audio does the same from the input folder alone; ours also lists the pack's example (so the
singing-avatar template opens and runs as it is) and decodes with the pack's ffmpeg (no PyAV).
"""

from __future__ import annotations

from . import comfy, picked_files
from ..pipelines.media.limits import DEFAULT_MAX_SECONDS


class HunyuanCustomLoadAudio:
    DESCRIPTION = (
        "Loads a voice or song for HunyuanCustom Audio (or any node that takes AUDIO): any file ffmpeg "
        "reads, a video's sound included. hunyuan_custom_examples/sung_melody.mp3 is the pack's example "
        "(a synthetic voice, 5.2 s)."
    )
    CATEGORY = "HunyuanCustom"
    RETURN_TYPES = ("AUDIO",)
    RETURN_NAMES = ("audio",)
    OUTPUT_TOOLTIPS = ("The sound at the file's own sample rate and channels.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "audio": (picked_files.choices("audio"), {
                    "audio_upload": True,
                    "tooltip": "A sound file (wav, mp3, flac, m4a...) or a video from ComfyUI's input folder, "
                               "or upload one. hunyuan_custom_examples/ holds the pack's example song.",
                }),
            },
            "optional": {  # optional: API prompts written before it was added still validate
                "max_seconds": ("INT", {
                    "default": DEFAULT_MAX_SECONDS, "min": 0, "max": 86400, "step": 1,
                    "tooltip": "Load at most this many seconds from the start (600 = 10 minutes, about 212 MB "
                               "for stereo at 44.1 kHz: every minute costs sample_rate*channels*240 bytes). "
                               "A longer file is cut, with a note; 0 = no limit but the 2 GB the decoded sound "
                               "may take.",
                }),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def IS_CHANGED(cls, audio: str, **_limits) -> str:
        return picked_files.fingerprint(audio, "audio", "audio")

    @classmethod
    def VALIDATE_INPUTS(cls, audio: str | None = None) -> bool | str:
        return picked_files.validation(audio, "audio", "audio")

    def load(self, audio: str, max_seconds: int = DEFAULT_MAX_SECONDS, unique_id: str | None = None) -> tuple:
        from ..pipelines.media.audio_io import AudioInputError, read_audio_file

        comfy.throw_if_cancelled()
        path = picked_files.path_of(audio, "audio", "audio")
        try:
            clip, cut = read_audio_file(path, what=f"audio {audio!r}", max_seconds=int(max_seconds) or None)
        except AudioInputError as exc:
            raise ValueError(str(exc)) from None
        if cut:
            comfy.note(cut, unique_id)
        return (clip.to_comfy(),)


NODE_CLASS_MAPPINGS = {"HunyuanCustomLoadAudio": HunyuanCustomLoadAudio}
NODE_DISPLAY_NAME_MAPPINGS = {"HunyuanCustomLoadAudio": "HunyuanCustom Load Audio"}
