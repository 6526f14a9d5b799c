"""HunyuanCustomLoadAudio: a voice or song from ComfyUI's input folder, or the pack's example song.

Core Load Audio does the same from the input folder alone; ours also lists the pack's example (so the
singing-avatar template opens and runs as it is) and decodes with the pack's ffmpeg (no PyAV).
"""

from __future__ import annotations

from . import comfy, picked_files


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
        }

    @classmethod
    def IS_CHANGED(cls, audio: str) -> str:
        return picked_files.fingerprint(audio, "audio", "audio")

    @classmethod
    def VALIDATE_INPUTS(cls, audio: str | None = None) -> bool | str:
        return picked_files.validation(audio, "audio", "audio")

    def load(self, audio: str) -> tuple:
        from ..pipelines.media.audio_io import AudioInputError, load_audio_file

        comfy.throw_if_cancelled()
        path = picked_files.existing_path(audio, "audio", "audio")
        try:
            return (load_audio_file(path, what=f"audio {audio!r}").to_comfy(),)
        except AudioInputError as exc:
            raise ValueError(str(exc)) from None


NODE_CLASS_MAPPINGS = {"HunyuanCustomLoadAudio": HunyuanCustomLoadAudio}
NODE_DISPLAY_NAME_MAPPINGS = {"HunyuanCustomLoadAudio": "HunyuanCustom Load Audio"}
