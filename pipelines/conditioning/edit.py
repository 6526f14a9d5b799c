"""The video-editing condition: put the reference subject into a source video where a mask says,
with the editing checkpoint (its bg_in / bg_proj add `bg_latents` to the video tokens, the same
latents in both CFG rows).

Pixels: edit_pixels.py (upstream's mask processing, OpenCV-exact). Latents, as upstream's
sample_batch.py: the masked video and the mask (both in [-1, 1]) are VAE-encoded separately with
tiling on, each SAMPLED from its posterior, concatenated [bg, mask] on the channels, times the
scaling factor -> [1, 32, t, H/8, W/8], t = (F-1)//4+1; the video has (t-1)*4+1 frames.

Difference from upstream, on purpose: upstream draws the posterior samples from torch's GLOBAL RNG,
which its one-GPU script never seeds, so its edits are not reproducible. Ours come from the job's
CPU generator (base.sample_latents; seeded with the job's seed, after the reference latent's draw),
bg first, then mask, as upstream orders them: a seed gives the same video on every device.

Sources longer than 129 frames (several windows, windows.py): the masked source and the mask are
encoded ONCE, whole (upstream's temporal tiles run along it, so the encode's memory does not grow
with length), and each window takes its latents from that encode, EXCEPT its first latent. A
129-frame encode starts with a latent of its first frame alone (the VAE is 4x in time and causal in
its convolutions), while latent s of the long encode stands for frames 4s-3..4s; so every window
start s gets "head s", frame 4s encoded on its own (windows.HeadedLatentCut): the window starts
the way every window started in training.
Why not encode each window's pixels on their own, which would match a 129-frame edit exactly:
Avatar's windows move 10 latents every step, so over a run every latent is some window's start:
N encodes of 129 frames (33x the work of one long encode) and N windows of latents to keep. The
heads cost N one-frame encodes (a quarter of the long encode's frames) and one more [1, 32, N, h, w].
What stays different from a window encoded alone: the VAE's GroupNorm and mid-block attention see
every frame of what it encodes, so no latent of a window encoded alone equals the long encode's
(measured on the tiny random VAE, tests/test_long_videos.py: the head is nearer the window's first
latent than the long encode's latent is; on the real VAE the difference is unmeasured).
A fixed-position schedule with one encode per window would be exact but its seams would never move.
Heads are drawn from the generator after bg and mask, only when there are several windows, so a
one-window edit is unchanged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Mapping

import torch

from .. import schema
from ..media.cv_mask import bgr2gray_uint8
from ..windows import HeadedLatentCut, window_count
from .base import EDITING, Condition, ConditionError, StageContext, sample_latents
from .edit_pixels import EditPixels, frames_used, output_frames, prepare_edit_pixels, to_model_range, to_uint8_frames


def encode_bg_latents(pixels: EditPixels, sample) -> torch.Tensor:
    """bg_latents = cat([sample(masked video), sample(mask)], channels); `sample` maps a [1, 3, F, H, W]
    video (uint8, which the VAE maps to [-1, 1] tile by tile) to its scaled posterior sample
    (base.sample_latents). bg is drawn first."""
    bg = sample(pixels.bg_uint8())  # uint8: the VAE maps each tile to [-1, 1] (no float copy of the video)
    return torch.cat([bg, sample(pixels.mask_uint8())], dim=1)


HEAD_BATCH = 16  # one-frame encodes per VAE call


def head_latents(pixels: EditPixels, sample) -> torch.Tensor:
    """Head s for every latent s: frame 4s of the masked video and of the mask, each encoded on its
    own (a batch of one-frame videos), [bg, mask] on the channels -> [1, 32, N, h, w]."""
    starts = list(range(0, pixels.num_frames, 4))
    parts = []
    for video in (pixels.masked_video, pixels.mask[..., None].expand(*pixels.mask.shape, 3)):
        heads = []
        for i in range(0, len(starts), HEAD_BATCH):
            frames = to_model_range(video[starts[i:i + HEAD_BATCH]])  # [1, 3, b, H, W]
            batch = frames.permute(2, 1, 0, 3, 4)  # b one-frame videos [b, 3, 1, H, W]
            heads.append(sample(batch).permute(2, 1, 0, 3, 4))  # back to [1, C, b, h, w]
        parts.append(torch.cat(heads, dim=2))
    return torch.cat(parts, dim=1)


def frame_rate_note(fps: float) -> str | None:
    """What a source's frame rate does to the edit, or None at 25 fps: upstream edits frame for frame
    and the result is always played at 25 fps, so another rate changes the speed (said, not silent)."""
    if not fps or abs(fps - schema.FPS) <= 0.01:
        return None
    ratio = max(fps, schema.FPS) / min(fps, schema.FPS)
    return (f"the source is {fps:g} fps; the edit keeps every frame at {schema.FPS:g} fps, so it plays {ratio:.3g}x "
            f"{'slower' if fps > schema.FPS else 'faster'} than the source (its sound is cut, not stretched)")


def _frames(count: int) -> str:
    return f"{count} frame" + ("" if count == 1 else "s")


def _float_audio(audio: Any) -> dict | None:
    """A ComfyUI AUDIO with float samples in [-1, 1] (PyAV hands integer PCM as it is stored)."""
    if audio is None:
        return None
    if not isinstance(audio, Mapping) or not isinstance(audio.get("waveform"), torch.Tensor) \
            or audio["waveform"].ndim != 3 or not isinstance(audio.get("sample_rate"), int) or audio["sample_rate"] <= 0:
        raise ConditionError('audio: expected {"waveform": tensor [batch, channels, samples], "sample_rate": int}')
    waveform = audio["waveform"]
    if not waveform.dtype.is_floating_point:
        waveform = waveform.float() / float(torch.iinfo(waveform.dtype).max + 1)
    return {"waveform": waveform, "sample_rate": int(audio["sample_rate"])}


@dataclass(frozen=True, eq=False)
class EditCondition(Condition):
    """A source video and a mask video (white where the new subject goes). Frames are kept as
    uint8 [F, H, W, C]; ComfyUI IMAGE / MASK tensors (float 0..1) are converted on creation.

    `plan` fixes the frames and the size for the job and processes the mask once (so an empty
    mask stops the job before anything loads); `frames` and `pixels` are what it found."""

    video: torch.Tensor
    mask: torch.Tensor
    expand: int = schema.FIELDS["expand"].default
    box: bool = schema.FIELDS["box"].default
    pose: torch.Tensor | None = None
    audio: dict | None = None  # the source's sound (ComfyUI AUDIO), passed through trimmed
    frames: int | None = None  # source frames the VAE encodes (set by plan)
    pixels: EditPixels | None = None  # the processed videos for the job's size (set by plan)

    kind = "edit"
    checkpoint = EDITING
    node_name = "HunyuanCustom Edit"
    cli_flag = "--video FILE --mask FILE"
    remote_refusal = ("WaveSpeed's hunyuan-custom-ref2v cannot edit a video: the editing mode needs the "
                      "editing checkpoint on your own GPU.")

    def __post_init__(self) -> None:
        object.__setattr__(self, "video", to_uint8_frames(self.video, "video"))
        object.__setattr__(self, "mask", to_uint8_frames(self.mask, "mask"))
        if self.pose is not None:
            object.__setattr__(self, "pose", to_uint8_frames(self.pose, "pose"))
        object.__setattr__(self, "expand", schema.check_value("expand", self.expand))  # ParameterError names it
        schema.check_value("box", self.box)
        object.__setattr__(self, "audio", _float_audio(self.audio))
        if self.pixels is not None:  # made by plan() from a checked condition
            return
        # Resizing and the grey conversion never brighten a pixel, and only dilation (which cannot
        # start from nothing) adds any: a mask without a pixel above 127 stays empty whatever the job.
        grey = bgr2gray_uint8(self.mask) if self.mask.shape[-1] == 3 else self.mask[..., 0]
        if int(grey.max()) <= 127:
            raise ConditionError(self._empty_message(before_expand=True))

    def _empty_message(self, before_expand: bool) -> str:
        where = "" if before_expand else f" after expand {self.expand}"
        return (f"mask: it is empty in every frame{where} (no pixel above grey 127), so there is nothing to "
                "replace; the mask must be white where the new subject goes" +
                ("" if before_expand else "; use a smaller erosion (expand closer to 0)"))

    @property
    def source_size(self) -> tuple[int, int]:
        return int(self.video.shape[2]), int(self.video.shape[1])

    def plan(self, job: Any) -> tuple[Any, str]:
        """Frames used = min(num_frames, video, mask); the output is that rounded down to 4n+1 (the
        VAE's latent count decides, as upstream). The mask is processed here, before any model loads."""
        planned = self
        if self._planned_for(job):  # planning a planned job changes nothing (num_frames is the output's now)
            used = self.frames
        else:
            available = frames_used(self.video.shape[0], self.mask.shape[0])
            follow = job.num_frames == schema.FOLLOW_INPUT  # num_frames 0: the whole source (at most MAX_FRAMES)
            used = min(available, schema.MAX_FRAMES if follow else job.num_frames)
            pixels = prepare_edit_pixels(self.video, self.mask, expand=self.expand, box=self.box, pose=self.pose,
                                         width=job.width, height=job.height, num_frames=used)
            planned = replace(self, frames=used, pixels=pixels)
        out = output_frames(used)
        if not bool((planned.pixels.mask == 255).any()):
            raise ConditionError(self._empty_message(before_expand=False))
        width, height = self.source_size
        note = (f"source {width}x{height}, {_frames(self.video.shape[0])} -> {job.width}x{job.height}, "
                f"{_frames(out)}")
        if not self._planned_for(job) and job.num_frames == schema.FOLLOW_INPUT:
            note = "num_frames 0: as long as the source; " + note
            if available > schema.MAX_FRAMES:
                note += f" (the first {schema.MAX_FRAMES}: the longest video the pack makes)"
        if used != out:
            dropped = used - out
            note += (f" (videos come in 4n+1 frames: the last {_frames(dropped)} of the {used} used "
                     f"{'is' if dropped == 1 else 'are'} dropped)")
        mask_frames = int(self.mask.shape[0])
        if 1 < mask_frames < int(self.video.shape[0]) and used == mask_frames:  # the mask, not the video, was the limit
            note += (f"; the mask has only {_frames(mask_frames)}, so the edit ends there (a mask as long as "
                     "the video edits all of it; a one-frame mask applies to every frame)")
        if bool((planned.pixels.mask == 255).all()):
            note += "; the mask covers every pixel, so the whole video is regenerated"
        mask_note = self.mask_size_note()
        if mask_note:
            note += "; " + mask_note
            logging.getLogger(__name__).warning("HunyuanCustom: %s", mask_note)
        return replace(job, spec=job.spec.with_condition(planned), num_frames=out), note

    def mask_size_note(self) -> str:
        """A mask of another size than the source is resized to it, as upstream does: said when that
        happens, and which way, since another aspect ratio stretches it off the subject."""
        mask_w, mask_h = int(self.mask.shape[2]), int(self.mask.shape[1])
        width, height = self.source_size
        if (mask_w, mask_h) == (width, height):
            return ""
        if abs(mask_w * height - mask_h * width) <= 0.01 * mask_h * width:
            return f"mask {mask_w}x{mask_h} scaled to the source's {width}x{height}"
        return (f"mask {mask_w}x{mask_h} has another aspect ratio than the source {width}x{height}: it is "
                "stretched to fit, so it may miss the subject; make the mask from the source video itself")

    def _planned_for(self, job: Any) -> bool:
        return (self.pixels is not None and output_frames(self.frames) == job.num_frames
                and tuple(self.pixels.mask.shape[1:]) == (job.height, job.width))

    def encode_latents(self, vae: Any, ctx: StageContext) -> dict[str, Any]:
        if self.pixels is None:
            raise RuntimeError("the edit was not planned: run the job through Job.planned() first")
        ctx.status("encoding the source video and the mask")

        def sample(video: torch.Tensor) -> torch.Tensor:
            ctx.cancel()
            return sample_latents(vae, video, ctx)

        latents = encode_bg_latents(self.pixels, sample)
        expected = (ctx.num_frames - 1) // 4 + 1
        if latents.shape[2] != expected:  # plan() and the job disagree: a bug, not a user error
            raise RuntimeError(f"bg_latents have {latents.shape[2]} frames, the job's {ctx.num_frames} frames need {expected}")
        if window_count(expected) == 1:
            return {"bg_latents": latents}
        ctx.status(f"encoding the first frame of each of the {expected} possible window starts")
        return {"bg_latents": latents, "window_cuts": {"bg_latents": HeadedLatentCut(head_latents(self.pixels, sample))}}

    def output_audio(self, num_frames: int, fps: float) -> dict[str, Any] | None:
        """The source's sound from its start, cut to the edited video's length."""
        if self.audio is None:
            return None
        rate = int(self.audio["sample_rate"])
        waveform = self.audio["waveform"][..., :max(1, round(num_frames / fps * rate))]
        return {"waveform": waveform, "sample_rate": rate}
