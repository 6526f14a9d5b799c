"""The one parameter schema shared by the local sampler and the remote WaveSpeed node.

Field names are WaveSpeed's. Both backends build their widgets (via nodes/widgets.py) and their
validation from the FIELDS table below, so a graph can move between local and remote by
rewiring one node. This module is plain Python: no torch, no ComfyUI.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

LOCAL = "local"
REMOTE = "remote"

# The generation modes, named after the transformer checkpoint each needs (conditioning/base.py).
MODES = ("ref2v", "audio", "editing")

# WaveSpeed's endpoints and the sizes each accepts (width*height).
REMOTE_SIZES_720P = ("1280*720", "720*1280")
REMOTE_SIZES_480P = ("832*480", "480*832")
REMOTE_SIZES = REMOTE_SIZES_720P + REMOTE_SIZES_480P
# Extra local presets: upstream's one-GPU size and smaller ones for quick previews.
LOCAL_PRESETS = ("960*544", "544*960", "896*512", "512*896", "640*368", "368*640", "480*272", "272*480")
SIZE_OPTIONS = REMOTE_SIZES + LOCAL_PRESETS

SEED_RANDOM = -1
SEED_MAX = 9_999_999_999
FPS = 25  # upstream's frame rate; WaveSpeed renders at the same rate.
# The longest video the pack makes (60 s): longer runs are untested (windows, README "Long videos").
MAX_FRAMES = 1501
FOLLOW_INPUT = 0  # num_frames 0: as long as the audio or the source video

DEFAULT_NEGATIVE_PROMPT = (
    "Aerial view, aerial view, overexposed, low quality, deformation, a poor composition, "
    "bad hands, bad teeth, bad eyes, bad limbs, distortion, blurring, text, subtitles, static, "
    "picture, black border."
)


# Step caches: the `cache` field's options. What each does and what was published about it live
# here (widgets, --help and the README read them); pipelines/diffusion_models/step_cache.py runs them.
@dataclass(frozen=True)
class CacheOption:
    name: str
    does: str  # what it does
    threshold: str  # what cache_threshold means for it ("" when it takes none)
    recommended: float | None  # the threshold used when none is given
    published: str  # what was published for HunyuanVideo, with the source ("" when nothing)


CACHE_OPTIONS: dict[str, CacheOption] = {o.name: o for o in (
    CacheOption("off", "every step runs every block: upstream's result exactly", "", None, ""),
    CacheOption("deepcache", "upstream's deepcache: at exactly 30 steps, steps 11, 12, 14, 15, 17, 18, 20 and 21 "
                "re-run only the last block (about 25% less transformer time); upstream-exact at 30 steps, no "
                "effect at other step counts", "", None, ""),
    CacheOption("teacache", "skips all blocks on steps whose first-block input changed little since the last "
                "computed step (TeaCache, with the polynomial its authors fitted for HunyuanVideo); the first "
                "and last step always run", "the accumulated rescaled change that still skips (published: 0.1, "
                "0.15)", 0.15, "HunyuanVideo T2V 720p x 129 frames, 50 steps, one A800: ~50 min -> ~30 min at "
                "0.1 (1.6x), ~23 min at 0.15 (2.1x) (TeaCache4HunyuanVideo README)"),
    CacheOption("magcache", "skips all blocks while the error predicted from HunyuanVideo's residual magnitude "
                "ratios stays small (MagCache); the first 20% of the steps always run", "the accumulated error "
                "that still skips (published: 0.12 with at most 4 skipped steps in a row, 0.24 with 6)", 0.12,
                "HunyuanVideo T2V 720p x 129 frames, 50 steps, one A800: 54 min -> 23.8 min at 0.12 (2.3x), "
                "19.6 min at 0.24 (2.8x) (MagCache4HunyuanVideo README)"),
    CacheOption("fbcache", "runs the first block every step and skips the others while its output changes "
                "little (First Block Cache)", "the relative change of the first block's residual that still "
                "skips (ParaAttention's HunyuanVideo default: 0.035)", 0.035,
                "HunyuanVideo T2V 720p x 129 frames, 30 steps, one L20: 6044 s -> 2271 s (2.7x) (ParaAttention, "
                "doc/fastest_hunyuan_video.md)"),
    CacheOption("taylorseer", "after 3 full steps runs every Nth step in full and extrapolates the model output "
                "on the others (TaylorSeer, first order, diffusers' lite variant)", "N, the steps per full step "
                "(rounded; 0 or 1: every step runs in full)", 5.0, "none for this variant (diffusers' defaults)"),
)}
CACHE_NAMES = tuple(CACHE_OPTIONS)
ADAPTIVE_CACHES = ("teacache", "magcache", "fbcache", "taylorseer")
THRESHOLD_RECOMMENDED = -1.0  # cache_threshold's "the chosen cache's published setting"


def _cache_tooltip() -> str:
    # Short enough to read in a tooltip (~300 characters); what each does and the published speedups
    # are in the README's Speed section.
    return ("Reuses work of earlier steps where little changes: faster, slightly different video. Upstream-exact: "
            "off, and deepcache at 30 steps (~25% faster). " + ", ".join(ADAPTIVE_CACHES) + " skip more: 2-2.8x "
            "published on HunyuanVideo T2V, not HunyuanCustom's weights. README > Speed.")


def _threshold_tooltip() -> str:
    return ("How much the adaptive caches skip: -1 = the cache's published setting ("
            + ", ".join(f"{name} {CACHE_OPTIONS[name].recommended:g}" for name in ADAPTIVE_CACHES)
            + "), 0 never skips (exactly 'off'), higher skips more. Unused by off and deepcache.")


class ParameterError(ValueError):
    """A user-facing error about one parameter: names the field, the value and what is allowed."""

    def __init__(self, name: str, value: Any, allowed: str):
        self.field = name
        self.value = value
        self.allowed = allowed
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"{name} = {shown} is not valid: {allowed}.")

    def without_name(self) -> str:
        """The message without the leading "name = ", for places that name the field already."""
        return str(self)[len(f"{self.field} = "):]


@dataclass(frozen=True)
class Field:
    """One parameter: its type, default, range and which backends use it."""

    name: str
    kind: str  # "STRING" | "INT" | "FLOAT" | "BOOLEAN" | "SIZE" | "CHOICE" (one of `options`)
    default: Any
    tooltip: str
    backends: tuple[str, ...] = (LOCAL, REMOTE)
    min: float | None = None
    max: float | None = None
    step: float | None = None
    multiline: bool = False
    options: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    # Upstream runs some modes with other settings (editing: 50 steps, shift 5); used where the
    # user gave no value (CLI, API callers). A ComfyUI widget has one default: the tooltip says.
    mode_defaults: Mapping[str, Any] = field(default_factory=dict)

    def full_tooltip(self) -> str:
        """The tooltip with the per-mode defaults said (widgets and --help read them from here)."""
        if not self.mode_defaults:
            return self.tooltip
        return self.tooltip + " " + " ".join(f"Upstream's {mode} scripts use {_fmt(value)}."
                                             for mode, value in self.mode_defaults.items())

    def default_for(self, mode: str | None = None) -> Any:
        """The default in `mode` ("ref2v", "audio", "editing"; None = ref2v)."""
        if mode is not None and mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        return self.mode_defaults.get(mode, self.default)

    def allowed(self, backend: str | None = None) -> str:
        """Human-readable description of the allowed values (used in error messages)."""
        if self.kind == "SIZE":
            if backend == REMOTE:
                return "WaveSpeed accepts " + ", ".join(REMOTE_SIZES)
            return "W*H with both sides multiples of 16 (e.g. " + ", ".join(SIZE_OPTIONS[:4]) + ")"
        if self.kind in ("INT", "FLOAT"):
            text = f"a number from {_fmt(self.min)} to {_fmt(self.max)}"
            if self.name == "num_frames":
                text += (f" of the form 4n+1 (5, 9, ..., 129, ..., {MAX_FRAMES}), or 0 for the audio's or the "
                         "source video's length")
            if self.name == "seed":
                text += " (-1 picks a random seed)"
            if self.name == "cache_threshold":
                text += " (-1: the chosen cache's published setting)"
            return text
        if self.kind == "BOOLEAN":
            return "true or false"
        if self.kind == "CHOICE":
            return "one of " + ", ".join(self.options)
        return "text"


def _fmt(x: float | None) -> str:
    if x is None:
        return "?"
    return str(int(x)) if float(x).is_integer() else str(x)


FIELDS: dict[str, Field] = {
    f.name: f
    for f in (
        Field("prompt", "STRING", "", "What happens in the video. The reference subject is described "
              "by the subject word; write the scene, the action and the camera.", multiline=True),
        Field("negative_prompt", "STRING", "", "What to avoid. Empty uses nothing; upstream's usual "
              "negative prompt is in the example workflows.", multiline=True),
        Field("size", "SIZE", "1280*720", "Video width*height in pixels. WaveSpeed renders 1280*720, "
              "720*1280 (720p model) and 832*480, 480*832 (480p model); locally type any W*H with both "
              "sides multiples of 16, e.g. 960*544 (upstream's one-GPU size) or 480*272, 256*144 for quick "
              "previews.", options=SIZE_OPTIONS),
        Field("guidance_scale", "FLOAT", 7.5, "Classifier-free guidance: how strongly the prompt steers "
              "the video. Upstream uses 7.5.", min=1.0, max=10.0, step=0.1),
        Field("flow_shift", "FLOAT", 13.0, "Flow-matching time shift: higher spends more steps on "
              "coarse structure. Upstream uses 13.", min=1.0, max=20.0, step=0.1,
              mode_defaults={"editing": 5.0}),
        Field("seed", "INT", SEED_RANDOM, "Random seed; -1 picks a new random seed each run and "
              "reports the one used.", min=SEED_RANDOM, max=SEED_MAX, step=1,
              extra={"control_after_generate": True}),
        Field("enable_safety_checker", "BOOLEAN", True, "Let WaveSpeed's safety checker flag the "
              "output (a flagged video is reported as an error).", backends=(REMOTE,)),
        Field("num_frames", "INT", 129, "Number of frames (4n+1). 129 frames at 25 fps is about 5 s; longer "
              f"videos are made in 129-frame windows, up to {MAX_FRAMES} ({MAX_FRAMES // FPS} s). 0: as long as the "
              "audio (audio mode) or the source video (editing mode).",
              backends=(LOCAL,), min=0, max=MAX_FRAMES, step=4),
        Field("steps", "INT", 30, "Denoising steps. Upstream uses 30, where deepcache applies (its editing UI "
              "uses 30 too).", backends=(LOCAL,), min=1, max=200, step=1,
              mode_defaults={"editing": 50}),
        Field("subject", "STRING", "object", "The word or words for the reference subject (up to 64 characters), "
              "used in the prompt template 'The {subject} looks like <image>' (e.g. woman, dog, red panda). Local "
              "sampler only: "
              "WaveSpeed's request has no subject word, so name the subject in the prompt too."),
        Field("audio_strength", "FLOAT", 0.8, "Audio-driven mode: how strongly the audio moves the mouth and "
              "body (the audio cross-attention's weight). Upstream's scripts use 0.8 (its code's default is 1.0); "
              "0 ignores the audio.", backends=(LOCAL,), min=0.0, max=1.0, step=0.05),
        # Video editing (HunyuanCustom Edit node, --video / --mask).
        Field("expand", "INT", 5, "Grow the mask by about this many pixels (shrink it when negative) before "
              "it is thresholded: an ellipse kernel of this size, applied 3 times, as upstream. Upstream's "
              "scripts use 5; a larger value leaves room for a subject bigger than the one it replaces.",
              backends=(LOCAL,), min=-30, max=30, step=1),
        Field("box", "BOOLEAN", False, "Fill each frame's mask out to its bounding box (upstream UI's 'bbox' "
              "option): the model may then draw a subject of another shape than the mask's.", backends=(LOCAL,)),
        Field("cache", "CHOICE", "deepcache", _cache_tooltip(), backends=(LOCAL,), options=CACHE_NAMES),
        Field("cache_threshold", "FLOAT", THRESHOLD_RECOMMENDED, _threshold_tooltip(), backends=(LOCAL,),
              min=THRESHOLD_RECOMMENDED, max=10.0, step=0.005),
        Field("cache_start", "FLOAT", 0.0, "Adaptive caches skip no step before this fraction of the steps "
              "(their own rules apply too, e.g. magcache's first 20%). 0 = from the start.", backends=(LOCAL,),
              min=0.0, max=1.0, step=0.01),
        Field("cache_end", "FLOAT", 1.0, "Adaptive caches skip no step from this fraction of the steps on "
              "(1 = to the end).", backends=(LOCAL,), min=0.0, max=1.0, step=0.01),
        Field("compile", "BOOLEAN", False, "torch.compile the transformer's blocks: faster steps once the first "
              "step has compiled them (a minute or more, again for a new size). Turning it on or off reloads the "
              "transformer. Needs Triton on an NVIDIA GPU; when torch cannot compile, the sampler says why and "
              "runs uncompiled. Same video up to kernel rounding; works with offload and every cache.",
              backends=(LOCAL,)),
    )
}

# Fields that the local and remote samplers both expose as widgets with identical specs.
SHARED_SAMPLER_FIELDS = ("size", "guidance_scale", "flow_shift", "seed")
LOCAL_SAMPLER_FIELDS = SHARED_SAMPLER_FIELDS + ("num_frames", "steps")
# The local sampler's speed widgets: optional and after the others, the cache first, where workflows
# saved before them had deep_cache (see nodes/sampler.py).
LOCAL_CACHE_FIELDS = ("cache", "cache_threshold", "cache_start", "cache_end")
LOCAL_SPEED_FIELDS = LOCAL_CACHE_FIELDS + ("compile",)
REMOTE_SAMPLER_FIELDS = SHARED_SAMPLER_FIELDS + ("enable_safety_checker",)
PROMPT_FIELDS = ("prompt", "negative_prompt", "subject")
EDIT_FIELDS = ("expand", "box")


def parse_size(value: Any, backend: str = LOCAL) -> tuple[int, int]:
    """Parse "W*H" into (width, height), checking what the backend can render."""
    f = FIELDS["size"]
    if not isinstance(value, str):
        raise ParameterError("size", value, f.allowed(backend))
    text = value.strip().lower().replace("x", "*")
    parts = text.split("*")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ParameterError("size", value, f.allowed(backend))
    width, height = (int(p) for p in parts)
    if backend == REMOTE:
        if f"{width}*{height}" not in REMOTE_SIZES:
            raise ParameterError("size", value, f.allowed(REMOTE))
        return width, height
    if width < 16 or height < 16 or width % 16 or height % 16 or width > 4096 or height > 4096:
        raise ParameterError("size", value, f.allowed(LOCAL) + ", each side 16 to 4096")
    return width, height


def check_value(name: str, value: Any, backend: str = LOCAL) -> Any:
    """Validate one field's value; return it normalised (e.g. int for INT) or raise ParameterError."""
    f = FIELDS[name]
    if f.kind == "SIZE":
        w, h = parse_size(value, backend)
        return f"{w}*{h}"
    if f.kind == "STRING":
        if not isinstance(value, str):
            raise ParameterError(name, value, "text")
        if name == "prompt" and not value.strip():
            raise ParameterError(name, value, "a non-empty description of the video")
        if name == "subject" and (not value.strip() or len(value) > 64 or "\n" in value):
            raise ParameterError(name, value, "a word or a few on one line (up to 64 characters), e.g. 'woman' or "
                                 "'red panda'")
        return value
    if f.kind == "BOOLEAN":
        if not isinstance(value, bool):
            raise ParameterError(name, value, f.allowed(backend))
        return value
    if f.kind == "CHOICE":
        if not isinstance(value, str) or value not in f.options:
            raise ParameterError(name, value, f.allowed(backend))
        return value
    if isinstance(value, bool):  # bool is an int subclass; True is never a valid number here
        raise ParameterError(name, value, f.allowed(backend))
    if f.kind == "INT":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise ParameterError(name, value, f.allowed(backend))
    else:
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ParameterError(name, value, f.allowed(backend))
        value = float(value)
    if (f.min is not None and value < f.min) or (f.max is not None and value > f.max):
        raise ParameterError(name, value, f.allowed(backend))
    if name == "num_frames" and (value - 1) % 4 and value != FOLLOW_INPUT:
        raise ParameterError(name, value, f.allowed(backend))
    return value


