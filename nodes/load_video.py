"""HunyuanCustomLoadVideo: a video's frames, sound and frame rate, from ComfyUI's input folder or the
pack's example videos.

Core Load Video + Get Video Components give the same from the input folder alone; ours also lists the
pack's examples (so the replace-the-subject template opens and runs as it is), decodes with the pack's
ffmpeg (no PyAV), and can stop after a number of frames so a long clip does not fill the memory.
"""

from __future__ import annotations

from . import comfy, picked_files


class HunyuanCustomLoadVideo:
    DESCRIPTION = (
        "Loads a video as IMAGE frames, its sound and its frame rate: the source of HunyuanCustom Edit, or "
        "a mask video (white where the subject goes). hunyuan_custom_examples/park_walk.mp4 and "
        "park_walk_mask.mp4 are the pack's examples (a man strolling in a park, and his mask)."
    )
    CATEGORY = "HunyuanCustom"
    RETURN_TYPES = ("IMAGE", "AUDIO", "FLOAT")
    RETURN_NAMES = ("frames", "audio", "fps")
    OUTPUT_TOOLTIPS = (
        "The frames, float RGB [F,H,W,3].",
        "The first sound track (44.1 kHz stereo), or nothing when the video has none.",
        "The video's frame rate.",
    )
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "video": (picked_files.choices("video"), {
                    "video_upload": True,
                    "tooltip": "A video from ComfyUI's input folder, or upload one. hunyuan_custom_examples/ "
                               "holds the pack's example video and its mask.",
                }),
                "frame_load_cap": ("INT", {
                    "default": 0, "min": 0, "max": 100000, "step": 1,
                    "tooltip": "Load at most this many frames from the start; 0 loads them all. The Sampler "
                               "uses at most num_frames (129 at 720p), and every loaded frame costs "
                               "width*height*12 bytes (11 MB at 1280*720): a cap keeps a long clip from "
                               "filling the memory.",
                }),
            },
        }

    @classmethod
    def IS_CHANGED(cls, video: str, frame_load_cap: int = 0) -> str:
        return picked_files.fingerprint(video, "video", "video")

    @classmethod
    def VALIDATE_INPUTS(cls, video: str | None = None) -> bool | str:
        return picked_files.validation(video, "video", "video")

    def load(self, video: str, frame_load_cap: int = 0) -> tuple:
        from ..pipelines.media import video_io

        path = picked_files.existing_path(video, "video", "video")
        try:
            frames, fps = video_io.read_video(path, should_cancel=comfy.throw_if_cancelled,
                                              max_frames=int(frame_load_cap) or None)
            audio = video_io.read_audio(path)
        except video_io.VideoError as exc:
            raise ValueError(f"video {video!r}: {exc}") from None
        return (frames, audio, float(fps))


NODE_CLASS_MAPPINGS = {"HunyuanCustomLoadVideo": HunyuanCustomLoadVideo}
NODE_DISPLAY_NAME_MAPPINGS = {"HunyuanCustomLoadVideo": "HunyuanCustom Load Video"}
