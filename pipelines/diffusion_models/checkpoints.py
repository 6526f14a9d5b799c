"""Read HunyuanCustom transformer checkpoints in every layout they are shipped in.

What a file is gets decided from its bytes, keys and shapes, never from its name: people rename
checkpoints freely (ComfyUI folders are full of `model.safetensors`, `mp_rank_00_model_states.pt`).

Layouts:
- upstream `mp_rank_00_model_states.pt`: torch zip pickle, state dict under `module` (bf16);
- upstream `..._fp8.pt` + `..._fp8_map.pt`: float8_e4m3fn block Linears, per-layer scales in the
  map file (`map['module'][module_name]`), weight = w.to(dtype) * scale (hymm_sp fp8_optimization);
- ComfyUI single-file safetensors, bf16 or fp8-scaled (`<module>.scale_weight` per Linear and a
  `scaled_fp8` marker; weight = w.to(dtype) * scale_weight, comfy/ops.py), optionally prefixed
  `model.diffusion_model.`; keys are upstream's names;
- diffusers folders (config.json + diffusion_pytorch_model*.safetensors, maybe sharded + index).

Tensors are memory-mapped (torch.load(mmap=True) / safetensors safe_open) and handed out one by one,
so building a model from them holds about one copy of the weights (legacy non-zip pickles cannot be
memory-mapped and cost a second copy). Pickles are only ever read with torch.load(weights_only=True):
nothing executable is unpickled. The raw file reading is pipelines/weights_io.py, shared with the VAE.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

from .. import weights_io

UPSTREAM = "upstream"  # key naming of hymm_sp / ComfyUI files
DIFFUSERS = "diffusers"  # key naming of our diffusers-style module

# Prefixes ComfyUI (and other tools) put in front of the diffusion model's keys.
_COMFY_UNET_PREFIX = "model.diffusion_model."
_KNOWN_PREFIXES = (_COMFY_UNET_PREFIX, "diffusion_model.", "module.", "model.")
_SCALE_SUFFIX = ".scale_weight"  # ComfyUI scaled fp8: per-Linear weight scale
_INPUT_SCALE_SUFFIX = ".scale_input"  # ComfyUI scaled fp8: activation scale, only for fp8 matmul
_COMFY_FP8_MARKER = "scaled_fp8"

FLOAT8_DTYPES = tuple(
    getattr(torch, name) for name in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")
    if hasattr(torch, name)
)


class CheckpointError(weights_io.WeightsFileError, ValueError):
    """A checkpoint that cannot be used, with what was wrong, in which file, and what to do."""


def is_float8(dtype: torch.dtype) -> bool:
    return dtype in FLOAT8_DTYPES


@dataclass
class TransformerCheckpoint:
    """A transformer checkpoint opened for reading; tensors stay memory-mapped until asked for.

    `tensor(key)` returns the tensor exactly as stored (float8 stays float8); `scales[key]` is the
    per-tensor scale of a float8 weight (from the fp8 map or the ComfyUI `scale_weight`).
    """

    path: Path
    format: str  # "upstream-pt", "upstream-fp8-pt", "comfyui-safetensors", "comfyui-fp8-scaled", "diffusers-folder"
    naming: str  # UPSTREAM or DIFFUSERS
    files: list[Path]
    config: dict[str, Any] | None  # the config.json found beside the checkpoint, as parsed JSON
    config_path: Path | None
    _tensors: dict[str, Any] = field(repr=False, default_factory=dict)  # key -> tensor or (handle, stored key)
    scales: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)

    def keys(self) -> list[str]:
        return list(self._tensors)

    def __contains__(self, key: str) -> bool:
        return key in self._tensors

    def tensor(self, key: str) -> torch.Tensor:
        entry = self._tensors[key]
        if isinstance(entry, torch.Tensor):
            return entry
        handle, stored_key = entry
        return handle.get_tensor(stored_key)

    def meta(self, key: str) -> torch.Tensor:
        """A meta tensor with the stored shape and dtype (for checks that must not read data)."""
        entry = self._tensors[key]
        if isinstance(entry, torch.Tensor):
            return torch.empty(entry.shape, dtype=entry.dtype, device="meta")
        handle, stored_key = entry
        sl = handle.get_slice(stored_key)
        return torch.empty(sl.get_shape(), dtype=weights_io.safetensors_dtype(sl.get_dtype(), CheckpointError), device="meta")

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: tuple(self.meta(k).shape) for k in self._tensors}

    def items(self) -> Iterator[tuple[str, torch.Tensor]]:
        for key in self._tensors:
            yield key, self.tensor(key)

    @property
    def has_float8(self) -> bool:
        return any(is_float8(self.meta(k).dtype) for k in self._tensors)


# ----------------------------------------------------------------------------------------------
# key layout (reading the files themselves: pipelines/weights_io.py)

_NESTED_KEYS = ("module", "state_dict")  # upstream/DeepSpeed keep the weights under `module`


def variant_of(ckpt: TransformerCheckpoint) -> str:
    """Which released transformer this is, from its keys: "editing" (bg_in / bg_proj), "audio"
    (audio_proj / audio_models) or "ref2v". The same names in upstream and our diffusers folders."""
    keys = ckpt.keys()
    if any(k.startswith("bg_in.") for k in keys):
        return "editing"
    if any(k.startswith("audio_proj.") for k in keys):
        return "audio"
    return "ref2v"


_VARIANTS: dict[tuple, str] = {}


def checkpoint_variant(path: str | Path) -> str:
    """variant_of() for a file or folder, read from its header / index only (no tensor data), cached
    by path, size and mtime: the check before a job loads anything."""
    path = Path(path).expanduser()
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _VARIANTS:
        _VARIANTS[key] = variant_of(open_checkpoint(path))
    return _VARIANTS[key]


def _strip_prefix(keys: list[str]) -> str:
    """The prefix every model key shares (ComfyUI's `model.diffusion_model.`), or ''."""
    for prefix in _KNOWN_PREFIXES:
        if keys and all(k.startswith(prefix) for k in keys):
            return prefix
    return ""


# ----------------------------------------------------------------------------------------------
# config.json beside the checkpoint


def read_config_beside(path: Path) -> tuple[dict | None, Path | None]:
    folder = path if path.is_dir() else path.parent
    candidate = folder / "config.json"
    if not candidate.is_file():
        return None, None
    config = weights_io.read_json_file(candidate, CheckpointError)
    if not isinstance(config, dict):
        raise CheckpointError(f"{candidate}: not a JSON object; fix or remove it.")
    return config, candidate


def config_kind(config: dict) -> str:
    """'upstream' (fixture format: constructor_kwargs + args_namespace) or 'diffusers'."""
    if "constructor_kwargs" in config or "constructor_kwargs" in config.get("B_transformer_level", {}):
        return "upstream"  # (the audio fixture nests it under B_transformer_level)
    if "_class_name" in config or "_diffusers_version" in config:
        return "diffusers"
    raise CheckpointError(
        "config.json is neither the upstream format (constructor_kwargs + args_namespace) nor a diffusers "
        f"config (_class_name); its keys are {sorted(config)[:12]}."
    )


# ----------------------------------------------------------------------------------------------
# fp8 map (upstream)


def fp8_map_candidates(path: Path) -> list[Path]:
    """Where upstream puts the scales: the checkpoint name with `_map` before the suffix
    (hymm_sp: `ckpt.replace('.pt', '_map.pt')`)."""
    stem, suffix = path.stem, path.suffix
    names = [f"{stem}_map{suffix}", f"{stem}_map.pt"] if suffix else [f"{path.name}_map.pt"]
    return [path.with_name(n) for n in dict.fromkeys(names)]


def _read_fp8_map(path: Path, fp8_weight_keys: list[str]) -> dict[str, torch.Tensor]:
    candidates = fp8_map_candidates(path)
    map_path = next((c for c in candidates if c.is_file()), None)
    if map_path is None:
        raise CheckpointError(
            f"{path}: this is an fp8 checkpoint ({len(fp8_weight_keys)} float8 weights such as "
            f"{fp8_weight_keys[0]}) but its scale map file is missing: expected {candidates[0]} next to it. "
            "Download the matching *_map.pt file from the same place as the checkpoint."
        )
    raw = weights_io.load_torch_file(map_path, CheckpointError)
    if isinstance(raw, dict) and isinstance(raw.get("module"), dict):
        raw = raw["module"]
    if not isinstance(raw, dict):
        raise CheckpointError(f"{map_path}: expected a dict of per-layer scales (under 'module'), got {type(raw).__name__}.")
    scales = {}
    for weight_key in fp8_weight_keys:
        module = weight_key[: -len(".weight")] if weight_key.endswith(".weight") else weight_key
        scale = raw.get(module, raw.get(weight_key))
        if not isinstance(scale, torch.Tensor):
            raise CheckpointError(
                f"{map_path}: no scale for the float8 layer {module} of {path.name}; the map does not belong "
                "to this checkpoint."
            )
        scales[weight_key] = scale
    return scales


# ----------------------------------------------------------------------------------------------
# opening


def open_checkpoint(path: str | Path) -> TransformerCheckpoint:
    """Open a transformer checkpoint (file or diffusers folder) and work out its layout."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or folder.")
    if path.is_dir():
        ckpt = _open_folder(path)
    else:
        ckpt = _open_file(path)
    check_is_hunyuan_custom(ckpt)
    return ckpt


def _open_file(path: Path) -> TransformerCheckpoint:
    kind = weights_io.container_kind(path, CheckpointError)
    config, config_path = read_config_beside(path)
    if kind == weights_io.SAFETENSORS:
        handle = weights_io.open_safetensors(path, CheckpointError)
        stored = list(handle.keys())
        entries = {k: (handle, k) for k in stored}
        fmt_base = "comfyui-safetensors"
    elif kind in (weights_io.TORCH_ZIP, weights_io.LEGACY_PICKLE):
        entries = weights_io.tensor_state_dict(
            weights_io.load_torch_file(path, CheckpointError), path, _NESTED_KEYS,
            "a transformer state dict (upstream checkpoints keep it under the key 'module')", CheckpointError)
        fmt_base = "upstream-pt"
    else:
        raise CheckpointError(weights_io.unknown_container_message(path))
    ckpt = TransformerCheckpoint(path, fmt_base, UPSTREAM, [path], config, config_path)
    _normalise_keys(ckpt, entries)
    _attach_scales(ckpt, from_torch_pickle=(fmt_base == "upstream-pt"))
    return ckpt


def _normalise_keys(ckpt: TransformerCheckpoint, entries: dict[str, Any]) -> None:
    """Drop prefixes and ComfyUI's fp8 bookkeeping keys; keep scales aside; decide the key naming."""
    marker_keys = [k for k in entries if k.split(".")[-1] == _COMFY_FP8_MARKER]
    keys = [k for k in entries if k not in marker_keys]
    if any(k.startswith(_COMFY_UNET_PREFIX) for k in keys):
        # a ComfyUI "full" checkpoint may also hold vae.* / text_encoders.*: take the diffusion model
        keys = [k for k in keys if k.startswith(_COMFY_UNET_PREFIX)]
    prefix = _strip_prefix(keys)
    tensors, scales = {}, {}
    for key in keys:
        name = key[len(prefix):]
        if name.endswith(_SCALE_SUFFIX):
            scales[name[: -len(_SCALE_SUFFIX)] + ".weight"] = key
        elif name.endswith(_INPUT_SCALE_SUFFIX):
            continue  # only used by ComfyUI's fp8 matmul path; the weight formula does not need it
        else:
            tensors[name] = entries[key]
    ckpt._tensors = tensors
    ckpt._comfy_scale_keys = {w: entries[s] for w, s in scales.items()}  # type: ignore[attr-defined]
    ckpt._comfy_marker = bool(marker_keys)  # type: ignore[attr-defined]
    ckpt.naming = detect_naming(list(tensors))


def _resolve(entry: Any) -> torch.Tensor:
    if isinstance(entry, torch.Tensor):
        return entry
    handle, key = entry
    return handle.get_tensor(key)


def _attach_scales(ckpt: TransformerCheckpoint, from_torch_pickle: bool) -> None:
    comfy_scales = getattr(ckpt, "_comfy_scale_keys", {})
    fp8_keys = [k for k in ckpt.keys() if is_float8(ckpt.meta(k).dtype)]
    if comfy_scales or getattr(ckpt, "_comfy_marker", False):
        ckpt.format = "comfyui-fp8-scaled" if ckpt.format == "comfyui-safetensors" else ckpt.format + "-fp8-scaled"
        missing = [k for k in comfy_scales if k not in ckpt]
        if missing:
            raise CheckpointError(f"{ckpt.path}: scale_weight for {missing[0]} but no such weight; the file is inconsistent.")
        ckpt.scales = {k: _resolve(v) for k, v in comfy_scales.items()}
        # float8 weights without a scale_weight were cast without scaling (scale 1).
        for k in fp8_keys:
            ckpt.scales.setdefault(k, torch.ones((), dtype=torch.float32))
    elif fp8_keys and from_torch_pickle:
        ckpt.format = "upstream-fp8-pt"
        ckpt.scales = _read_fp8_map(ckpt.path, fp8_keys)
    elif fp8_keys:
        # plain fp8 cast (e.g. ComfyUI "..._fp8_e4m3fn.safetensors"): no scale, i.e. scale 1
        ckpt.format = ckpt.format + "-fp8"
        ckpt.scales = {k: torch.ones((), dtype=torch.float32) for k in fp8_keys}


def _open_folder(path: Path) -> TransformerCheckpoint:
    index = sorted(path.glob("*.safetensors.index.json"))
    if index:
        try:
            weight_map = json.loads(index[0].read_text())["weight_map"]
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
            raise CheckpointError(f"{index[0]}: not a valid safetensors index ({exc}).") from None
        files = [path / name for name in dict.fromkeys(weight_map.values())]
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise CheckpointError(f"{path}: shard {missing[0].name} listed in {index[0].name} is missing.")
    else:
        files = sorted(path.glob("*.safetensors"))
        if not files:
            raise CheckpointError(_not_a_transformer_folder(path))
        if len(files) > 1:
            raise CheckpointError(
                f"{path}: {len(files)} safetensors files but no *.safetensors.index.json saying how they "
                "belong together; pass one file instead."
            )
    entries: dict[str, Any] = {}
    for file in files:
        if weights_io.container_kind(file, CheckpointError) != weights_io.SAFETENSORS:
            raise CheckpointError(f"{file}: not a safetensors file (truncated or corrupt?).")
        handle = weights_io.open_safetensors(file, CheckpointError)
        for key in handle.keys():
            entries[key] = (handle, key)
    config, config_path = read_config_beside(path)
    ckpt = TransformerCheckpoint(path, "diffusers-folder", DIFFUSERS, files, config, config_path)
    _normalise_keys(ckpt, entries)
    if ckpt.naming == UPSTREAM:
        ckpt.format = "upstream-safetensors-folder"
    _attach_scales(ckpt, from_torch_pickle=False)
    return ckpt


TRANSFORMER_HINT = ("a HunyuanCustom transformer checkpoint: upstream's hunyuancustom_720P/mp_rank_00_model_states.pt "
                    "(or its _fp8.pt), ComfyUI's hunyuan_video_custom_720p_bf16.safetensors / _fp8_scaled.safetensors, "
                    "or a diffusers folder")


def _not_a_transformer_folder(path: Path) -> str:
    """What a folder without safetensors weights is instead, and which file to pass: a transformer
    checkpoint inside it if there is one (read from its header), never just any .pt."""
    config, _ = read_config_beside(path) if (path / "config.json").is_file() else (None, None)
    inner = (config or {}).get("constructor_kwargs", config or {})
    if isinstance(inner, dict) and "block_out_channels" in inner and "latent_channels" in inner:
        return (f"{path}: this is a VAE folder (its config.json describes the 3D VAE); give it as the VAE. "
                f"The transformer is {TRANSFORMER_HINT}.")
    for candidate in sorted(p for p in path.iterdir() if p.suffix in (".pt", ".pth", ".bin", ".ckpt")):
        if weights_io.container_kind(candidate, CheckpointError) != weights_io.TORCH_ZIP:
            continue  # only zip checkpoints can be looked into without reading them whole
        try:
            open_checkpoint(candidate)
        except CheckpointError:
            continue
        return f"{path}: a folder without safetensors weights; pass the checkpoint file itself: {candidate}."
    return f"{path}: a folder without safetensors weights and no transformer checkpoint in it. Pass {TRANSFORMER_HINT}."


# ----------------------------------------------------------------------------------------------
# what is it?


def detect_naming(keys: list[str]) -> str:
    key_set = set(keys)
    if "img_in.proj.weight" in key_set or any(k.startswith(("double_blocks.", "single_blocks.")) for k in keys):
        return UPSTREAM
    if "x_embedder.proj.weight" in key_set or any(k.startswith(("transformer_blocks.", "single_transformer_blocks.")) for k in keys):
        return DIFFUSERS
    return "unknown"


def check_is_hunyuan_custom(ckpt: TransformerCheckpoint) -> None:
    """Refuse checkpoints of other models with a message that says what they look like."""
    keys = ckpt.keys()
    has = lambda *prefixes: any(k.startswith(prefixes) for k in keys)  # noqa: E731
    where = ckpt.path
    if has("guidance_in.") or (ckpt.naming == DIFFUSERS and has("time_text_embed.guidance_embedder.")):
        raise CheckpointError(
            f"{where}: this is a HunyuanVideo text-to-video checkpoint (has guidance_in); HunyuanCustom needs "
            "its own transformer weights (hunyuancustom_720P/mp_rank_00_model_states.pt, or the ComfyUI "
            "hunyuan_video_custom_720p_bf16.safetensors / _fp8_scaled.safetensors)."
        )
    if ckpt.naming in (UPSTREAM, DIFFUSERS):
        return
    vae_parts = ("encoder.down_blocks.", "decoder.up_blocks.", "encoder.conv_in.", "decoder.conv_in.",
                 "post_quant_conv.", "encoder.down.", "decoder.up.")
    if any(k.split(".", 1)[-1].startswith(vae_parts) or k.startswith(vae_parts) for k in keys):  # also `vae.`-prefixed
        looks = "a VAE (encoder/decoder convolution blocks); give it as the VAE"
    elif has("model.layers.", "language_model.", "layers.0.self_attn.", "model.embed_tokens."):
        looks = "a text encoder (Llama/LLaVA layers); give it as text_encoder"
    elif has("text_model.", "vision_model.", "encoder.block."):
        looks = "a text/image encoder (CLIP/T5); CLIP-L goes in as text_encoder_2"
    elif has("audio_proj.", "audio_models.") or any("whisper" in k for k in keys):
        looks = "audio weights without the transformer"
    else:
        looks = "no model this pack knows (first keys: " + ", ".join(sorted(keys)[:5]) + ")"
    raise CheckpointError(
        f"{where}: this is not a HunyuanCustom transformer: it has no img_in.proj.weight / double_blocks "
        f"and looks like {looks}. The transformer is {TRANSFORMER_HINT}."
    )


def describe_upstream_shapes(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """Architecture numbers read off upstream-named tensor shapes (for checks and error messages)."""
    out: dict[str, Any] = {}

    def shape(key: str) -> tuple[int, ...] | None:
        return shapes.get(key)

    def depth(prefix: str) -> int:
        idx = [int(k[len(prefix):].split(".")[0]) for k in shapes if k.startswith(prefix) and k[len(prefix):].split(".")[0].isdigit()]
        return max(idx) + 1 if idx else 0

    img_in = shape("img_in.proj.weight")
    if img_in:
        out["hidden_size"] = img_in[0]
        out["in_channels"] = img_in[1]
        out["patch_size"] = list(img_in[2:])
    q_norm = shape("double_blocks.0.img_attn_q_norm.weight") or shape("single_blocks.0.q_norm.weight")
    if q_norm and img_in:
        out["head_dim"] = q_norm[0]
        out["num_heads"] = img_in[0] // q_norm[0] if q_norm[0] else None
    out["depth_double_blocks"] = depth("double_blocks.")
    out["depth_single_blocks"] = depth("single_blocks.")
    fc1 = shape("double_blocks.0.img_mlp.fc1.weight")
    if fc1 and img_in:
        out["mlp_width_ratio"] = fc1[0] / img_in[0]
    final = shape("final_layer.linear.weight")
    if final and img_in:
        out["out_channels"] = final[0] // max(1, int(torch.tensor(img_in[2:]).prod()))
    text = shape("txt_in.input_embedder.weight")
    if text:
        out["text_states_dim"] = text[1]
    vec = shape("vector_in.in_layer.weight")
    if vec:
        out["text_states_dim_2"] = vec[1]
    out["video_condition"] = any(k.startswith("bg_in.") for k in shapes)
    out["audio_condition"] = any(k.startswith("audio_proj.") for k in shapes)
    return out
