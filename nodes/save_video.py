"""HunyuanCustomSaveVideo: frames (+ optional audio) -> numbered H.264 mp4 in ComfyUI's output folder."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from . import comfy
from .results import with_result_lines

MAX_FPS = 120.0


class HunyuanCustomSaveVideo:
    DESCRIPTION = (
        "Saves frames as an H.264 mp4 (yuv420p, plays everywhere) in ComfyUI's output folder, "
        "numbered like the core savers (prefix_00001_.mp4) and never overwriting a file. Optional "
        "audio is muxed as AAC. The prompt and workflow are stored in the file's metadata (drag it "
        "back into ComfyUI); API keys and fields named like keys/tokens/secrets are removed first."
    )
    CATEGORY = "HunyuanCustom"
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)
    OUTPUT_TOOLTIPS = ("Absolute path of the saved mp4.",)

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                # IMAGE, or our Sampler's 8-bit frames (a long video that never exists as float32)
                "frames": ("IMAGE,HYC_FRAMES", {"tooltip": "The video frames: an IMAGE batch, or the "
                                                           "HunyuanCustom Sampler's frames_8bit (a quarter of "
                                                           "the memory, for long videos). H.264 needs even sizes: "
                                                           "an odd width or height is cropped by one pixel."}),
                "fps": ("FLOAT", {"default": 25.0, "min": 1.0, "max": MAX_FPS, "step": 0.01, "round": 0.01,
                                  "tooltip": "Frames per second. HunyuanCustom renders at 25; connect "
                                             "the sampler's fps output here to keep them in step."}),
                "filename_prefix": ("STRING", {"default": "HunyuanCustom/video",
                                               "tooltip": "Folder/name inside ComfyUI's output folder; a "
                                                          "counter is added (video_00001_.mp4). "
                                                          "%width%, %height%, %year%, %month%, %day% "
                                                          "are replaced."}),
                "crf": ("INT", {"default": 19, "min": 0, "max": 51, "step": 1,
                                "tooltip": "Quality (x264 CRF): lower is better and larger. 0 is "
                                           "lossless, 17-19 looks visually lossless, 23 is x264's "
                                           "default, 28+ shows artefacts."}),
            },
            "optional": {
                "audio": ("AUDIO", {"tooltip": "Optional sound track, muxed as AAC; trimmed to the "
                                               "video's length."}),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO", "unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def VALIDATE_INPUTS(cls, filename_prefix: Any = None) -> bool | str:
        from ..pipelines.media.save_paths import SavePathError, next_save_target

        # Only filename_prefix: ComfyUI checks fps/crf against the widgets' min/max itself when
        # they are not named here, and it repeats a returned message under every input named
        # here. Linked inputs arrive as None: checked when the node runs.
        if isinstance(filename_prefix, str):
            try:
                next_save_target(filename_prefix, comfy.output_directory())
            except SavePathError as exc:
                return str(exc)
        return True

    def save(self, frames, fps: float, filename_prefix: str, crf: int, audio: dict | None = None,
             prompt: dict | None = None, extra_pnginfo: dict | None = None, unique_id: str | None = None) -> dict:
        from ..pipelines.media import video_io
        from ..pipelines.media.wav_io import write_wav

        frames = even_size(frames)
        count, height, width = int(frames.shape[0]), int(frames.shape[1]), int(frames.shape[2])
        if not (isinstance(fps, (int, float)) and 0 < fps <= MAX_FPS):
            raise ValueError(f"HunyuanCustom Save Video: fps = {fps!r} is not valid; use a number above 0 and at most {MAX_FPS:g}.")
        if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 51:  # a linked crf skips ComfyUI's min/max
            raise ValueError(f"HunyuanCustom Save Video: crf = {crf!r} is not valid; use a whole number from 0 to 51.")
        if count < 1:
            raise ValueError("HunyuanCustom Save Video got an empty frames batch (0 frames); nothing to save.")
        metadata = None if comfy.metadata_disabled() else video_metadata(prompt, extra_pnginfo)
        progress = comfy.Progress(count, unique_id)
        done = [0]

        def between_frames() -> None:
            comfy.throw_if_cancelled()
            progress.update(done[0])
            done[0] += 1

        with tempfile.TemporaryDirectory(prefix="hyc-audio-") as tmp:
            audio_path = None
            if audio is not None:
                audio_path = os.path.join(tmp, "audio.wav")
                write_wav(audio, audio_path, max_seconds=count / float(fps))
            try:
                path, target = _write_numbered(
                    filename_prefix, width, height,
                    lambda p: video_io.write_video(p, frames, fps=fps, crf=crf, metadata=metadata,
                                                   audio_path=audio_path, should_cancel=between_frames),
                )
            except video_io.VideoError as exc:  # e.g. a full disk: say which node failed
                raise video_io.VideoError(f"HunyuanCustom Save Video: {exc}") from exc
        progress.update(count)
        saved = {"filename": os.path.basename(path), "subfolder": target.subfolder, "type": "output"}
        shown = "/".join(part for part in (target.subfolder, os.path.basename(path)) if part)
        # Same UI answer as core's SaveVideo (ui.PreviewVideo): the frontend shows a playing video;
        # the result lines (which stay after the job) say which file it is.
        return with_result_lines((str(path),), [f"saved {shown}", f"{count} frames, {width}*{height}, {fps:g} fps, "
                                                f"{file_size(os.path.getsize(path))}"
                                                + (", with audio" if audio is not None else "")],
                                 ui={"images": [saved], "animated": (True,)})


def file_size(size: int) -> str:
    """'2.3 MB', '41 KB': what a file browser would say."""
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{max(1, round(size / 1e3))} KB"


def even_size(frames):
    """Crop the last row/column when a side is odd (H.264 with yuv420p needs even sizes)."""
    if frames.ndim != 4:
        raise ValueError(f"frames must be an IMAGE batch [frames, height, width, channels], got {tuple(frames.shape)}")
    height, width = int(frames.shape[1]), int(frames.shape[2])
    if height < 2 or width < 2:
        raise ValueError(f"frames of {width}x{height} pixels are too small for a video (at least 2x2).")
    frames = frames[:, : height - height % 2, : width - width % 2, :]
    if frames.shape[-1] == 4:  # RGBA: drop alpha, mp4 has none
        frames = frames[..., :3]
    return frames


def video_metadata(prompt: dict | None, extra_pnginfo: dict | None) -> dict[str, str]:
    """mp4 tags like core's SaveVideo (prompt + each extra_pnginfo key, as JSON) plus `comment`:
    our nodes' literal parameters. Secrets are scrubbed from all of it."""
    from ..pipelines.media.metadata_scrub import scrub, scrub_text

    secrets = _known_secrets()
    tags: dict[str, Any] = {}
    if isinstance(extra_pnginfo, dict):
        tags.update(extra_pnginfo)
    if prompt is not None:
        tags["prompt"] = prompt
        parameters = generation_parameters(prompt)
        if parameters:
            tags["comment"] = {"HunyuanCustom": parameters}
    return {key: scrub_text(json.dumps(scrub(value, secrets), ensure_ascii=False), secrets)
            for key, value in tags.items() if value is not None}


