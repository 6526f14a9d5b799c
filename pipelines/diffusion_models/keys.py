"""Upstream HunyuanCustom checkpoint keys/config -> HunyuanCustomTransformer3DModel.

Our own converter rather than diffusers' `convert_hunyuan_video_transformer_to_diffusers`
because that one hard-codes hidden size 3072 when splitting the single blocks' fused `linear1`,
mutates the dict in place, and knows nothing of the editing/audio modules.

Each upstream key maps to one or more of our keys as row ranges (dim 0) of the upstream tensor:
  * fused q/k/v (`*_attn_qkv`, refiner `self_attn_qkv`): three equal row ranges;
  * single blocks' `linear1`: rows [q | k | v | mlp] = [h | h | h | rest] (h = hidden size);
  * `final_layer.adaLN_modulation.1`: upstream (shift, scale) halves, diffusers (scale, shift).
Pieces are views (`narrow`), so memory-mapped and float8 tensors stay as they are; only the
final-layer half swap copies (one small tensor). A float8 checkpoint's per-module scalar scale
applies unchanged to every piece split from that module's weight.
A loader can stream with `map_upstream_key` (one key + shape) or plan everything up front with
`plan_conversion` / `invert_plan` (for each of our keys: which upstream key and rows fill it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

# HYVideo-T/2 as HunyuanCustom ships it, in our constructor's terms.
FULL_SIZE_CONFIG: dict = {
    "in_channels": 16,
    "out_channels": 16,
    "num_attention_heads": 24,
    "attention_head_dim": 128,
    "num_layers": 20,
    "num_single_layers": 40,
    "num_refiner_layers": 2,
    "mlp_ratio": 4.0,
    "patch_size": 2,
    "patch_size_t": 1,
    "qk_norm": "rms_norm",
    "text_embed_dim": 4096,
    "pooled_projection_dim": 768,
    "rope_theta": 256.0,
    "rope_axes_dim": (16, 56, 56),
    "video_condition": False,
    "audio_condition": False,
    "audio_seq_len": 10,
    "audio_blocks": 5,
    "audio_channels": 384,
    "audio_intermediate_dim": 1024,
    "audio_context_tokens": 4,
    "audio_attention_dim": 1024,
    "audio_attention_head_dim": 1024,
    "audio_insert_after": (1, 3, 5, 7, 9, 11),
}


def full_size_config(variant: str = "ref2v") -> dict:
    """FULL_SIZE_CONFIG for one checkpoint variant: 'ref2v', 'editing' or 'audio'."""
    flags = {"ref2v": {}, "editing": {"video_condition": True}, "audio": {"audio_condition": True}}
    if variant not in flags:
        raise ValueError(f"unknown HunyuanCustom variant {variant!r}; expected one of {sorted(flags)}")
    return {**FULL_SIZE_CONFIG, **flags[variant]}


# ---------------------------------------------------------------------------- config


def config_from_upstream_json(cfg: Mapping) -> dict:
    """Our constructor kwargs from an upstream-style config (the reference fixtures' config.json).

    Accepts a dict with `constructor_kwargs` + `args_namespace` (+ optional `rope`,
    `audio_module_kwargs`, `double_insert_list`), or the audio fixture's config with its
    `B_transformer_level` section. Raises ValueError for settings diffusers' blocks cannot express.
    """
    if "constructor_kwargs" not in cfg and "B_transformer_level" in cfg:
        cfg = cfg["B_transformer_level"]
    if "constructor_kwargs" not in cfg:
        raise ValueError("config has no 'constructor_kwargs' (expected the upstream fixture config.json format)")
    ck, args = cfg["constructor_kwargs"], cfg.get("args_namespace", {})
    hidden, heads = int(ck.get("hidden_size", 3072)), int(ck.get("num_heads", 24))
    patch = ck.get("patch_size", [1, 2, 2])
    patch = [patch] * 3 if isinstance(patch, int) else list(patch)
    unsupported = {
        "patch_size": (patch[1] == patch[2], f"non-square spatial patch {patch}"),
        "mlp_act_type": (ck.get("mlp_act_type", "gelu_tanh") == "gelu_tanh", "mlp_act_type other than gelu_tanh"),
        "qkv_bias": (bool(ck.get("qkv_bias", True)), "qkv_bias=False"),
        "qk_norm": (bool(ck.get("qk_norm", True)) and ck.get("qk_norm_type", "rms") == "rms", "qk norm other than rms"),
        "guidance_embed": (not ck.get("guidance_embed", False), "guidance_embed=True"),
        "text_projection": (args.get("text_projection", "single_refiner") == "single_refiner", "text_projection other than single_refiner"),
        "use_attention_mask": (bool(args.get("use_attention_mask", True)), "use_attention_mask=False"),
    }
    problems = [why for ok, why in unsupported.values() if not ok]
    if hidden % heads:
        problems.append(f"hidden_size {hidden} not divisible by num_heads {heads}")
    if problems:
        raise ValueError("unsupported upstream transformer config: " + "; ".join(problems))
    kwargs = {
        **FULL_SIZE_CONFIG,
        "in_channels": int(ck.get("in_channels", 16)),
        "out_channels": int(ck.get("out_channels") or ck.get("in_channels", 16)),
        "num_attention_heads": heads,
        "attention_head_dim": hidden // heads,
        "num_layers": int(ck.get("depth_double_blocks", 20)),
        "num_single_layers": int(ck.get("depth_single_blocks", 40)),
        "num_refiner_layers": 2,  # upstream hard-codes SingleTokenRefiner(depth=2)
        "mlp_ratio": float(ck.get("mlp_width_ratio", 4.0)),
        "patch_size": int(patch[1]),
        "patch_size_t": int(patch[0]),
        "text_embed_dim": int(args.get("text_states_dim", 4096)),
        "pooled_projection_dim": int(args.get("text_states_dim_2", 768)),
        "rope_theta": float(cfg.get("rope", {}).get("rope_theta", 256.0)),
        "rope_axes_dim": tuple(int(d) for d in ck.get("rope_dim_list", (16, 56, 56))),
        "video_condition": bool(ck.get("video_condition", False)),
        "audio_condition": bool(ck.get("audio_condition", False)),
    }
    audio = cfg.get("audio_module_kwargs")
    if audio:
        proj, attn = audio.get("AudioProjNet2", {}), audio.get("PerceiverAttentionCA", {})
        for name, size in (("AudioProjNet2.output_dim", proj.get("output_dim")), ("PerceiverAttentionCA.dim", attn.get("dim"))):
            if size is not None and int(size) != hidden:
                raise ValueError(f"{name}={size} must equal hidden_size {hidden} (upstream adds it to the video tokens)")
        kwargs.update(
            audio_seq_len=int(proj.get("seq_len", 10)),
            audio_blocks=int(proj.get("blocks", 5)),
            audio_channels=int(proj.get("channels", 384)),
            audio_intermediate_dim=int(proj.get("intermediate_dim", 1024)),
            audio_context_tokens=int(proj.get("context_tokens", 4)),
            audio_attention_dim=int(attn.get("dim_hidden", 1024)),
            audio_attention_head_dim=int(attn.get("dim_head", 1024)),
        )
    if "double_insert_list" in cfg:
        kwargs["audio_insert_after"] = tuple(int(i) for i in cfg["double_insert_list"])
    return kwargs


# ---------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class Piece:
    """Rows [source_start, source_stop) of the upstream tensor, placed at rows starting at
    target_start of our tensor `target` (target_start is None when the piece IS the whole target)."""

    target: str
    source_start: int
    source_stop: int
    target_start: int | None = None


@dataclass(frozen=True)
class KeyMapping:
    source: str
    pieces: tuple[Piece, ...]

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(piece.target for piece in self.pieces))

    def target_shapes(self, source_shape: Sequence[int]) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, int] = {}
        for piece in self.pieces:
            shapes[piece.target] = shapes.get(piece.target, 0) + piece.source_stop - piece.source_start
        return {name: (rows, *source_shape[1:]) for name, rows in shapes.items()}

    def apply(self, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
        """Our tensors from the upstream one: views where possible, no dtype change."""
        out: dict[str, torch.Tensor] = {}
        for target in self.targets:
            parts = [piece for piece in self.pieces if piece.target == target]
            if len(parts) == 1 and parts[0].target_start is None:
                piece = parts[0]
                rows = piece.source_stop - piece.source_start
                out[target] = tensor if rows == tensor.shape[0] else tensor.narrow(0, piece.source_start, rows)
            else:  # reordered halves: one copy of a small tensor
                parts.sort(key=lambda piece: piece.target_start)
                out[target] = torch.cat([tensor[piece.source_start : piece.source_stop] for piece in parts], dim=0)
        return out


def _whole(target: str, rows: int) -> tuple[Piece, ...]:
    return (Piece(target, 0, rows),)


def _split(prefix: str, names: Sequence[str], sizes: Sequence[int], param: str) -> tuple[Piece, ...]:
    pieces, start = [], 0
    for name, size in zip(names, sizes):
        pieces.append(Piece(f"{prefix}{name}.{param}", start, start + size))
        start += size
    return tuple(pieces)


# Plain renames of module paths inside a block: upstream suffix -> ours.
_DOUBLE_RENAMES = {
    "img_mod.linear": "norm1.linear",
    "img_attn_q_norm": "attn.norm_q",
    "img_attn_k_norm": "attn.norm_k",
    "img_attn_proj": "attn.to_out.0",
    "img_mlp.fc1": "ff.net.0.proj",
    "img_mlp.fc2": "ff.net.2",
    "txt_mod.linear": "norm1_context.linear",
    "txt_attn_q_norm": "attn.norm_added_q",
    "txt_attn_k_norm": "attn.norm_added_k",
    "txt_attn_proj": "attn.to_add_out",
    "txt_mlp.fc1": "ff_context.net.0.proj",
    "txt_mlp.fc2": "ff_context.net.2",
}
_DOUBLE_QKV = {
    "img_attn_qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
    "txt_attn_qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
}
_SINGLE_RENAMES = {
    "linear2": "proj_out",
    "q_norm": "attn.norm_q",
    "k_norm": "attn.norm_k",
    "modulation.linear": "norm.linear",
}
_REFINER_BLOCK_RENAMES = {
    "norm1": "norm1",
    "norm2": "norm2",
    "self_attn_proj": "attn.to_out.0",
    "mlp.fc1": "ff.net.0.proj",
    "mlp.fc2": "ff.net.2",
    "adaLN_modulation.1": "norm_out.linear",
}
_TOP_RENAMES = {
    "img_in.proj": "x_embedder.proj",
    "time_in.mlp.0": "time_text_embed.timestep_embedder.linear_1",
    "time_in.mlp.2": "time_text_embed.timestep_embedder.linear_2",
    "vector_in.in_layer": "time_text_embed.text_embedder.linear_1",
    "vector_in.out_layer": "time_text_embed.text_embedder.linear_2",
    "final_layer.linear": "proj_out",
    "txt_in.input_embedder": "context_embedder.proj_in",
    "txt_in.t_embedder.mlp.0": "context_embedder.time_text_embed.timestep_embedder.linear_1",
    "txt_in.t_embedder.mlp.2": "context_embedder.time_text_embed.timestep_embedder.linear_2",
    "txt_in.c_embedder.linear_1": "context_embedder.time_text_embed.text_embedder.linear_1",
    "txt_in.c_embedder.linear_2": "context_embedder.time_text_embed.text_embedder.linear_2",
    "bg_in.proj": "bg_in.proj",
    "bg_proj": "bg_proj",
}
_KEEP_PREFIXES = ("audio_proj.", "audio_models.")
_BLOCK = re.compile(r"^(double_blocks|single_blocks|txt_in\.individual_token_refiner\.blocks)\.(\d+)\.(.+)$")


def map_upstream_key(key: str, shape: Sequence[int], hidden_size: int) -> KeyMapping | None:
    """How one upstream tensor becomes our tensor(s); None for a key we do not know.

    `shape` is the upstream tensor's shape; `hidden_size` is needed to split the single blocks'
    fused `linear1` (its bias alone does not tell q/k/v from mlp rows).
    """
    module, _, param = key.rpartition(".")
    rows = int(shape[0]) if len(shape) else 1
    if key.startswith(_KEEP_PREFIXES):
        return KeyMapping(key, _whole(key, rows))
    if module == "final_layer.adaLN_modulation.1":
        half = rows // 2  # upstream chunks (shift, scale); diffusers' AdaLayerNormContinuous (scale, shift)
        target = f"norm_out.linear.{param}"
        return KeyMapping(key, (Piece(target, 0, half, half), Piece(target, half, rows, 0)))
    if module in _TOP_RENAMES:
        return KeyMapping(key, _whole(f"{_TOP_RENAMES[module]}.{param}", rows))
    match = _BLOCK.match(module)
    if match is None:
        return None
    kind, index, inner = match.groups()
    if kind == "double_blocks":
        prefix = f"transformer_blocks.{index}."
        if inner in _DOUBLE_QKV:
            return KeyMapping(key, _split(prefix, _DOUBLE_QKV[inner], [rows // 3] * 3, param))
        renamed = _DOUBLE_RENAMES.get(inner)
    elif kind == "single_blocks":
        prefix = f"single_transformer_blocks.{index}."
        if inner == "linear1":
            if rows <= 3 * hidden_size:
                raise ValueError(f"{key} has {rows} rows, too few for q/k/v/mlp of hidden size {hidden_size}")
            sizes = [hidden_size] * 3 + [rows - 3 * hidden_size]
            return KeyMapping(key, _split(prefix, ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"), sizes, param))
        renamed = _SINGLE_RENAMES.get(inner)
    else:
        prefix = f"context_embedder.token_refiner.refiner_blocks.{index}."
        if inner == "self_attn_qkv":
            return KeyMapping(key, _split(prefix, ("attn.to_q", "attn.to_k", "attn.to_v"), [rows // 3] * 3, param))
        renamed = _REFINER_BLOCK_RENAMES.get(inner)
    if renamed is None:
        return None
    return KeyMapping(key, _whole(f"{prefix}{renamed}.{param}", rows))


# Prefixes that wrap the upstream names in other packagings (ComfyUI single files, DeepSpeed dumps).
CHECKPOINT_KEY_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "module.")


def strip_checkpoint_prefix(key: str) -> str:
    """`key` without a known wrapper prefix (ComfyUI's files keep upstream names after it)."""
    for prefix in CHECKPOINT_KEY_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def upstream_module_targets(module: str, weight_shape: Sequence[int], hidden_size: int) -> tuple[str, ...]:
    """Our module names made from one upstream module (e.g. to give each piece of a fused float8
    weight that module's per-tensor scale); empty when the module is unknown."""
    mapping = map_upstream_key(f"{module}.weight", weight_shape, hidden_size)
    return () if mapping is None else tuple(target.rpartition(".")[0] for target in mapping.targets)


def infer_hidden_size(shapes: Mapping[str, Sequence[int]]) -> int:
    """Hidden size from an upstream state dict's shapes (the patch embed's output channels)."""
    for key in ("img_in.proj.weight", "img_in.proj.bias", "time_in.mlp.2.weight"):
        if key in shapes:
            return int(shapes[key][0])
    raise ValueError("cannot tell the hidden size: no img_in.proj.weight in the checkpoint (is it a HunyuanVideo transformer?)")


def _shape(value) -> tuple[int, ...]:
    return tuple(int(s) for s in (value.shape if hasattr(value, "shape") else value))


def plan_conversion(shapes: Mapping[str, Sequence[int]], hidden_size: int | None = None) -> dict[str, KeyMapping]:
    """KeyMapping for every upstream key; raises KeyError listing the keys we do not know.

    `shapes` maps upstream keys to shapes (or to tensors: only `.shape` is read)."""
    shapes = {key: _shape(value) for key, value in shapes.items()}
    hidden_size = hidden_size or infer_hidden_size(shapes)
    plan, unknown = {}, []
    for key, shape in shapes.items():
        mapping = map_upstream_key(key, shape, hidden_size)
        if mapping is None:
            unknown.append(key)
        else:
            plan[key] = mapping
    if unknown:
        shown = ", ".join(sorted(unknown)[:10])
        raise KeyError(f"{len(unknown)} checkpoint keys are not HunyuanCustom transformer keys (e.g. {shown})")
    return plan


def invert_plan(plan: Mapping[str, KeyMapping]) -> dict[str, list[tuple[str, Piece]]]:
    """For each of our keys, the (upstream key, piece) pairs that fill it."""
    sources: dict[str, list[tuple[str, Piece]]] = {}
    for source, mapping in plan.items():
        for piece in mapping.pieces:
            sources.setdefault(piece.target, []).append((source, piece))
    return sources


def converted_shapes(shapes: Mapping[str, Sequence[int]], hidden_size: int | None = None) -> dict[str, tuple[int, ...]]:
    """Our key -> shape for an upstream key -> shape mapping (no tensors needed: manifests, meta checks)."""
    shapes = {key: _shape(value) for key, value in shapes.items()}
    out: dict[str, tuple[int, ...]] = {}
    for key, mapping in plan_conversion(shapes, hidden_size).items():
        out.update(mapping.target_shapes(shapes[key]))
    return out


def convert_upstream_state_dict(sd: Mapping[str, torch.Tensor], hidden_size: int | None = None) -> dict[str, torch.Tensor]:
    """Upstream state dict -> ours. The input is not modified; tensors are read one at a time.

    Works on memory-mapped, meta and float8 tensors (no dtype change; pieces are views except
    the final layer's swapped modulation halves)."""
    shapes = {key: _shape(value) for key, value in sd.items()}
    out: dict[str, torch.Tensor] = {}
    for key, mapping in plan_conversion(shapes, hidden_size).items():
        out.update(mapping.apply(sd[key]))
    return out


# ---------------------------------------------------------------------------- LoRA targets

# Upstream modules that are not Linears (norms, the patch embeds' Conv3d): LoRA files do not train them.
_NOT_LINEAR = {"img_attn_q_norm", "img_attn_k_norm", "txt_attn_q_norm", "txt_attn_k_norm", "q_norm", "k_norm",
               "norm1", "norm2", "img_in.proj", "bg_in.proj"}
# The audio checkpoint's modules keep upstream's names in our model (audio_modules.py).
_AUDIO_LINEARS = ("audio_proj.proj1", "audio_proj.proj2", "audio_proj.proj3",
                  "audio_models.{i}.to_q", "audio_models.{i}.to_kv", "audio_models.{i}.to_out")


def upstream_linear_templates() -> tuple[str, ...]:
    """Every upstream Linear module name, with `{i}` for the block index (LoRA key recognition)."""
    double = [f"double_blocks.{{i}}.{inner}" for inner in (*_DOUBLE_QKV, *_DOUBLE_RENAMES) if inner not in _NOT_LINEAR]
    single = ["single_blocks.{i}.linear1"] + [f"single_blocks.{{i}}.{inner}" for inner in _SINGLE_RENAMES
                                              if inner not in _NOT_LINEAR]
    refiner = [f"txt_in.individual_token_refiner.blocks.{{i}}.{inner}"
               for inner in ("self_attn_qkv", *_REFINER_BLOCK_RENAMES) if inner not in _NOT_LINEAR]
    top = [name for name in _TOP_RENAMES if name not in _NOT_LINEAR] + ["final_layer.adaLN_modulation.1"]
    return tuple(double + single + refiner + top) + _AUDIO_LINEARS


def our_linear_templates() -> tuple[str, ...]:
    """Our (diffusers) Linear module names made from upstream_linear_templates, `{i}` for the block index."""
    names: dict[str, None] = {}
    for template in upstream_linear_templates():
        rows = 5 if template.endswith("linear1") else 6  # any row count the splits accept (hidden size 1)
        for target in map_upstream_key(template.format(i=0) + ".weight", (rows, 1), 1).targets:
            module = target.rpartition(".")[0]
            names[_BLOCK_INDEX.sub(r"\1.{i}.", module, count=1)] = None
    return tuple(names)


_BLOCK_INDEX = re.compile(r"^(transformer_blocks|single_transformer_blocks|"
                          r"context_embedder\.token_refiner\.refiner_blocks|audio_models)\.0\.")
