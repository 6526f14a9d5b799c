"""HunyuanCustomLoadVideo: a video's frames, sound and frame rate, from ComfyUI's input folder or the
pack's example videos.

Core Load Video + Get Video Components give the same from the input folder alone; ours also lists the
pack's examples (so the replace-the-subject template opens and runs as it is), decodes with the pack's
ffmpeg (no PyAV), and stops at a frame count and a memory limit (both widgets) so that a small file
of many or huge frames cannot fill the memory.
"""

from __future__ import annotations

from . import comfy, picked_files
from ..pipelines.media.limits import DEFAULT_MAX_FRAMES, DEFAULT_MEMORY_GB


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
                    "default": DEFAULT_MAX_FRAMES, "min": 0, "max": 100000, "step": 1,
                    "tooltip": "Load at most this many frames from the start (129 = upstream's default video "
                               "length; raise it for long videos, e.g. 1501 = 60 s at 25 fps); 0 loads all that "
                               "fit in memory_limit_gb. The sound is cut to the frames kept.",
                }),
            },
            "optional": {  # optional: API prompts written before it was added still validate
                "memory_limit_gb": ("FLOAT", {
                    "default": DEFAULT_MEMORY_GB, "min": 0.0, "max": 1024.0, "step": 0.5,
                    "tooltip": "The most memory the loaded frames may take: each costs width*height*12 bytes "
                               "(11 MB at 1280x720, 25 MB at 1920x1080), so 4 GB holds 129 frames of 1080p or 360 "
                               "of 720p. Frames past it are left out with a note; 0 = no limit (a long or large "
                               "video can then take all the machine's memory).",
                }),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def IS_CHANGED(cls, video: str, **_limits) -> str:
        return picked_files.fingerprint(video, "video", "video")

    @classmethod
    def VALIDATE_INPUTS(cls, video: str | None = None) -> bool | str:
        return picked_files.validation(video, "video", "video")

    def load(self, video: str, frame_load_cap: int = DEFAULT_MAX_FRAMES, memory_limit_gb: float = DEFAULT_MEMORY_GB,
             unique_id: str | None = None) -> tuple:
        from ..pipelines.conditioning.edit import frame_rate_note
        from ..pipelines.media import video_io

        path = picked_files.path_of(video, "video", "video")
        max_bytes = int(float(memory_limit_gb) * 2**30) or None
        try:
            decoded = video_io.decode_video(path, should_cancel=comfy.throw_if_cancelled,
                                            max_frames=int(frame_load_cap) or None, max_bytes=max_bytes)
            count = decoded.frames.shape[0]
            # the sound of the frames kept only (a one-hour track would otherwise be decoded whole)
            seconds = count / decoded.fps if decoded.fps > 0 else None
            audio = video_io.read_audio(path, max_seconds=seconds or 3600.0)
        except video_io.VideoError as exc:
            raise ValueError(f"video {video!r}: {str(exc).replace(path, video)}") from None
        if decoded.cut == "frame_load_cap":
            comfy.note(f"video {video!r}: loaded the first {count} frames (frame_load_cap); raise frame_load_cap, "
                       "or set it to 0, to load more.", unique_id)
        elif decoded.cut == "memory":
            comfy.note(f"video {video!r}: loaded the first {count} frames, which fill memory_limit_gb = "
                       f"{float(memory_limit_gb):g}; raise memory_limit_gb to load more.", unique_id)
        if note := frame_rate_note(decoded.fps):  # the Edit node gets frames only: say it where the rate is known
            comfy.note(f"video {video!r}: {note}.", unique_id)
        return (decoded.frames, audio, float(decoded.fps))


NODE_CLASS_MAPPINGS = {"HunyuanCustomLoadVideo": HunyuanCustomLoadVideo}
NODE_DISPLAY_NAME_MAPPINGS = {"HunyuanCustomLoadVideo": "HunyuanCustom Load Video"}
