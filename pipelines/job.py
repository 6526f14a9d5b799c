"""One local generation job: the prompt spec (texts, subject, conditions) and the sampler's
settings, validated together before anything loads. The stage runner (generate.py) takes one."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

from . import schema
from .conditioning.prompt_spec import PromptSpec
from .diffusion_models.step_cache import CacheSettings, CacheSettingsError

SAMPLER_FIELDS = ("size", "num_frames", "steps", "guidance_scale", "flow_shift", "seed") + schema.LOCAL_SPEED_FIELDS


@dataclass(frozen=True)
class Job:
    spec: PromptSpec
    width: int
    height: int
    num_frames: int
    steps: int
    guidance_scale: float
    flow_shift: float
    seed: int  # concrete (a -1 was resolved when the job was made)
    cache: CacheSettings = CacheSettings()  # the step cache (upstream's deepcache by default)
    compile: bool = False  # torch.compile of the transformer's blocks (same video up to kernel rounding)

    @classmethod
    def from_params(cls, spec: PromptSpec, params: Mapping[str, Any], *, deep_cache: bool | None = None) -> "Job":
        """Validate the texts and the sampler fields (schema names; a missing one gets its default for
        the spec's mode, e.g. 50 steps for editing) and resolve seed -1 to the seed that will be used.
        `deep_cache` is the older way to say cache 'deepcache' (True) or 'off' (False)."""
        unknown = [k for k in params if k not in SAMPLER_FIELDS]
        if unknown:
            raise schema.ParameterError(unknown[0], params[unknown[0]],
                                        "not a sampler setting (known: " + ", ".join(SAMPLER_FIELDS) + ")")
        texts = {"prompt": spec.prompt, "negative_prompt": spec.negative_prompt, "subject": spec.subject}
        values = schema.validate({**texts, **params}, schema.LOCAL, names=[*texts, *SAMPLER_FIELDS], mode=spec.mode)
        width, height = schema.parse_size(values["size"])
        if deep_cache is not None and "cache" not in params:
            values["cache"] = "deepcache" if deep_cache else "off"
        cache = CacheSettings.from_fields(values["cache"], values["cache_threshold"], values["cache_start"],
                                          values["cache_end"])
        try:
            cache.check()
        except CacheSettingsError as exc:
            raise schema.ParameterError("cache_start", values["cache_start"], str(exc)) from None
        return cls(spec=spec, width=width, height=height, num_frames=values["num_frames"], steps=values["steps"],
                   guidance_scale=values["guidance_scale"], flow_shift=values["flow_shift"],
                   seed=schema.resolve_seed(values["seed"]), cache=cache, compile=values["compile"])

    @property
    def mode(self) -> str:
        return self.spec.mode

    @property
    def uses_cfg(self) -> bool:
        return self.guidance_scale > 1.0

    def planned(self) -> tuple["Job", list[str]]:
        """The job after each condition's plan (e.g. the editing video decides the frames), with
        the lines they want on the status line. Runs before anything loads."""
        job, notes = self, []
        for condition in self.spec.conditions:
            job, note = condition.plan(job)
            if note:
                notes.append(note)
        if job.num_frames == schema.FOLLOW_INPUT:  # no condition took it: there is nothing to follow
            raise schema.ParameterError("num_frames", 0, "0 means as long as the audio or the source video, and this "
                                        "job has neither; give a frame count (4n+1, e.g. 129)")
        return job, notes

    def with_frames(self, num_frames: int, width: int | None = None, height: int | None = None) -> "Job":
        return replace(self, num_frames=num_frames, width=width or self.width, height=height or self.height)
