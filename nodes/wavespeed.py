"""HunyuanCustomWaveSpeed: the remote sampler (WaveSpeed's hosted HunyuanCustom).

A thin adapter: the client lives in pipelines/wavespeed/client.py and is imported when the node runs,
so loading the pack never imports `requests`. The API key never passes through a widget.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from ..pipelines import schema
from . import comfy
from .results import with_result_lines
from .widgets import validation_message, widgets


def _unique_video_path() -> Path:
    """A new file name in ComfyUI's temp folder (never an existing file)."""
    folder = Path(comfy.temp_directory()) / "hunyuan_custom"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return folder / f"wavespeed_{stamp}_{uuid.uuid4().hex[:8]}.mp4"


# ComfyUI reads the environment once, when it starts; the CLI's messages leave this out.
_KEY_HINT = ("ComfyUI reads environment variables when it starts: after setting WAVESPEED_API_KEY, restart "
             "ComfyUI (the config file is read at every run).")


def _failure_line(exc: BaseException) -> str:
    """The status line under the node once the job has stopped early."""
    if comfy.is_cancel(exc):
        return "WaveSpeed: cancelled (a task already submitted keeps running on WaveSpeed)"
    summary = getattr(exc, "summary", None) or str(exc).split(". ")[0]
    line = "WaveSpeed: failed · " + " ".join(summary.split())[:200]
    task_id = getattr(exc, "task_id", None)
    return line + (f" · task {task_id}" if task_id else "")


class HunyuanCustomWaveSpeed:
    DESCRIPTION = (
        "Renders the video on WaveSpeed's hosted HunyuanCustom (no local GPU needed; billed to your "
        "WaveSpeed account). 1280*720 / 720*1280 use the 720p model, 832*480 / 480*832 the 480p model. "
        "The API key is read from the WAVESPEED_API_KEY environment variable or the user config file, "
        "never from a widget, so it is not saved into workflows or video metadata. WaveSpeed takes no "
        "subject word, frame count or steps: the Prompt node's subject is not sent (name the subject in the "
        "prompt), and it renders 129 frames at 25 fps."
    )
    CATEGORY = "HunyuanCustom"
    RETURN_TYPES = ("IMAGE", "FLOAT", "STRING")
    RETURN_NAMES = ("frames", "fps", "video_path")
    OUTPUT_TOOLTIPS = (
        "The video frames decoded from WaveSpeed's mp4.",
        "Frame rate of the returned video.",
        "Path of the downloaded mp4 in ComfyUI's temp folder.",
    )
    FUNCTION = "generate"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "prompt": ("HYC_PROMPT", {"tooltip": "Prompt, negative prompt and reference image from the "
                                                     "HunyuanCustomPrompt node."}),
                **widgets(schema.REMOTE_SAMPLER_FIELDS, backend=schema.REMOTE),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def VALIDATE_INPUTS(cls, size: Any = None) -> bool | str:
        # Taking `size` here replaces ComfyUI's combo check for it, so a local-only size (or one
        # sent through the API) gets our message listing what WaveSpeed renders. A linked (None)
        # value is checked when the node runs.
        if size is None:
            return True
        return validation_message({"size": size}, schema.REMOTE)

    @classmethod
    def IS_CHANGED(cls, seed: Any = None, **_: Any) -> Any:
        # Seed -1 means "a new video every run": never reuse the cached result.
        return float("nan") if seed == schema.SEED_RANDOM else f"seed={seed}"

    def generate(self, prompt: Any, size: str, guidance_scale: float, flow_shift: float, seed: int,
                 enable_safety_checker: bool, unique_id: Any = None) -> tuple:
        for attr in ("prompt", "negative_prompt", "conditions"):
            if not hasattr(prompt, attr):
                raise TypeError("the 'prompt' input must come from a HunyuanCustomPrompt node "
                                f"(got {type(prompt).__name__})")
        from ..pipelines.conditioning.base import remote_refusal

        refusal = remote_refusal(prompt.conditions)  # before anything is sent or billed
        if refusal:
            raise ValueError(f"{refusal} Use HunyuanCustom Sampler (local) for this prompt.")
        params = {
            "prompt": prompt.prompt,
            "negative_prompt": prompt.negative_prompt,
            "size": size,
            "guidance_scale": guidance_scale,
            "flow_shift": flow_shift,
            "seed": seed,
            "enable_safety_checker": enable_safety_checker,
        }
        schema.validate(params, schema.REMOTE, names=list(params))  # before anything is sent
        from ..pipelines.wavespeed import client as wavespeed  # imports requests: only when the node runs
        from ..pipelines.wavespeed.config import ConfigError

        progress = comfy.Progress(1, str(unique_id) if unique_id is not None else None)
        try:
            result = wavespeed.run_job(params, prompt.reference, _unique_video_path(), on_status=progress.text,
                                       should_cancel=comfy.throw_if_cancelled)
        except BaseException as exc:
            # The line under the node must not keep saying "uploading ..." after a failure.
            progress.text(_failure_line(exc))
            if isinstance(exc, ConfigError) or getattr(exc, "reason", None) == "auth":
                exc.args = (f"{exc} {_KEY_HINT}",)  # same exception, with the advice for ComfyUI users
            raise
        progress.update(1)
        return with_result_lines((result.frames, float(result.fps), str(result.video_path)), [
            f"{result.frames.shape[0]} frames, {result.frames.shape[2]}*{result.frames.shape[1]}, {result.fps:g} fps",
            f"seed {result.seed}" if result.seed is not None else "seed: not reported by WaveSpeed",
            f"WaveSpeed task {result.task_id} ({result.model})",
        ])


NODE_CLASS_MAPPINGS = {"HunyuanCustomWaveSpeed": HunyuanCustomWaveSpeed}
NODE_DISPLAY_NAME_MAPPINGS = {"HunyuanCustomWaveSpeed": "HunyuanCustom Sampler (WaveSpeed, remote)"}
