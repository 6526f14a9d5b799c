"""Build a HunyuanCustomTransformer3DModel from any checkpoint layout `checkpoints` can read.

The model is created on the meta device (accelerate's init_empty_weights), every checkpoint tensor is
converted one at a time (rename, split fused weights, dtype, fp8) and handed over with
load_state_dict(assign=True). Tensors whose dtype does not change stay memory-mapped views of the
file; converted ones get new memory and their file pages are given back (mapped_memory), so peak
RAM stays near one copy of the (converted) weights.

Before any weight is read, the shapes the model expects are compared with the checkpoint's: a
config.json beside the checkpoint (fixture/upstream format or diffusers format) gives the constructor
arguments; without one FULL_SIZE_CONFIG is assumed. Any difference is an error naming the tensor and
both shapes; nothing is reshaped silently.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn

from .checkpoints import (
    UPSTREAM,
    CheckpointError,
    TransformerCheckpoint,
    config_kind,
    describe_upstream_shapes,
    is_float8,
    open_checkpoint,
    variant_of,
)
from .fp8_linear import Fp8ScaledLinear, dequantize, replace_linear
from .. import weights_io
from ..mapped_memory import FileMappings

DTYPE_CHOICES = ("keep", "bf16", "fp16", "fp32")
FP8_MODES = ("dequantize", "keep")

_DTYPES = {
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
    "fp32": torch.float32, "float32": torch.float32, "float": torch.float32,
}


def resolve_dtype(dtype: str | torch.dtype, ckpt: TransformerCheckpoint) -> torch.dtype:
    """'keep' means the checkpoint's own (most common, non-float8) floating dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "keep":
        counts: Counter = Counter()
        for key in ckpt.keys():
            meta = ckpt.meta(key)
            if meta.is_floating_point() and not is_float8(meta.dtype):
                counts[meta.dtype] += meta.numel()
        return counts.most_common(1)[0][0] if counts else torch.bfloat16
    try:
        return _DTYPES[dtype]
    except KeyError:
        raise ValueError(f"dtype must be one of {DTYPE_CHOICES}, got {dtype!r}") from None


# ----------------------------------------------------------------------------------------------
# model class, config, key conversion (from the transformer modules)


def _model_class():
    from .transformer import HunyuanCustomTransformer3DModel

    return HunyuanCustomTransformer3DModel


def _keys_module():
    from . import keys as transformer_keys

    return transformer_keys


# The largest sizes a config.json may ask for (the released model: 20 + 40 blocks, 24 heads of 128):
# a few times what any HunyuanVideo-family model has, so a stray or hostile config is refused before
# even the empty model is built (2000 blocks took 19 s to build on the meta device).
CONFIG_BOUNDS = {
    "num_layers": 80, "num_single_layers": 160, "num_refiner_layers": 16, "num_attention_heads": 128,
    "attention_head_dim": 512, "in_channels": 256, "out_channels": 256, "patch_size": 16, "patch_size_t": 16,
    "mlp_ratio": 16, "text_embed_dim": 16384, "pooled_projection_dim": 16384, "rope_axes_dim": 1024,
    "audio_seq_len": 1024, "audio_blocks": 64, "audio_channels": 8192, "audio_intermediate_dim": 65536,
    "audio_context_tokens": 1024,
}


def model_config_for(ckpt: TransformerCheckpoint) -> tuple[dict[str, Any], str]:
    """(constructor kwargs, where they came from) for this checkpoint, within CONFIG_BOUNDS."""
    config, where = _model_config_for(ckpt)
    weights_io.check_config_bounds(config, CONFIG_BOUNDS, where, CheckpointError)
    return config, where


