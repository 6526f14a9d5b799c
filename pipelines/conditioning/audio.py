"""The audio-driven mode's condition: a sound track the subject speaks or sings to.

It needs the audio checkpoint (hunyuancustom_audio_720P) and Whisper (whisper-tiny). In the text
stage Whisper is loaded, turns the WHOLE track into per-frame windows (audio_encoders/) and is freed
again, so its memory never adds to the transformer's. The sampler then adds `strength` times the
audio cross-attention after six double blocks (rows [zeros, windows] under CFG, as upstream). The
video carries the track cut (or padded with silence) to its length.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
import torch

from .. import schema
from ..audio_encoders.windows import SAMPLES_PER_FRAME, frames_with_audio
from ..windows import cut_frames
from ..media.audio_io import WHISPER_RATE, AudioClip, AudioInputError, clip_from_comfy, load_audio_file
from .base import AUDIO, Condition, ConditionError, StageContext

DEFAULT_STRENGTH = schema.FIELDS["audio_strength"].default  # 0.8, upstream's scripts
# In ComfyUI's words: the command line refuses --audio without --audio-encoder before this is reached.
WHISPER_MISSING = ("the audio mode needs Whisper: pick whisper-tiny as the Model Loader's audio_encoder, "
                   "the folder openai/whisper-tiny from Hugging Face put in "
                   "ComfyUI/models/audio_encoders/whisper-tiny/")


@dataclass(frozen=True, eq=False)
class AudioCondition(Condition):
    """A track (float32 [channels, samples] at `sample_rate` Hz) and how strongly it drives the video."""

    waveform: torch.Tensor
    sample_rate: int
    strength: float = DEFAULT_STRENGTH

    kind: ClassVar[str] = "audio"
    checkpoint: ClassVar[str | None] = AUDIO
    node_name: ClassVar[str] = "HunyuanCustom Audio"
    cli_flag: ClassVar[str] = "--audio FILE"
    remote_refusal: ClassVar[str | None] = (
        "WaveSpeed's hunyuan-custom-ref2v has no audio input, so the audio-driven mode renders locally only.")

    def __post_init__(self) -> None:
        try:
            strength = schema.check_value("audio_strength", self.strength)
        except schema.ParameterError as exc:
            raise ConditionError(str(exc)) from None
        object.__setattr__(self, "strength", strength)

    # -- making one ---------------------------------------------------------------------------
    @classmethod
    def from_comfy(cls, audio: Any, strength: float = DEFAULT_STRENGTH) -> AudioCondition:
        """From ComfyUI's AUDIO value (e.g. core Load Audio); bad audio -> ConditionError naming it."""
        try:
            clip = clip_from_comfy(audio, what="audio")
        except AudioInputError as exc:
            raise ConditionError(str(exc)) from None
        return cls.from_clip(clip, strength)

    @classmethod
    def from_file(cls, path: str | os.PathLike, strength: float = DEFAULT_STRENGTH) -> AudioCondition:
        """From an audio file (any format ffmpeg reads); a bad file -> ConditionError naming it."""
        try:
            clip = load_audio_file(path)
        except AudioInputError as exc:
            raise ConditionError(str(exc)) from None
        return cls.from_clip(clip, strength)

    @classmethod
    def from_clip(cls, clip: AudioClip, strength: float = DEFAULT_STRENGTH) -> AudioCondition:
        return cls(torch.from_numpy(np.ascontiguousarray(clip.samples)), clip.sample_rate, strength)

    @property
    def clip(self) -> AudioClip:
        return AudioClip(self.waveform.numpy(), int(self.sample_rate))

    @property
    def seconds(self) -> float:
        return self.waveform.shape[-1] / self.sample_rate

    @property
    def samples_16k(self) -> int:
        """Length of the 16 kHz track Whisper hears (ceil(n * 16000 / sr), as librosa computes it)."""
        n = int(self.waveform.shape[-1])
        return n if self.sample_rate == WHISPER_RATE else int(math.ceil(n * (float(WHISPER_RATE) / self.sample_rate)))

    # -- the Condition interface --------------------------------------------------------------
    def check(self, files: Any) -> None:
        from ..audio_encoders.whisper import WhisperFilesError, inspect_whisper

        path = getattr(files, "audio_encoder", None)
        if not path:
            raise ConditionError(WHISPER_MISSING)
        try:
            whisper = inspect_whisper(path)
        except WhisperFilesError as exc:
            raise ConditionError(str(exc)) from None
        self._check_whisper_fits(whisper, getattr(files, "transformer", None))

    @staticmethod
    def _check_whisper_fits(whisper: Any, transformer: Any) -> None:
        """The audio checkpoint takes windows of exactly its Whisper's states (layers + 1) and width:
        whisper-tiny's 5 x 384 for the released one. Another Whisper (base, small, or one of the same
        depth but another width) would fail only after every model has loaded; the headers tell it now."""
        from ..diffusion_models.checkpoints import CheckpointError
        from ..diffusion_models.loading import audio_window_shape

        try:
            shape = audio_window_shape(transformer) if transformer else None
        except (CheckpointError, OSError, ValueError):
            return  # the transformer's own check reports a broken file
        if shape is None:
            return
        _, states, channels = shape
        if (whisper.states, whisper.channels) != (states, channels):
            raise ConditionError(
                f"audio_encoder: the Whisper {whisper.path} ({whisper.states - 1} layers of {whisper.channels} channels) does not fit "
                f"the audio checkpoint, which takes a Whisper of {states - 1} layers of {channels} channels"
                + (" (whisper-tiny)" if (states, channels) == (5, 384) else "")
                + "; the released checkpoint takes whisper-tiny (4 layers of 384 channels): pick whisper-tiny")

    def frames_of_track(self) -> int:
        """The video length that follows the track (num_frames 0): Avatar's output length A // 4 * 4 + 1
        for A = samples_16k // 640 frames of audio, at most schema.MAX_FRAMES."""
        return min((self.samples_16k // SAMPLES_PER_FRAME) // 4 * 4 + 1, schema.MAX_FRAMES)

    def plan(self, job: Any) -> tuple[Any, str | None]:
        if int(job.num_frames) == schema.FOLLOW_INPUT:
            frames = self.frames_of_track()
            note = f"num_frames 0: {frames} frames ({frames / schema.FPS:.2f} s), as long as the {self.seconds:.2f} s of audio"
            if frames == schema.MAX_FRAMES and self.seconds > (frames + 3) / schema.FPS:
                note = (f"num_frames 0: {frames} frames ({frames // schema.FPS} s), the longest video the pack makes; "
                        f"the last {self.seconds - frames / schema.FPS:.1f} s of the {self.seconds:.1f} s of audio are not used")
            return replace(job, num_frames=frames), note
        frames = int(job.num_frames)
        video_s, audio_s = frames / schema.FPS, self.seconds
        heard = frames_with_audio(frames, self.samples_16k)
        if heard < frames:
            return job, (f"{audio_s:.1f} s of audio for {video_s:.1f} s of video: the last {frames - heard} frames "
                         "are silent")
        if audio_s > video_s + 0.5 / schema.FPS:
            return job, f"{audio_s:.1f} s of audio for {video_s:.1f} s of video: cut at {video_s:.1f} s"
        return job, None

    def encode(self, ctx: StageContext) -> dict[str, Any]:
        from ..audio_encoders.encode import audio_windows
        from ..audio_encoders.whisper import load_whisper
        from ..media.audio_io import whisper_waveform

        ctx.status("encoding the audio with Whisper")
        whisper = load_whisper(ctx.files.audio_encoder, ctx.device)
        try:
            windows = audio_windows(whisper_waveform(self.clip), whisper, ctx.num_frames)
        finally:
            del whisper  # freed here, in the text stage: its memory never adds to the transformer's
            if ctx.device.type == "cuda":
                torch.cuda.empty_cache()
        # A window of a long run hears its own frames, as Avatar slices them (windows.cut_frames).
        return {"audio_prompts": windows, "audio_strength": self.strength, "window_cuts": {"audio_prompts": cut_frames}}

    def output_audio(self, num_frames: int, fps: float) -> dict[str, Any] | None:
        return self.clip.fitted(num_frames / float(fps)).to_comfy()
