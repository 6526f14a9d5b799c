"""HunyuanCustomSampler: local sampling on the user's GPU, over the shared parameter schema."""

from __future__ import annotations

import time

from ..pipelines import schema
from . import comfy
from .preview import StepPreview
from .results import with_result_lines
from .widgets import validation_message, widgets


class HunyuanCustomSampler:
    DESCRIPTION = (
        "Generates the video locally: prompt encoding, reference encoding, sampling with true "
        "classifier-free guidance and tiled VAE decoding, one stage on the GPU at a time. Outputs the "
        "frames, the frame rate (25), the seed used and the video's sound."
    )
    CATEGORY = "HunyuanCustom"
    # New outputs go last so links saved before they existed keep their slots.
    RETURN_TYPES = ("IMAGE", "FLOAT", "INT", "AUDIO", "HYC_FRAMES")
    RETURN_NAMES = ("frames", "fps", "seed", "audio", "frames_8bit")
    OUTPUT_TOOLTIPS = ("The video frames.", "Frames per second (25, as upstream).", "The seed used (-1 resolved).",
                       "The sound the video carries (an audio or editing node's track, cut to the video), "
                       "silence otherwise: wire it into a video saver.",
                       "The same frames in 8 bits, for HunyuanCustom Save Video: a quarter of the memory. With "
                       "frames left unconnected the video never exists as float32 (60 s of 720p: 4.1 GB "
                       "instead of 16.6 GB).")
    FUNCTION = "sample"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("HYC_MODEL", {"tooltip": "From HunyuanCustom Model Loader."}),
                "prompt": ("HYC_PROMPT", {"tooltip": "From HunyuanCustom Prompt: texts and reference image."}),
                **widgets(schema.LOCAL_SAMPLER_FIELDS),
            },
            # Optional and last: `cache` sits where workflows saved before it had the deep_cache
            # BOOLEAN, so their true/false arrives here as `cache` (see legacy_cache); compile last.
            "optional": widgets(schema.LOCAL_SPEED_FIELDS),
            # The whole API prompt, only to read an old `deep_cache` input (see cache_from_api_prompt).
            "hidden": {"unique_id": "UNIQUE_ID", "api_prompt": "PROMPT"},
        }

    @classmethod
    def VALIDATE_INPUTS(cls, size=None):
        # `size` is a text box (any W*H of 16s); checked here so a bad one is refused when queued.
        # Only `size`: ComfyUI repeats a returned message under EVERY input named here (a bad size
        # showed up six times, under guidance_scale, seed, ...), and it checks the numbers' min/max
        # itself when they are not named. num_frames' 4n+1 rule is checked when the node runs,
        # before anything loads. A linked size (None) is checked then too.
        return True if size is None else validation_message({"size": size}, schema.LOCAL)

    @classmethod
    def IS_CHANGED(cls, seed=-1, **_):
        return float("nan") if seed == schema.SEED_RANDOM else seed

    def sample(self, model, prompt, size, guidance_scale, flow_shift, seed, num_frames, steps, cache="deepcache",
               cache_threshold=schema.THRESHOLD_RECOMMENDED, cache_start=0.0, cache_end=1.0, compile=False,
               unique_id=None, api_prompt=None):
        from ..pipelines.job import Job

        params = dict(size=size, guidance_scale=guidance_scale, flow_shift=flow_shift, seed=seed,
                      num_frames=num_frames, steps=steps,
                      cache=legacy_cache(cache_from_api_prompt(cache, api_prompt, unique_id)),
                      cache_threshold=cache_threshold,
                      cache_start=cache_start, cache_end=cache_end, compile=compile)
        schema.validate(params, schema.LOCAL, names=list(params))  # before anything loads
        if not hasattr(prompt, "conditions"):
            raise TypeError(f"the 'prompt' input must come from a HunyuanCustom Prompt node (got {type(prompt).__name__})")
        job = Job.from_params(prompt, params)
        bar = comfy.Progress(steps, node_id=unique_id)
        decode_bar: list = []
        preview = StepPreview(job.steps, job.flow_shift)

        windows = [1]  # a long run's windows per step: the bar counts windows within steps

        def progress(stage, done, total, latents):
            if stage == "window":
                windows[0] = max(1, total // job.steps)
                bar.total = total
                bar.update(done)
            elif stage == "sampling":
                bar.update(done * windows[0], preview(done, latents) if latents is not None else None)
            else:
                if not decode_bar:
                    decode_bar.append(comfy.Progress(total, node_id=unique_id))
                decode_bar[0].update(done)

        linked = linked_outputs(api_prompt, unique_id)
        eight_bit = linked is not None and FRAMES_8BIT in linked
        store = FrameStore(job) if eight_bit and FRAMES not in linked else None  # 8-bit only: no float32 video
        comfy.free_comfy_models()  # ComfyUI's own models out of VRAM before 13 B parameters of ours
        started = time.monotonic()
        try:
            result = model.generate(job, status=bar.text, progress=progress, check_cancel=comfy.throw_if_cancelled,
                                    **({"on_frames": store.add} if store is not None else {}))
        except BaseException as exc:
            if comfy.is_cancel(exc):
                bar.text("cancelled")  # the live status must not keep saying "sampling ..." (frontend 1.27 keeps it)
            raise
        finally:
            comfy.empty_cache()
        bar.text("done")  # the live status ends here; the result lines below stay after the job
        if store is not None:
            frames_8bit = store.frames()
        else:
            from ..pipelines.media.video_io import frames_to_uint8_tensor

            frames_8bit = frames_to_uint8_tensor(result.frames) if eight_bit else None
        shown = frames_8bit if store is not None else result.frames
        audio = result.audio if result.audio is not None else silence(shown.shape[0] / result.fps)
        return with_result_lines((result.frames, result.fps, result.seed, audio, frames_8bit),
                                 result_lines(shown, result.fps, result.seed, time.monotonic() - started))


FRAMES, FRAMES_8BIT = 0, 4  # output slots


def linked_outputs(api_prompt, unique_id) -> set[int] | None:
    """The output slots of node `unique_id` that some node of the queued prompt takes (None when the
    prompt is unknown, outside ComfyUI): the sampler makes only the frames someone takes."""
    if not isinstance(api_prompt, dict) or unique_id is None:
        return None
    slots = set()
    for node in api_prompt.values():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        for value in (inputs or {}).values():
            if isinstance(value, list) and len(value) == 2 and str(value[0]) == str(unique_id) \
                    and isinstance(value[1], int):
                slots.add(value[1])
    return slots


class FrameStore:
    """Takes the decoded frames part by part (uint8, as the VAE finishes them) into one tensor of the
    planned length: the video exists in 8 bits only."""

    def __init__(self, job) -> None:
        self.total = job.planned()[0].num_frames  # num_frames 0 resolved as generate resolves it
        self.data = None
        self.count = 0

    def add(self, part) -> None:
        import torch

        if self.data is None:
            self.data = torch.empty((self.total, *part.shape[1:]), dtype=torch.uint8)
        self.data[self.count:self.count + part.shape[0]] = part
        self.count += int(part.shape[0])

    def frames(self):
        return self.data[:self.count]



def result_lines(frames, fps: float, seed: int, seconds: float) -> list[str]:
    """What the node shows after the run: the seed used (the only record of a random one), the
    video's size and length, and how long it took."""
    count, height, width = int(frames.shape[0]), int(frames.shape[1]), int(frames.shape[2])
    minutes, rest = divmod(round(seconds), 60)
    return [f"seed {seed}", f"{count} frames, {width}*{height}, {fps:g} fps ({count / fps:.1f} s of video)",
            f"generated in {minutes}:{rest:02d}"]


def legacy_cache(value):
    """The `cache` widget's value, with what workflows saved before it put there: their deep_cache
    BOOLEAN (true -> upstream's deepcache, false -> off). ComfyUI fills widgets by position."""
    if isinstance(value, bool):
        return "deepcache" if value else "off"
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return "deepcache" if value.strip().lower() == "true" else "off"
    return value


def cache_from_api_prompt(cache, api_prompt, unique_id):
    """`cache`, or what an API-format prompt written before it existed asks for with its deep_cache
    true/false: ComfyUI passes a node only the inputs it declares, so that value would be dropped
    without a word and the run would use the default instead."""
    node = api_prompt.get(str(unique_id)) if isinstance(api_prompt, dict) and unique_id is not None else None
    inputs = node.get("inputs") if isinstance(node, dict) else None
    if isinstance(inputs, dict) and "deep_cache" in inputs and "cache" not in inputs:
        return inputs["deep_cache"]
    return cache


def silence(seconds: float, sample_rate: int = 44100) -> dict:
    """A silent ComfyUI AUDIO of the video's length (the sampler always outputs a track)."""
    import torch

    return {"waveform": torch.zeros(1, 1, max(1, round(seconds * sample_rate))), "sample_rate": sample_rate}


NODE_CLASS_MAPPINGS = {"HunyuanCustomSampler": HunyuanCustomSampler}
NODE_DISPLAY_NAME_MAPPINGS = {"HunyuanCustomSampler": "HunyuanCustom Sampler (local)"}
