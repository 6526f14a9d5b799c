"""Reading LoRA files: the container, the format (from the keys), and the refusals.

Formats, told apart by their keys (a file's name says nothing):
  * PEFT, as the original release and diffusion-pipe save it: `transformer.<upstream module>.lora_A.weight`
    / `lora_B.weight` (or ComfyUI's `diffusion_model.` prefix); no alpha key means alpha = rank (scale 1);
  * musubi-tuner / kohya: `lora_unet_<upstream module, '.' -> '_'>.lora_down.weight` / `lora_up.weight` /
    `.alpha` (scale alpha / rank);
  * diffusers: `transformer.transformer_blocks.N.attn.to_q.lora_A.weight` (our module names).
Each trained module is a pair: `down` [rank, in] and `up` [out, rank]; its delta is
up @ down * alpha / rank. diffusers' own converter is not used: it fails on the musubi format (0.42.1).

Refused with a message naming what the file is: LyCORIS LoHa / LoKr and other non-LoRA networks, files
whose module names fit nothing or mostly nothing (Wan, Flux, SD, HunyuanVideo 1.5 LoRAs...).
A file that fits only in part is taken, with one warning (count and examples of what is left out).
Safetensors headers are read without the tensors (queue-time checks); pickled .pt files are read with
torch.load(weights_only=True) only (weights_io), so a file holding code is refused unread.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import weights_io
from . import lora_keys

_DOWN = (".lora_A.weight", ".lora_down.weight", ".lora.down.weight", ".lora_A.default.weight")
_UP = (".lora_B.weight", ".lora_up.weight", ".lora.up.weight", ".lora_B.default.weight")
_ALPHA = (".alpha", ".lora_alpha")
# Other networks' parameter names: (what they are, key fragments).
_NOT_LORA = (
    ("a LyCORIS LoHa", ("hada_w1", "hada_w2", "hada_t1", "hada_t2")),
    ("a LyCORIS LoKr", ("lokr_w1", "lokr_w2", "lokr_t2")),
    ("a DoRA (weight-decomposed LoRA)", ("dora_scale",)),
    ("a LyCORIS (IA)^3 / OFT network", ("oft_blocks", "oft_diag", ".on_input")),
    ("a full weight-difference file (LyCORIS 'full' / diff)", (".diff", ".diff_b", ".set_weight")),
)
MOSTLY = 0.5  # refused when fewer than this share of its modules fit the model


class LoraError(ValueError):
    """A LoRA file that cannot be used; the message names the file and what it is."""


@dataclass(frozen=True)
class LoraChoice:
    """One LoRA to apply: its file and strength (the delta is scaled by it; -2..2 in the node)."""

    path: str
    strength: float = 1.0

    @property
    def name(self) -> str:
        return Path(self.path).name


@dataclass
class LoraFile:
    """A parsed LoRA: module name as the file spells it -> (down, up, alpha or None)."""

    path: Path
    format: str
    pairs: dict[str, tuple[torch.Tensor, torch.Tensor, float | None]] = field(repr=False)
    unrecognised: list[str]  # module names that fit no HunyuanVideo/HunyuanCustom Linear
    metadata: dict[str, str]

    def warning(self) -> str | None:
        return partial_warning(self.path, len(self.pairs) + len(self.unrecognised), self.unrecognised)


def partial_warning(path: Path, total: int, left_out: list[str]) -> str | None:
    if not left_out:
        return None
    shown = ", ".join(sorted(left_out)[:3])
    return (f"LoRA {path.name}: {len(left_out)} of its {total} layers match no layer of this HunyuanCustom "
            f"transformer and are left out (e.g. {shown}); the rest is applied.")


def _split_key(key: str) -> tuple[str, str] | None:
    """(module, role) with role 'down', 'up' or 'alpha'; None for any other key."""
    for role, suffixes in (("down", _DOWN), ("up", _UP), ("alpha", _ALPHA)):
        for suffix in suffixes:
            if key.endswith(suffix):
                return key[: -len(suffix)], role
    return None


def _read_keys(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str], dict[str, torch.Tensor] | None]:
    """(key -> shape, metadata, tensors or None): safetensors from the header only (tensors None);
    a PyTorch file is loaded (weights_only) since its keys are inside the pickle."""
    kind = weights_io.container_kind(path, LoraError)
    if kind == weights_io.SAFETENSORS:
        handle = weights_io.open_safetensors(path, LoraError)
        shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
        return shapes, dict(handle.metadata() or {}), None
    if kind in (weights_io.TORCH_ZIP, weights_io.LEGACY_PICKLE):
        obj = weights_io.load_torch_file(path, LoraError)
        tensors = weights_io.tensor_state_dict(obj, path, ("state_dict", "module"), "a LoRA's tensors", LoraError)
        return {k: tuple(v.shape) for k, v in tensors.items()}, {}, tensors
    raise LoraError(weights_io.unknown_container_message(path))


def _format(modules: list[str], roles: set[str]) -> str:
    if any(name.startswith(("lora_unet_", "lora_transformer_")) for name in modules):
        return "musubi-tuner/kohya"
    namings = {found[0] for found in map(lora_keys.recognise, modules) if found}
    if namings == {lora_keys.OURS}:
        return "diffusers"
    return "PEFT (original/diffusion-pipe)" if "lora_A" in roles else "ComfyUI lora_up/lora_down"


def inspect_lora(path: str | Path) -> tuple[str, dict[str, dict[str, str]], list[str], dict[str, str], dict | None]:
    """Everything judged from a file's keys, before any tensor is read: (format, module -> role -> key,
    unrecognised module names, metadata, tensors of a .pt file or None). Raises LoraError for a file that
    is not a usable HunyuanVideo LoRA."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise LoraError(f"{path}: no such LoRA file.")
    shapes, metadata, tensors = _read_keys(path)
    for label, fragments in _NOT_LORA:
        hit = next((key for key in shapes if any(fragment in key for fragment in fragments)), None)
        if hit is not None:
            raise LoraError(f"{path.name} is {label} (key {hit}), not a plain LoRA; only LoRA files "
                            "(lora_A/lora_B or lora_down/lora_up pairs) are supported. Use a LoRA version of it.")
    modules: dict[str, dict[str, str]] = {}
    stray: list[str] = []
    for key in shapes:
        split = _split_key(key)
        if split is None:
            stray.append(key)
        else:
            modules.setdefault(split[0], {})[split[1]] = key
    broken = [name for name, roles in modules.items() if not {"down", "up"} <= set(roles)]
    if not modules or len(broken) == len(modules):
        shown = ", ".join(sorted(shapes)[:3]) or "none"
        raise LoraError(f"{path.name}: no LoRA weights in it (keys such as {shown}); expected lora_A/lora_B or "
                        "lora_down/lora_up pairs. Is it a model checkpoint rather than a LoRA?")
    for name in broken:
        del modules[name]
    unrecognised = [name for name in modules if lora_keys.recognise(name) is None]
    other = lora_keys.model_from_metadata(metadata)
    if other:
        raise LoraError(f"{path.name} is {other} (its metadata says so); HunyuanCustom takes HunyuanVideo "
                        "(13B) LoRAs.")
    looks = lora_keys.other_model(unrecognised) if unrecognised else None
    # HunyuanVideo 1.5 shares most module names (img_attn_proj, img_mlp.fc1...) but has separate q/k/v:
    # any of those settles it, however many of its other names look right.
    if len(unrecognised) > (1 - MOSTLY) * len(modules) or (looks and looks[0] == lora_keys.HV15):
        shown = ", ".join(sorted(unrecognised)[:3])
        fits = len(modules) - len(unrecognised)
        what = (f"{path.name} looks like {looks[0]}: its keys are {looks[1]}" if looks else
                f"{path.name} is not a HunyuanVideo LoRA: its keys are {shown}")
        raise LoraError(f"{what}; {fits} of its {len(modules)} layers match HunyuanCustom. HunyuanCustom takes "
                        "HunyuanVideo (13B) LoRAs (musubi-tuner, diffusion-pipe, diffusers or ComfyUI files).")
    roles = {key.rsplit(".", 2)[-2] for key in shapes if _split_key(key)}
    return _format(list(modules), roles), modules, unrecognised, metadata, tensors