def generation_parameters(prompt: dict) -> dict[str, dict]:
    """The literal (widget) inputs of our own nodes in an API-format prompt, by node id."""
    out: dict[str, dict] = {}
    for node_id, node in (prompt or {}).items():
        if not isinstance(node, dict) or not str(node.get("class_type", "")).startswith("HunyuanCustom"):
            continue
        literals = {k: v for k, v in (node.get("inputs") or {}).items() if not _is_link(v)}
        out[str(node_id)] = {"class_type": node["class_type"], "inputs": literals}
    return out


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int) and isinstance(value[0], (str, int))


def _known_secrets() -> list[str]:
    from ..pipelines.wavespeed import config as wavespeed_config

    try:
        return [wavespeed_config.get_api_key()]
    except wavespeed_config.ConfigError:
        return []


def _write_numbered(prefix: str, width: int, height: int, write, attempts: int = 20):
    """Write to the next free prefix_NNNNN_.mp4; if another run took that name meanwhile
    (write_video refuses to replace a file), take the next number."""
    from ..pipelines.media.save_paths import next_save_target
    from ..pipelines.media.video_io import VideoError

    target = next_save_target(prefix, comfy.output_directory(), width, height)
    counter = target.counter
    for _ in range(attempts):
        path = os.path.join(target.folder, target.file_name(counter))
        try:
            return write(path), target
        except VideoError:
            if not os.path.exists(path):  # a real failure, not a taken name
                raise
            counter += 1  # lost a race for this name: the other file stays untouched
    raise VideoError(f"could not find a free file name for {prefix!r} in {target.folder} after {attempts} tries")


NODE_CLASS_MAPPINGS = {"HunyuanCustomSaveVideo": HunyuanCustomSaveVideo}
NODE_DISPLAY_NAME_MAPPINGS = {"HunyuanCustomSaveVideo": "HunyuanCustom Save Video"}