def validate(params: Mapping[str, Any], backend: str, names: Iterable[str] | None = None,
             mode: str | None = None) -> dict[str, Any]:
    """Validate the named fields (default: all the backend uses); unknown names are an error.
    A missing field gets its default in `mode` (see Field.default_for)."""
    if backend not in (LOCAL, REMOTE):
        raise ValueError(f"backend must be {LOCAL!r} or {REMOTE!r}, not {backend!r}")
    for key in params:
        if key not in FIELDS:
            raise ParameterError(key, params[key], "not a HunyuanCustom parameter (known: " + ", ".join(FIELDS) + ")")
    wanted = list(names) if names is not None else [n for n, f in FIELDS.items() if backend in f.backends]
    out: dict[str, Any] = {}
    for name in wanted:
        f = FIELDS[name]
        if backend not in f.backends:
            raise ParameterError(name, params.get(name), f"only used by the {'/'.join(f.backends)} backend")
        value = params[name] if name in params else f.default_for(mode)
        out[name] = check_value(name, value, backend)
    return out


def resolve_seed(seed: int, rng: random.Random | None = None) -> int:
    """Turn -1 into a concrete random seed (reported back to the user); keep any other seed."""
    if seed == SEED_RANDOM:
        return (rng or random.SystemRandom()).randint(0, SEED_MAX)
    return seed


def remote_model_for_size(size: str) -> str:
    """The WaveSpeed model id that renders this size."""
    w, h = parse_size(size, REMOTE)
    return "wavespeed-ai/hunyuan-custom-ref2v-" + ("720p" if f"{w}*{h}" in REMOTE_SIZES_720P else "480p")
