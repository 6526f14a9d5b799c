"""What a job is conditioned on, as data: the base of every mode's condition.

A job carries a tuple of conditions (the reference image always; the audio track or the editing
video when a mode adds one). Each condition is immutable data that knows:
  * which transformer checkpoint it needs (`checkpoint`: None for any, "audio", "editing"), so a
    mismatch is caught from the checkpoint's header before anything loads;
  * how to check itself and adjust the job before anything loads (`check`, `plan`);
  * how to make its stage inputs: in the text stage without the VAE (`encode`, e.g. whisper) and in
    the VAE stage (`encode_latents`, e.g. the reference or background latents). The returned dicts
    are fields of sampling.DenoiseRequest, so the sampler stays generic; an input that varies along
    the video comes with its cut for one window of a long run (key `window_cuts`: field name ->
    windows.WindowCut; merged by `merge_inputs`), the reference with none (it goes in front of every
    window);
  * what audio the video should carry (`output_audio`).
The stage runner (generate.py) calls these in order; a mode adds one module here and one node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterable

import torch

# The transformer variants upstream released, by what their checkpoints hold.
REF2V, AUDIO, EDITING = "ref2v", "audio", "editing"
CHECKPOINT_NAMES = {
    REF2V: "the reference-to-video checkpoint (hunyuancustom_720P)",
    AUDIO: "the audio checkpoint (hunyuancustom_audio_720P)",
    EDITING: "the editing checkpoint (hunyuancustom_editing_720P)",
}


class ConditionError(ValueError):
    """A user-facing problem with a condition's input: names the value and says what to do."""


@dataclass(frozen=True)
class StageContext:
    """What a condition may use while it makes its stage inputs."""

    width: int
    height: int
    num_frames: int
    seed: int
    device: torch.device
    dtype: torch.dtype
    files: Any  # generate.ModelFiles (the audio encoder's path is there)
    generator: torch.Generator  # CPU, seeded with the job's seed; conditions draw in tuple order
    vae_tiled: bool = True
    status: Callable[[str], None] = lambda _text: None
    cancel: Callable[[], None] = lambda: None


class Condition:
    """One input a job is conditioned on. Subclasses set the class attributes and override what
    they need; the defaults do nothing."""

    kind: ClassVar[str] = ""  # one condition of each kind per job
    checkpoint: ClassVar[str | None] = None  # the transformer variant it needs (None: any)
    node_name: ClassVar[str] = ""  # the node that adds it (ComfyUI wording)
    cli_flag: ClassVar[str] = ""  # the flag that adds it (CLI wording)
    remote_refusal: ClassVar[str | None] = None  # why WaveSpeed cannot render it (None: it can)

    def check(self, files: Any) -> None:
        """Cheap checks before anything loads (e.g. that a model file it needs was given)."""

    def plan(self, job: Any) -> tuple[Any, str | None]:
        """The job (a job.Job, which holds this condition: not imported here) as this condition
        needs it (e.g. fewer frames, via dataclasses.replace), and a line for the status."""
        return job, None

    def encode(self, ctx: StageContext) -> dict[str, Any]:
        """Stage inputs made before the VAE is on the device (e.g. audio features)."""
        return {}

    def encode_latents(self, vae: Any, ctx: StageContext) -> dict[str, Any]:
        """Stage inputs made with the VAE (e.g. the reference latent)."""
        return {}

    def output_audio(self, num_frames: int, fps: float) -> dict[str, Any] | None:
        """A ComfyUI-style AUDIO ({"waveform": [1, C, N], "sample_rate": sr}) the video carries."""
        return None


def merge_inputs(inputs: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`inputs` updated with a condition's stage inputs; their `window_cuts` add to the others'."""
    new = dict(new)
    cuts = {**inputs.get("window_cuts", {}), **new.pop("window_cuts", {})}
    inputs.update(new)
    if cuts:
        inputs["window_cuts"] = cuts
    return inputs


def required_checkpoint(conditions: Iterable[Condition]) -> str:
    """The transformer variant these conditions need: "ref2v" unless a mode condition says otherwise."""
    needs = {c.checkpoint: c for c in conditions if c.checkpoint}
    if len(needs) > 1:
        names = " and ".join(c.node_name for c in needs.values())
        raise ConditionError(f"{names} cannot be combined: each needs its own checkpoint; keep one of them")
    return next(iter(needs), REF2V)


def remote_refusal(conditions: Iterable[Condition]) -> str | None:
    """Why WaveSpeed cannot render a job with these conditions (None: it can). Checked before any
    request, so nothing is uploaded or billed."""
    for condition in conditions:
        if condition.remote_refusal:
            return condition.remote_refusal
    return None


def checkpoint_mismatch(have: str, conditions: Iterable[Condition], *, cli: bool = False) -> str | None:
    """The message when the loaded transformer and the conditions disagree, else None.

    Worded for ComfyUI by default, for the command line with `cli=True`."""
    conditions = list(conditions)
    need = required_checkpoint(conditions)
    if have == need:
        return None
    if need == REF2V:  # a mode checkpoint without its mode's input
        hint = {AUDIO: ("connect a HunyuanCustom Audio node between the Prompt and the Sampler", "pass --audio FILE"),
                EDITING: ("connect a HunyuanCustom Edit node between the Prompt and the Sampler",
                          "pass --video FILE --mask FILE")}[have][1 if cli else 0]
        return f"the transformer is {CHECKPOINT_NAMES[have]}; {hint}, or pick {CHECKPOINT_NAMES[REF2V]}"
    mode = next(c for c in conditions if c.checkpoint == need)
    where = mode.cli_flag if cli else f"the {mode.node_name} node"
    return (f"{where} needs {CHECKPOINT_NAMES[need]}, but the transformer is {CHECKPOINT_NAMES[have]}; "
            f"pick the {need} checkpoint" + (" with --transformer" if cli else " in the Model Loader"))


def sample_latents(vae: Any, video: torch.Tensor, ctx: StageContext) -> torch.Tensor:
    """VAE-encode a [1, 3, F, H, W] video in [-1, 1] (or uint8 0..255, which the VAE maps to [-1, 1]
    tile by tile) (tiled as upstream when ctx says so) and draw
    from the posterior, times the scaling factor: float32 on the CPU.

    Upstream samples with the global RNG; the draw here comes from ctx.generator on the CPU, so a
    seed gives the same latents on every device and every condition draws in a fixed order."""
    moments = vae.encode(video, tiled=ctx.vae_tiled, on_tile=lambda *_: ctx.cancel())
    noise = torch.randn(moments.mean.shape, generator=ctx.generator, dtype=torch.float32)
    return (moments.mean.float().cpu() + moments.std.float().cpu() * noise) * vae.scaling_factor
