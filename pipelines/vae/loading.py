"""Load the HunyuanCustom/HunyuanVideo VAE from any of the layouts users have.

`load_vae(path)` accepts, recognised by file contents and tensor names (never by file name):
* upstream's `pytorch_model.pt` (keys `vae.*`, possibly under a top-level `state_dict`) with its
  `config.json` beside it, or the folder holding both;
* ComfyUI's `hunyuan_video_vae_bf16.safetensors`, with no config, in either of its two layouts:
  Kijai's (upstream names, no prefix) and Comfy-Org's repackaged one (ComfyUI's internal LDM names,
  renamed by pipelines/vae/key_layouts.py); `vae.` / `first_stage_model.` prefixes are understood;
* a diffusers folder (config.json of an AutoencoderKLHunyuanVideo + weights, sharded or not).

Pickled checkpoints go through torch.load(weights_only=True) only: a pickle that holds code is
refused, never run (file reading: pipelines/weights_io.py, shared with the transformer loader).
The model is built on the meta device and each tensor is converted to the requested dtype/device
one at a time, then assigned, so peak RAM stays near one copy (legacy non-zip pickles cannot be
memory-mapped and cost a second copy).

Without any config the full-size HunyuanVideo 884-16c config is assumed (FULL_SIZE_CONFIG) and
every tensor shape is checked against it; the mid-block attention is then causal, as in
HunyuanVideo's original VAE code and diffusers (the training-time behaviour), unless
`causal_attention` says otherwise. Note that ComfyUI's own VAE code runs this mid-block without
the mask, and upstream HunyuanCustom's code without it unless its config.json sets
mid_block_causal_attn: an upstream config.json lacking the key gives non-causal attention.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import torch

from .. import weights_io
from .model import FULL_SIZE_CONFIG, HunyuanVideoVAE, VAEConfig, VAEConfigError, build_diffusers_vae, config_from_dict
from .key_layouts import is_ldm_layout, ldm_to_upstream_names

ANCHOR = "decoder.conv_in.conv.weight"  # present in every layout of this VAE (upstream/diffusers names)
KNOWN_PREFIXES = ("vae.", "first_stage_model.")
_NESTED_KEYS = ("state_dict", "module", "model")  # upstream VAE: state_dict; upstream DiT: module
_WEIGHT_NAMES_PREFERRED = ("pytorch_model.pt", "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


class VAELoadError(weights_io.WeightsFileError, RuntimeError):
    """The VAE could not be loaded; the message names the file and says what to do."""


# ---------------------------------------------------------------- reading tensors


class TensorSource:
    """Read-only name -> tensor view of one or more checkpoint files, loaded lazily."""

    def __init__(self, files: list[Path]) -> None:
        self.files = files
        self._where: dict[str, tuple[Path, object]] = {}
        self._handles: list = []
        for path in files:
            self._open(path)

    def _open(self, path: Path) -> None:
        kind = weights_io.container_kind(path, VAELoadError)
        if kind == weights_io.SAFETENSORS:
            handle = weights_io.open_safetensors(path, VAELoadError)
            self._handles.append(handle)
            for name in handle.keys():
                self._where[name] = (path, handle)
        elif kind in (weights_io.TORCH_ZIP, weights_io.LEGACY_PICKLE):
            state = weights_io.load_torch_file(path, VAELoadError)
            for name, tensor in weights_io.tensor_state_dict(state, path, _NESTED_KEYS, "VAE weights", VAELoadError).items():
                self._where[name] = (path, tensor)
        else:
            raise VAELoadError(weights_io.unknown_container_message(path) + " Expected VAE weights.")

    def keys(self) -> list[str]:
        return list(self._where)

    def shape(self, name: str) -> tuple[int, ...]:
        path, holder = self._where[name]
        if isinstance(holder, torch.Tensor):
            return tuple(holder.shape)
        return tuple(holder.get_slice(name).get_shape())

    def get(self, name: str) -> torch.Tensor:
        path, holder = self._where[name]
        if isinstance(holder, torch.Tensor):
            return holder
        try:
            return holder.get_tensor(name)
        except Exception as exc:
            raise VAELoadError(weights_io.corrupt_message(path, f"tensor {name!r}: {exc}")) from exc


# ---------------------------------------------------------------- what is this file?


def describe_foreign_keys(names: Iterable[str]) -> str:
    """A human guess at what a non-VAE checkpoint is, from its tensor names."""
    names = list(names)
    joined = "\n".join(names)
    if any(s in joined for s in ("double_blocks.", "single_blocks.", "img_attn_qkv", "txt_in.")):
        return "a HunyuanVideo/HunyuanCustom transformer (DiT) checkpoint"
    if "audio_adapter" in joined or "audio_proj" in joined:
        return "an audio-conditioning module"
    if any(s in joined for s in ("model.layers.", "text_model.", "language_model.", "embed_tokens")):
        return "a text encoder"
    if any(s in joined for s in ("decoder.mid.attn_1", "decoder.up.0.block", "encoder.down.0.block")):
        return "a 2D image VAE in the LDM layout (Stable Diffusion/Flux style), not the 3D causal video VAE"
    if "decoder.up_blocks.0.resnets.0.norm1.weight" in names:
        return "a diffusers 2D image VAE (AutoencoderKL), not the 3D causal video VAE"
    sample = ", ".join(names[:5])
    return f"an unknown model (first tensors: {sample})"


def _find_prefix(names: list[str], path_label: str) -> str:
    prefixes = sorted({name[: -len(ANCHOR)] for name in names if name.endswith(ANCHOR)})
    for prefix in prefixes:
        if prefix in ("",) + KNOWN_PREFIXES:
            return prefix
    if prefixes:
        return prefixes[0]
    raise VAELoadError(
        f"{path_label} does not look like the HunyuanVideo/HunyuanCustom VAE: it looks like "
        f"{describe_foreign_keys(names)}. Expected the causal 3D VAE (tensors such as {ANCHOR!r}): "
        "upstream's vae_3d/hyvae_v1_0801 folder (config.json + pytorch_model.pt), ComfyUI's "
        "hunyuan_video_vae_bf16.safetensors, or a diffusers AutoencoderKLHunyuanVideo folder.")


def expected_shapes(config: VAEConfig) -> dict[str, tuple[int, ...]]:
    """State-dict name -> shape of our VAE for `config` (built on the meta device, no memory)."""
    model = build_diffusers_vae(config, device="meta")
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def check_shapes(found: Mapping[str, tuple[int, ...]], config: VAEConfig, label: str, config_label: str) -> None:
    """Raise VAELoadError naming the file and tensors unless `found` is exactly the VAE of `config`."""
    expected = expected_shapes(config)
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = [(n, found[n], expected[n]) for n in sorted(set(expected) & set(found)) if tuple(found[n]) != expected[n]]
    if not (missing or unexpected or wrong):
        return
    problems = []
    if wrong:
        problems.append("shape mismatch: " + "; ".join(f"{n} is {list(s)}, expected {list(e)}" for n, s, e in wrong[:3])
                        + (f" (+{len(wrong) - 3} more)" if len(wrong) > 3 else ""))
    if missing:
        problems.append(f"{len(missing)} missing tensors, e.g. {missing[:3]}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors, e.g. {unexpected[:3]}")
    raise VAELoadError(f"{label} does not match {config_label}: " + "; ".join(problems) +
                       ". Put the VAE's own config.json beside it (or pass config=), or use the matching VAE file.")


# ---------------------------------------------------------------- locating files


def _is_vae_config(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    inner = data.get("constructor_kwargs", data)
    return data if isinstance(inner, dict) and "block_out_channels" in inner and "latent_channels" in inner else None


def _weights_in_folder(folder: Path) -> list[Path]:
    for index in sorted(folder.glob("*.index.json")):
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
            raise VAELoadError(f"cannot read shard index {index}: {exc}") from exc
        shards = [folder / name for name in sorted(set(weight_map.values()))]
        absent = [str(p) for p in shards if not p.is_file()]
        if absent:
            raise VAELoadError(f"{index} lists shards that are missing: {absent}")
        return shards
    candidates = [p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() not in (".json", ".md", ".txt")
                  and weights_io.container_kind(p, VAELoadError) != weights_io.UNKNOWN]
    if len(candidates) > 1:
        preferred = [p for name in _WEIGHT_NAMES_PREFERRED for p in candidates if p.name == name]
        if preferred:
            return preferred[:1]
        raise VAELoadError(f"{folder} holds several weight files {[p.name for p in candidates]}; "
                           "point at the one VAE file instead of the folder")
    if not candidates:
        raise VAELoadError(f"{folder} holds no VAE weights (expected pytorch_model.pt or a .safetensors file)")
    return candidates


def _locate(path: Path) -> tuple[list[Path], Path | None]:
    """(weight files, config.json or None) for a file or a folder."""
    if not path.exists():
        raise VAELoadError(f"VAE path {path} does not exist")
    if path.is_dir():
        if not (path / "config.json").is_file() and (path / "vae").is_dir():
            path = path / "vae"  # a whole diffusers pipeline folder
        config = path / "config.json"
        return _weights_in_folder(path), (config if config.is_file() and _is_vae_config(config) else None)
    beside = path.parent / "config.json"
    return [path], (beside if beside.is_file() and _is_vae_config(beside) else None)


# ---------------------------------------------------------------- loading


def _resolve_config(config: VAEConfig | str | os.PathLike | Mapping | None, found: Path | None,
                    causal_attention: bool | None) -> tuple[VAEConfig, str]:
    if isinstance(config, VAEConfig):
        resolved, label = config, "the given config"
    elif isinstance(config, Mapping):
        resolved, label = config_from_dict(config, source="the given config"), "the given config"
    elif config is not None or found is not None:
        config_path = Path(config if config is not None else found)
        data = _is_vae_config(config_path)
        if data is None:
            raise VAELoadError(f"{config_path} is not a VAE config.json (no block_out_channels/latent_channels)")
        try:
            resolved = config_from_dict(data, source=str(config_path))
        except VAEConfigError as exc:
            raise VAELoadError(str(exc)) from exc
        label = f"its config {config_path}"
    else:
        resolved = replace(FULL_SIZE_CONFIG, mid_block_causal_attn=True,
                           notes=("no config.json: full-size HunyuanVideo VAE config assumed, causal mid-block attention",))
        label = "the full-size HunyuanVideo VAE (no config.json found beside it)"
    if causal_attention is not None:
        resolved = replace(resolved, mid_block_causal_attn=bool(causal_attention))
    return resolved, label


def _checkpoint_label(files: list[Path]) -> str:
    return str(files[0]) if len(files) == 1 else f"{files[0].parent} ({len(files)} shards)"


def _name_map(names: list[str], prefix: str) -> dict[str, tuple[str, bool]]:
    """our name -> (name in the file, flatten a 1x1x1 conv weight to a Linear weight)."""
    stripped = {name[len(prefix):]: name for name in names if name.startswith(prefix)}
    if is_ldm_layout(stripped):
        return {ours: (stripped[ldm], flatten) for ours, (ldm, flatten) in ldm_to_upstream_names(stripped).items()}
    return {ours: (name, False) for ours, name in stripped.items()}


def _shape(source: TensorSource, file_name: str, flatten: bool) -> tuple[int, ...]:
    shape = source.shape(file_name)
    if flatten and len(shape) > 2 and all(d == 1 for d in shape[2:]):
        return shape[:2]
    return shape


def _tensors(source: TensorSource, names: Mapping[str, tuple[str, bool]], dtype: torch.dtype,
             device: torch.device) -> Iterator[tuple[str, torch.Tensor]]:
    for model_name, (file_name, flatten) in names.items():
        # One tensor at a time: the converted copy replaces the (mmapped / lazily read) original.
        tensor = source.get(file_name)
        if flatten:
            tensor = tensor.reshape(tensor.shape[0], tensor.shape[1])
        yield model_name, tensor.to(device=device, dtype=dtype)


def _checked(path: str | os.PathLike, config=None, causal_attention: bool | None = None):
    """(tensor source, name map, config, label) once the file is this VAE with every shape right."""
    path = Path(path).expanduser()
    files, found_config = _locate(path)
    label = _checkpoint_label(files)
    source = TensorSource(files)
    names = source.keys()
    prefix = _find_prefix(names, label)
    mapping = _name_map(names, prefix)
    resolved, config_label = _resolve_config(config, found_config, causal_attention)
    check_shapes({k: _shape(source, *v) for k, v in mapping.items()}, resolved, label, config_label)
    return source, mapping, resolved, label


def check_vae(path: str | os.PathLike) -> None:
    """Everything load_vae checks before it reads a weight, from headers only: the files and their
    integrity, that they hold this VAE (not a transformer or an image VAE), and every shape against
    the config. Raises VAELoadError; reads no tensor data. (Legacy non-zip pickles cannot be opened
    without reading them whole, so they are checked when they load.)"""
    files, _ = _locate(Path(path).expanduser())
    if any(weights_io.container_kind(f, VAELoadError) == weights_io.LEGACY_PICKLE for f in files):
        return
    _checked(path)


def load_vae(
    path: str | os.PathLike,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    config: VAEConfig | str | os.PathLike | Mapping | None = None,
    causal_attention: bool | None = None,
) -> HunyuanVideoVAE:
    """Load the VAE at `path` (file or folder). `config` overrides the config.json found beside it;
    `causal_attention` overrides the mid-block attention choice (see the module docstring)."""
    source, mapping, resolved, label = _checked(path, config, causal_attention)
    device = torch.device(device)
    model = build_diffusers_vae(resolved, device="meta")
    state = dict(_tensors(source, mapping, dtype, device))
    model.load_state_dict(state, strict=True, assign=True)
    del state
    leftovers = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if leftovers:  # would only happen if diffusers added non-persistent buffers
        raise VAELoadError(f"{label}: tensors not set after loading: {leftovers[:5]}")
    return HunyuanVideoVAE(model.eval().requires_grad_(False), resolved, source=label)