def _model_config_for(ckpt: TransformerCheckpoint) -> tuple[dict[str, Any], str]:
    keys = _keys_module()
    if ckpt.config is None:
        # Which of the three released variants it is shows in its keys; every size is checked later.
        variant = variant_of(ckpt)
        where = f"the released HunyuanCustom {variant} model's sizes (no config.json beside the checkpoint)"
        return keys.full_size_config(variant), where
    kind = config_kind(ckpt.config)
    where = str(ckpt.config_path)
    if kind == "upstream":
        try:
            return dict(keys.config_from_upstream_json(ckpt.config)), where
        except ValueError as exc:
            raise CheckpointError(f"{where}: {exc}") from None
    cls = _model_class()
    init_keys = set(cls.extract_init_dict(ckpt.config)[0]) if hasattr(cls, "extract_init_dict") else set(ckpt.config)
    return {k: v for k, v in ckpt.config.items() if k in init_keys}, where


def build_empty_model(config: dict[str, Any]) -> nn.Module:
    """The model with every parameter on the meta device (no memory, no random init)."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = _model_class()(**config)
    return model


# ----------------------------------------------------------------------------------------------
# planning: which checkpoint tensor becomes which model tensor


class _Plan:
    """How checkpoint tensors become model tensors: our key -> (checkpoint key, meta tensor)."""

    def __init__(self) -> None:
        self.mappings: dict[str, Any] = {}  # checkpoint key -> transformer_keys.KeyMapping (upstream naming)
        self.unknown: list[str] = []  # checkpoint keys with no place in the model
        self.source: dict[str, str] = {}
        self.meta: dict[str, torch.Tensor] = {}

    def convert(self, key: str, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
        mapping = self.mappings.get(key)
        return mapping.apply(tensor) if mapping is not None else {key: tensor}

    def is_view(self, key: str) -> bool:
        """True when every piece is a plain row range (no reordering copy, works for float8)."""
        mapping = self.mappings.get(key)
        return mapping is None or all(piece.target_start is None for piece in mapping.pieces)


def _plan(ckpt: TransformerCheckpoint) -> _Plan:
    plan = _Plan()
    metas = {key: ckpt.meta(key) for key in ckpt.keys()}
    if ckpt.naming == UPSTREAM:
        keys = _keys_module()
        hidden = keys.infer_hidden_size({k: tuple(m.shape) for k, m in metas.items()})
        for key, meta in metas.items():
            try:
                mapping = keys.map_upstream_key(key, tuple(meta.shape), hidden)
            except ValueError as exc:
                raise CheckpointError(f"{ckpt.path}: {exc}") from None
            if mapping is None:
                plan.unknown.append(key)
            else:
                plan.mappings[key] = mapping
    for key, meta in metas.items():
        if key in plan.unknown:
            continue
        for our_key, tensor in plan.convert(key, meta).items():
            if our_key in plan.source:
                raise CheckpointError(f"{ckpt.path}: tensors {plan.source[our_key]} and {key} both map to {our_key}.")
            plan.source[our_key] = key
            plan.meta[our_key] = tensor
    return plan


# Upstream tensors whose shapes tell the architecture (hidden size, heads, text dims, conditions).
_SIZE_TELLING = [
    "img_in.proj.weight",
    "double_blocks.0.img_attn_q_norm.weight",
    "single_blocks.0.q_norm.weight",
    "txt_in.input_embedder.weight",
    "vector_in.in_layer.weight",
    "final_layer.linear.weight",
    "double_blocks.0.img_mlp.fc1.weight",
    "bg_in.proj.weight",
    "audio_proj.proj1.weight",
]


def _fmt(shape: Iterable[int]) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def check_shapes(ckpt: TransformerCheckpoint, plan: _Plan, expected: dict[str, torch.Tensor], config_source: str) -> None:
    """Every model tensor must come from the checkpoint with the same shape, and nothing may be left over."""
    shape_problems, extra, missing = [], [f"checkpoint tensor {key} {_fmt(ckpt.meta(key).shape)} has no place in the model" for key in plan.unknown], []
    for our_key, meta in plan.meta.items():
        want = expected.get(our_key)
        src = plan.source[our_key]
        name = src if src == our_key else f"{src} (model tensor {our_key})"
        if want is None:
            extra.append(f"checkpoint tensor {name} {_fmt(meta.shape)} has no place in the model")
        elif tuple(want.shape) != tuple(meta.shape):
            rank = _SIZE_TELLING.index(src) if src in _SIZE_TELLING else len(_SIZE_TELLING)
            shape_problems.append((rank, f"tensor {name}: checkpoint shape {_fmt(meta.shape)}, model expects {_fmt(want.shape)}"))
    for our_key, want in expected.items():
        if our_key not in plan.meta:
            missing.append(f"model tensor {our_key} {_fmt(want.shape)} is missing from the checkpoint")
    # the tensors that tell hidden size, head count, text dims come first; then depth/condition differences
    problems = [text for _, text in sorted(shape_problems, key=lambda item: item[0])] + extra + missing
    if not problems:
        return
    # The first few lines name tensors and shapes; the summary says what the file actually is.
    looks = ""
    if ckpt.naming == UPSTREAM:
        desc = describe_upstream_shapes(ckpt.shapes())
        looks = "\nThe checkpoint looks like: " + ", ".join(f"{k}={v}" for k, v in desc.items())
    shown = "\n  ".join(problems[:8]) + (f"\n  ... and {len(problems) - 8} more" if len(problems) > 8 else "")
    raise CheckpointError(
        f"{ckpt.path} does not match the model configuration from {config_source}:\n  {shown}{looks}\n"
        "Put the config.json that belongs to this checkpoint next to it (or remove a wrong one)."
    )


# ----------------------------------------------------------------------------------------------
# loading


def _scalar_scale(scale: torch.Tensor) -> torch.Tensor | None:
    return scale.reshape(()) if scale.numel() == 1 else None


_EXPECTED: dict[str, dict[str, torch.Tensor]] = {}


def _expected_tensors(config: dict[str, Any], ckpt: TransformerCheckpoint,
                      config_source: str) -> dict[str, torch.Tensor]:
    """The model's tensors (meta: shapes only) for `config`. Building even an empty full-size model
    takes seconds, so the shapes are kept per configuration for the next check."""
    key = json.dumps(config, sort_keys=True, default=str)
    if key not in _EXPECTED:
        model = _build(config, ckpt, config_source)
        # fp8 'keep' later swaps Linears for Fp8ScaledLinear: same weights, plus a weight_scale of our own.
        _EXPECTED[key] = {k: v for k, v in model.state_dict(keep_vars=True).items() if not k.endswith(".weight_scale")}
    return _EXPECTED[key]


def _build(config: dict[str, Any], ckpt: TransformerCheckpoint, config_source: str) -> nn.Module:
    try:
        return build_empty_model(config)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{ckpt.path}: cannot build the transformer from {config_source}: {exc}") from None


def _checked(path: str | Path) -> tuple[TransformerCheckpoint, _Plan, dict[str, Any], str]:
    """The opened checkpoint, its plan and its model configuration, once every shape matched."""
    ckpt = open_checkpoint(path)
    config, config_source = model_config_for(ckpt)
    plan = _plan(ckpt)
    check_shapes(ckpt, plan, _expected_tensors(config, ckpt, config_source), config_source)
    return ckpt, plan, config, config_source


_AUDIO_WINDOWS: dict[tuple, tuple[int, int, int] | None] = {}


def audio_window_shape(path: str | Path) -> tuple[int, int, int] | None:
    """(rows, Whisper states, Whisper width) of the audio windows this checkpoint's audio projection
    takes: (10, 5, 384) for the released audio checkpoint, i.e. whisper-tiny's 4 layers + embeddings
    of 384 channels; from its header and config only, remembered by size and mtime. None when the
    checkpoint has no audio input."""
    path = Path(path).expanduser()
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _AUDIO_WINDOWS:
        config, _ = model_config_for(open_checkpoint(path))
        full = _keys_module().FULL_SIZE_CONFIG
        _AUDIO_WINDOWS[key] = tuple(int(config.get(name, full[name])) for name in (
            "audio_seq_len", "audio_blocks", "audio_channels")) if config.get("audio_condition") else None
    return _AUDIO_WINDOWS[key]


def check_transformer(path: str | Path) -> None:
    """Everything load_transformer checks before it reads a weight, from headers only: the container
    and its integrity (safetensors header against the file size, the zip directory of a .pt), that it
    is a HunyuanCustom transformer, the fp8 scale map beside an fp8 checkpoint, and every tensor's shape
    against the configuration. Raises CheckpointError; reads no tensor data. (A legacy non-zip pickle
    cannot be opened without reading it whole, so it is checked when it loads.)"""
    path = Path(path).expanduser()
    if path.is_file() and weights_io.container_kind(path, CheckpointError) == weights_io.LEGACY_PICKLE:
        return
    _checked(path)


def load_transformer(
    path: str | Path,
    dtype: str | torch.dtype = "keep",
    fp8_mode: str = "dequantize",
    device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> nn.Module:
    """Load a HunyuanCustom transformer from any supported checkpoint layout.

    dtype: "keep" (the checkpoint's own), "bf16", "fp16" or "fp32".
    fp8_mode (fp8 checkpoints only): "dequantize" = w.to(dtype) * scale at load; "keep" = weights stay
    float8 in memory and are scaled per call (Fp8ScaledLinear); both give the same output.
    """
    if fp8_mode not in FP8_MODES:
        raise ValueError(f"fp8_mode must be one of {FP8_MODES}, got {fp8_mode!r}")
    ckpt, plan, config, config_source = _checked(path)
    target = resolve_dtype(dtype, ckpt)
    model = _build(config, ckpt, config_source)
    model.requires_grad_(False)  # inference weights; float8 tensors cannot require grad anyway

    # Which of our weights stay float8: Linear weights from a float8 tensor with a per-tensor scale.
    kept_fp8: dict[str, torch.Tensor] = {}
    if fp8_mode == "keep":
        for our_key, src in plan.source.items():
            scale = ckpt.scales.get(src)
            if scale is None or not our_key.endswith(".weight") or not is_float8(plan.meta[our_key].dtype) or not plan.is_view(src):
                continue
            scale = _scalar_scale(scale)
            if scale is not None and replace_linear(model, our_key[: -len(".weight")]):
                kept_fp8[our_key] = scale

    state: dict[str, torch.Tensor] = {}
    by_source: dict[str, list[str]] = {}
    for our_key, src in plan.source.items():
        by_source.setdefault(src, []).append(our_key)
    total = len(by_source)
    mapped = FileMappings(ckpt.files)
    for i, (src, our_keys) in enumerate(by_source.items()):
        stored = ckpt.tensor(src)
        tensor = stored
        keep_float8 = all(k in kept_fp8 for k in our_keys)
        if is_float8(tensor.dtype) and not keep_float8:
            tensor = dequantize(tensor, ckpt.scales.get(src, torch.ones(())), target)
        elif tensor.is_floating_point() and not is_float8(tensor.dtype):
            tensor = tensor.to(target)  # no copy when the dtype already matches: stays memory-mapped
        if tensor.data_ptr() != stored.data_ptr():
            mapped.release(stored)  # converted into new memory: the file pages are not needed any more
        del stored
        converted = plan.convert(src, tensor)
        for our_key, value in converted.items():
            state[our_key] = value
            if our_key in kept_fp8:
                # a weight dequantized anyway (e.g. its source could not stay float8) gets scale 1
                scale = kept_fp8[our_key] if is_float8(value.dtype) else torch.ones(())
                state[our_key[: -len(".weight")] + ".weight_scale"] = scale.to(torch.float32)
        if progress is not None:
            progress(i + 1, total)

    model.load_state_dict(state, strict=True, assign=True)
    del state
    leftovers = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if leftovers:
        raise CheckpointError(f"{ckpt.path}: the model still has unloaded tensors after loading: {leftovers[:5]}")
    model.eval()
    if torch.device(device).type != "cpu":
        model.to(device)
    model.hyc_checkpoint_format = ckpt.format  # for logs and node outputs
    return model


def fp8_layer_names(model: nn.Module) -> list[str]:
    """Names of the Linears that hold float8 weights (fp8_mode='keep')."""
    return [n for n, m in model.named_modules() if isinstance(m, Fp8ScaledLinear)]