def check_lora(path: str | Path) -> str | None:
    """The header-only check (queue time, before a model loads): raises LoraError for a file that is not a
    usable HunyuanVideo LoRA; returns the partial-match warning, if any."""
    path = Path(path).expanduser()
    _format_name, modules, unrecognised, _metadata, _tensors = inspect_lora(path)
    return partial_warning(path, len(modules), unrecognised)


def lora_bytes(choices: Iterable[LoraChoice], itemsize: int) -> int:
    """What these LoRAs take on the GPU in a dtype of `itemsize` bytes (their matrices, from the
    files' headers; alphas left out), for offload 'auto'. A file that cannot be read counts 0: applying
    it reports the problem."""
    total = 0
    for choice in choices:
        if float(choice.strength) == 0.0:
            continue
        try:
            shapes = _read_keys(Path(choice.path))[0]
        except LoraError:
            continue
        total += sum(math.prod(shape) for shape in shapes.values() if len(shape) >= 2) * itemsize
    return total


def read_lora(path: str | Path) -> LoraFile:
    """The LoRA's pairs (tensors on the CPU, as stored), after inspect_lora()'s checks."""
    path = Path(path).expanduser()
    fmt, modules, unrecognised, metadata, tensors = inspect_lora(path)
    if tensors is None:
        from safetensors.torch import load_file

        try:
            tensors = load_file(str(path))
        except Exception as exc:  # a header that promised more bytes than the file has
            raise LoraError(weights_io.corrupt_message(path, exc)) from None
    pairs = {}
    for name, roles in modules.items():
        if name in unrecognised:
            continue
        down, up = tensors[roles["down"]], tensors[roles["up"]]
        if down.ndim != 2 or up.ndim != 2 or down.shape[0] != up.shape[1]:
            raise LoraError(f"{path.name}: {name} has lora down {list(down.shape)} and up {list(up.shape)}; "
                            "a Linear LoRA pair is [rank, in] and [out, rank].")
        alpha = float(tensors[roles["alpha"]].float().reshape(-1)[0]) if "alpha" in roles else None
        pairs[name] = (down, up, alpha)
    return LoraFile(path, fmt, pairs, unrecognised, metadata)
