"""ComfyUI's single-file text encoders: recognise them from their keys and build transformers models.

Most ComfyUI users already have the Comfy-Org HunyuanVideo files instead of upstream's folders:
  text_encoders/llava_llama3_fp16.safetensors (or _fp8_scaled): the Llama-3-8B language model only,
      HF Llama names (`model.embed_tokens.weight`, `model.layers.N.*`, `model.norm.weight`, maybe
      `lm_head.weight`); the fp8_scaled file stores float8 weights with a `<layer>.scale_weight` beside
      them (weight = w.to(float32) * scale_weight) and a `scaled_fp8` marker;
  clip_vision/llava_llama3_vision.safetensors: the LLaVA vision tower (HF CLIP names `vision_model.*`)
      + `multi_modal_projector.linear_{1,2}.*`;
  text_encoders/clip_l.safetensors: the CLIP-L text model (`text_model.*`).
Tokenizers are not in these files; ComfyUI ships them (comfy/text_encoders/llama_tokenizer,
comfy/sd1_tokenizer), so the caller passes their folders.

The kind of a path is decided from its tensor names (people rename files), reading only the
safetensors header. Models are created with their parameters on the meta device (no random
init, no memory) and every file tensor is read, converted (dtype, fp8 scale) and put on the target
device one at a time, then handed over with load_state_dict(assign=True): an 8 B model never exists
twice, nor in float32. Non-persistent buffers (rotary inv_freq, CLIP position_ids) are created
normally by the constructors (accelerate's init_empty_weights(include_buffers=False)).

transformers/accelerate are imported inside functions so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import torch

from .quiet import quiet_transformers
from ..weights_io import (LEGACY_PICKLE, SAFETENSORS, TORCH_ZIP, container_kind, corrupt_message, open_safetensors,
                         unknown_container_message)


class TextEncoderFilesError(FileNotFoundError):
    """A text-encoder file or folder is missing, incomplete or of the wrong kind; the message names it."""


# Kinds of text-encoder paths.
FOLDER = "transformers folder"
LLAMA_FILE = "Llama-3 single file"
LLAVA_VISION_FILE = "LLaVA vision single file"
CLIP_TEXT_FILE = "CLIP-L text single file"
CLIP_VISION_FILE = "CLIP vision file without LLaVA projector"

# Fixed head sizes of the two families (the files store no head counts): Llama-3 uses 128-wide
# heads (8B: 32 heads, 8 KV heads), CLIP ViT / CLIP text 64-wide (ViT-L: 16, CLIP-L text: 12).
LLAMA_HEAD_DIM = 128
CLIP_HEAD_DIM = 64
# Llama-3 constants the files do not carry (ComfyUI's Llama2Config for llava_llama3 uses the same).
LLAMA3_ROPE_THETA = 500000.0
LLAMA3_RMS_EPS = 1e-5
LLAMA3_MAX_POSITIONS = 8192
CLIP_LAYER_NORM_EPS = 1e-5
# LLaVA-Llama-3 (xtuner llava-llama-3-8b-v1_1) settings: second-to-last vision layer, CLS dropped.
VISION_FEATURE_LAYER = -2
VISION_FEATURE_SELECT = "default"

LLAVA_VISION_NAME = "llava_llama3_vision.safetensors"  # the Comfy-Org name, preferred by find_llava_vision
PROJECTOR_KEY = "multi_modal_projector.linear_1.weight"

_LLAMA_MARKERS = ("model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight")
_CLIP_TEXT_MARKERS = ("text_model.embeddings.token_embedding.weight",)
_VISION_MARKERS = ("vision_model.embeddings.patch_embedding.weight",)

# Tensors the files may carry that the models have no place for (and that change nothing we use).
_IGNORED = re.compile(r"(^|\.)(scale_input|scaled_fp8|logit_scale|position_ids)$|^(text_projection|visual_projection)\.weight$")

LLAMA_FILES_HINT = ("models/text_encoders/llava_llama3_fp16.safetensors or llava_llama3_fp8_scaled.safetensors, "
                    "or upstream's llava-llama-3-8b-v1_1/ folder")
CLIP_FILES_HINT = "models/text_encoders/clip_l.safetensors, or upstream's openai_clip-vit-large-patch14/ folder"
VISION_FILES_HINT = "models/clip_vision/llava_llama3_vision.safetensors"
LLAMA_TOKENIZER_HINT = ("ComfyUI ships it in ComfyUI/comfy/text_encoders/llama_tokenizer/ "
                        "(tokenizer.json + tokenizer_config.json)")
CLIP_TOKENIZER_HINT = "ComfyUI ships it in ComfyUI/comfy/sd1_tokenizer/ (vocab.json + merges.txt)"


# ----------------------------------------------------------------------------------------------
# Reading headers
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorInfo:
    dtype: str  # safetensors dtype name ("BF16", "F8_E4M3", ...)
    shape: tuple[int, ...]


MAX_HEADER_BYTES = 100_000_000  # the safetensors library's own limit


def read_header(path: str | os.PathLike) -> dict[str, TensorInfo]:
    """Tensor names, dtypes and shapes of a safetensors file, from its header only (no tensor is read)."""
    path = Path(path)
    kind = container_kind(path, TextEncoderFilesError)
    if kind in (TORCH_ZIP, LEGACY_PICKLE):
        raise TextEncoderFilesError(f"{path}: a PyTorch pickle; single-file text encoders are read as .safetensors "
                                    "only (the Comfy-Org files are safetensors).")
    if kind != SAFETENSORS:
        raise TextEncoderFilesError(unknown_container_message(path))
    # safetensors checks that the header's tensors cover the file exactly: a cut download (the usual
    # broken 16 GB file) is found here, from the header and the file size, not when the text stage loads.
    open_safetensors(path, TextEncoderFilesError)
    try:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > MAX_HEADER_BYTES:
                raise ValueError(f"a header of {length:,} bytes, over the {MAX_HEADER_BYTES:,} safetensors allows")
            header = json.loads(handle.read(length))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        return {name: TensorInfo(str(entry["dtype"]), tuple(int(s) for s in entry["shape"]))
                for name, entry in header.items() if name != "__metadata__" and isinstance(entry, dict)}
    except (OSError, ValueError, struct.error, RecursionError, KeyError, TypeError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else \
            f"a tensor entry without {exc}" if isinstance(exc, KeyError) else str(exc)
        raise TextEncoderFilesError(f"{path}: the safetensors header cannot be read ({reason}); the file looks "
                                    "truncated or corrupt. Download it again.") from None


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def folder_weight_files(folder: Path) -> tuple[list[Path], bool] | None:
    """(weight files, are they safetensors) of a transformers folder, as from_pretrained picks them
    (safetensors first, an index's shards whether present or not); None when it has none. An
    unreadable index raises TextEncoderFilesError."""
    for index, is_safetensors in (("model.safetensors.index.json", True), ("pytorch_model.bin.index.json", False)):
        if (folder / index).is_file():
            try:
                shards = sorted(set(json.loads((folder / index).read_text())["weight_map"].values()))
            except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
                raise TextEncoderFilesError(f"{folder / index} is unreadable ({exc}); download the folder again.") from None
            return [folder / shard for shard in shards], is_safetensors
        single = folder / index.replace(".index.json", "")
        if single.is_file():
            return [single], is_safetensors
    return None


LLAVA_DOWNLOAD = "xtuner/llava-llama-3-8b-v1_1-transformers (upstream's llava-llama-3-8b-v1_1/ folder)"
CLIP_DOWNLOAD = "openai/clip-vit-large-patch14 (upstream's openai_clip-vit-large-patch14/ folder)"


def _check_weight_file(path: Path) -> None:
    """A weight file of a transformers folder is whole, from its header and size only: safetensors'
    header must cover the file, a zip checkpoint's directory (at its end) must be readable. A legacy
    pickle cannot be checked without reading it all; it is checked when it loads."""
    kind = container_kind(path, TextEncoderFilesError)
    if kind == SAFETENSORS:
        open_safetensors(path, TextEncoderFilesError)
    elif kind == TORCH_ZIP:
        try:
            zipfile.ZipFile(path).close()
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise TextEncoderFilesError(corrupt_message(path, exc)) from None
    elif kind != LEGACY_PICKLE:
        raise TextEncoderFilesError(f"{unknown_container_message(path)} Download it again.")


def _check_folder(folder: Path, what: str, download: str, tokenizer_options: Sequence[Sequence[str]]) -> None:
    """Everything from_pretrained will need is there (config, weights, tokenizer) and every weight
    file is whole, before anything loads."""
    hint = f"Download {download} into it (all files, including the tokenizer)."
    if not folder.is_dir():
        raise TextEncoderFilesError(f"{what} folder not found: {folder}. {hint}")
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    weights = folder_weight_files(folder)
    if weights is None:
        missing.append(" or ".join(WEIGHT_FILES[:2]))
    else:
        missing += [f.name for f in weights[0] if not f.is_file()]
    if not any(all((folder / f).is_file() for f in option) for option in tokenizer_options):
        missing.append(" or ".join(" + ".join(option) for option in tokenizer_options))
    if missing:
        raise TextEncoderFilesError(f"{what} folder {folder} is incomplete, missing: {', '.join(missing)}. {hint}")
    for weight_file in weights[0]:
        _check_weight_file(weight_file)


def check_llava_folder(folder: str | os.PathLike) -> None:
    _check_folder(Path(folder), "LLaVA text encoder", LLAVA_DOWNLOAD, [("tokenizer.json",), ("tokenizer.model",)])


def check_clip_folder(folder: str | os.PathLike) -> None:
    _check_folder(Path(folder), "CLIP text encoder", CLIP_DOWNLOAD, [("tokenizer.json",), ("vocab.json", "merges.txt")])


# ----------------------------------------------------------------------------------------------
# Detection
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncoderPath:
    """A text-encoder path and what it holds (tensors: the header; empty for folders)."""

    path: Path
    kind: str
    tensors: dict[str, TensorInfo]

    @property
    def is_folder(self) -> bool:
        return self.kind == FOLDER


def kind_of_tensors(names: Iterable[str]) -> str | None:
    """The kind of a single file from its tensor names, or None if it is none we know."""
    names = set(names)
    if all(m in names for m in _LLAMA_MARKERS):
        return LLAMA_FILE
    if any(m in names for m in _VISION_MARKERS) and PROJECTOR_KEY in names:
        return LLAVA_VISION_FILE
    if any(m in names for m in _CLIP_TEXT_MARKERS):
        return CLIP_TEXT_FILE  # also a full CLIPModel file; its vision half is ignored
    if any(m in names for m in _VISION_MARKERS):
        return CLIP_VISION_FILE
    return None


def inspect_path(path: str | os.PathLike, role: str) -> EncoderPath:
    """What `path` is: a transformers folder, or one of the single files (decided from its keys).
    `role` names the input in errors (e.g. 'text_encoder')."""
    path = Path(path)
    if path.is_dir():
        return EncoderPath(path, FOLDER, {})
    if not path.is_file():
        raise TextEncoderFilesError(f"{role}: {path} does not exist; point it at the downloaded file or folder")
    _refuse_a_file_of_a_folder(path, role)
    tensors = read_header(path)
    kind = kind_of_tensors(tensors)
    if kind is None:
        shown = ", ".join(sorted(tensors)[:5]) or "none"
        raise TextEncoderFilesError(
            f"{role}: {path} is not a text encoder this pack knows. Expected the keys of a Llama-3 file "
            f"({_LLAMA_MARKERS[0]}), a CLIP-L text file ({_CLIP_TEXT_MARKERS[0]}) or the LLaVA vision file "
            f"({_VISION_MARKERS[0]} + {PROJECTOR_KEY}); its first keys are: {shown}")
    return EncoderPath(path, kind, tensors)


def _refuse_a_file_of_a_folder(path: Path, role: str) -> None:
    """The model.safetensors (or a shard) of upstream's LLaVA or CLIP folder was picked instead of the
    folder: it loads only as the folder (its config and tokenizer are beside it), so say that."""
    folder = path.parent
    model_type = _folder_model_type(folder)
    if not (model_type == "llava" or model_type.startswith("clip")):
        return
    try:
        weights = folder_weight_files(folder)
    except TextEncoderFilesError:
        weights = None
    if weights is not None and path.resolve() in {w.resolve() for w in weights[0]}:
        raise TextEncoderFilesError(f"{role}: {path} is a weights file inside the transformers folder {folder}; "
                                    f"give the folder itself: {folder}")


def _wrong_kind(role: str, item: EncoderPath, wanted: str, hint: str) -> TextEncoderFilesError:
    where = {
        LLAMA_FILE: "it is the LLaVA language model: choose it as text_encoder",
        CLIP_TEXT_FILE: "it is the CLIP-L text encoder: choose it as text_encoder_2",
        LLAVA_VISION_FILE: "it is the LLaVA vision tower: choose it as llava_vision (--llava-vision)",
        CLIP_VISION_FILE: "it is a CLIP vision model without the LLaVA projector (not used by HunyuanCustom)",
    }[item.kind]
    return TextEncoderFilesError(f"{role}: {item.path} is a {item.kind}, not a {wanted}; {where}. "
                                 f"{role} takes {hint}.")


def _folder_model_type(folder: Path) -> str:
    try:
        return str(json.loads((folder / "config.json").read_text()).get("model_type", ""))
    except (OSError, ValueError, AttributeError, RecursionError):
        return ""  # the folder check that follows words the problem


def _what_folder(folder: Path) -> str:
    """The folder as its config.json describes it, for an error message."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError, RecursionError):
        return "it has no readable config.json"
    if not isinstance(config, dict):
        return "its config.json is not a transformers config"
    inner = config.get("constructor_kwargs", config)
    if isinstance(inner, dict) and "block_out_channels" in inner and "latent_channels" in inner:
        return "its config.json describes the VAE; give it as the VAE"
    model_type = config.get("model_type")
    return f"its config.json says model_type {model_type!r}" if model_type else "its config.json has no model_type"


def check_tokenizer_folder(folder: str | os.PathLike | None, what: str, options: Sequence[Sequence[str]], hint: str,
                           flag: str) -> Path:
    """The tokenizer folder a single file needs; a clear error when it is not given or incomplete."""
    if folder is None or str(folder) == "":
        raise TextEncoderFilesError(f"the {what} single file needs the {what} tokenizer folder, which is not in the "
                                    f"file: {hint}. Outside ComfyUI pass {flag} DIR.")
    folder = Path(folder)
    if not folder.is_dir():
        raise TextEncoderFilesError(f"{what} tokenizer folder not found: {folder}. {hint}.")
    if not any(all((folder / name).is_file() for name in option) for option in options):
        wanted = " or ".join(" + ".join(option) for option in options)
        raise TextEncoderFilesError(f"{what} tokenizer folder {folder} is incomplete, missing: {wanted}. {hint} "
                                    "(a ComfyUI checkout from git may lack the large tokenizer.json; get it from a "
                                    "ComfyUI release or the repository's web page).")
    return folder


LLAMA_TOKENIZER_FILES = [("tokenizer.json",), ("tokenizer.model",)]
CLIP_TOKENIZER_FILES = [("tokenizer.json",), ("vocab.json", "merges.txt")]


@dataclass(frozen=True)
class LlavaSource:
    """Where the LLaVA encoder comes from: a folder, or a Llama file + vision file + tokenizer folder."""

    language: EncoderPath
    vision: EncoderPath | None = None
    tokenizer: Path | None = None

    @property
    def is_folder(self) -> bool:
        return self.language.is_folder


@dataclass(frozen=True)
class ClipSource:
    text: EncoderPath
    tokenizer: Path | None = None

    @property
    def is_folder(self) -> bool:
        return self.text.is_folder


def llava_source(path: str | os.PathLike, vision: str | os.PathLike | None = None,
                 tokenizer: str | os.PathLike | None = None, role: str = "text_encoder") -> LlavaSource:
    """Check the LLaVA inputs without loading anything; raises TextEncoderFilesError for people."""
    item = inspect_path(path, role)
    if item.is_folder:
        model_type = _folder_model_type(item.path)
        if model_type.startswith("clip"):
            raise TextEncoderFilesError(f"{role}: {item.path} is a CLIP folder (model_type "
                                        f"{model_type!r}); choose it as text_encoder_2. "
                                        f"{role} takes {LLAMA_FILES_HINT}.")
        if model_type != "llava" and (item.path / "config.json").is_file():
            raise TextEncoderFilesError(f"{role}: {item.path} is not a LLaVA folder ({_what_folder(item.path)}). "
                                        f"{role} takes {LLAMA_FILES_HINT}.")
        check_llava_folder(item.path)
        return LlavaSource(item)
    if item.kind != LLAMA_FILE:
        raise _wrong_kind(role, item, LLAMA_FILE, LLAMA_FILES_HINT)
    if vision is None or str(vision) == "":
        raise TextEncoderFilesError(
            f"{role}: {item.path} holds only the Llama-3 language model; LLaVA also needs its vision tower "
            f"({VISION_FILES_HINT}). Choose it as llava_vision (command line: --llava-vision FILE).")
    vision_item = inspect_path(vision, "llava_vision")
    if vision_item.is_folder or vision_item.kind != LLAVA_VISION_FILE:
        if vision_item.is_folder:
            raise TextEncoderFilesError(f"llava_vision: {vision_item.path} is a folder; it takes the single file "
                                        f"{VISION_FILES_HINT}.")
        raise _wrong_kind("llava_vision", vision_item, LLAVA_VISION_FILE, VISION_FILES_HINT)
    folder = check_tokenizer_folder(tokenizer, "Llama-3", LLAMA_TOKENIZER_FILES, LLAMA_TOKENIZER_HINT,
                                    "--llava-tokenizer")
    return LlavaSource(item, vision_item, folder)


def clip_source(path: str | os.PathLike, tokenizer: str | os.PathLike | None = None,
                role: str = "text_encoder_2") -> ClipSource:
    item = inspect_path(path, role)
    if item.is_folder:
        model_type = _folder_model_type(item.path)
        if model_type == "llava":
            raise TextEncoderFilesError(f"{role}: {item.path} is the LLaVA folder; choose it as text_encoder. "
                                        f"{role} takes {CLIP_FILES_HINT}.")
        if not model_type.startswith("clip") and (item.path / "config.json").is_file():
            raise TextEncoderFilesError(f"{role}: {item.path} is not a CLIP folder ({_what_folder(item.path)}). "
                                        f"{role} takes {CLIP_FILES_HINT}.")
        check_clip_folder(item.path)
        return ClipSource(item)
    if item.kind != CLIP_TEXT_FILE:
        raise _wrong_kind(role, item, CLIP_TEXT_FILE, CLIP_FILES_HINT)
    return ClipSource(item, check_tokenizer_folder(tokenizer, "CLIP", CLIP_TOKENIZER_FILES, CLIP_TOKENIZER_HINT,
                                                   "--clip-tokenizer"))


def find_llava_vision(candidates: Sequence[str | os.PathLike]) -> Path:
    """'auto': the one candidate whose keys hold the LLaVA projector; with several, the one named
    llava_llama3_vision.safetensors; otherwise an error asking to pick."""
    found = []
    for candidate in candidates:
        path = Path(candidate)
        if not path.is_file() or not path.name.lower().endswith((".safetensors", ".sft")):
            continue
        try:
            if PROJECTOR_KEY in read_header(path):
                found.append(path)
        except TextEncoderFilesError:
            continue  # a broken unrelated file in clip_vision must not block 'auto'
    if len(found) == 1:
        return found[0]
    if not found:
        raise TextEncoderFilesError(f"llava_vision 'auto': no file in models/clip_vision holds the LLaVA vision tower "
                                    f"({PROJECTOR_KEY}); download {VISION_FILES_HINT}.")
    named = [p for p in found if p.name == LLAVA_VISION_NAME]
    if len(named) == 1:
        return named[0]
    raise TextEncoderFilesError("llava_vision 'auto': several LLaVA vision files found ("
                                + ", ".join(str(p) for p in found) + "); pick one in llava_vision.")


# ----------------------------------------------------------------------------------------------
# Configs from shapes
# ----------------------------------------------------------------------------------------------


def _shape(tensors: dict[str, TensorInfo], key: str, where: Path) -> tuple[int, ...]:
    info = tensors.get(key)
    if info is None:
        raise TextEncoderFilesError(f"{where}: tensor {key} is missing; the file is incomplete or another model.")
    return info.shape


def _layer_count(tensors: dict[str, TensorInfo], prefix: str, where: Path) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for name in tensors if (m := pattern.match(name))}
    if not found or found != set(range(max(found) + 1)):
        raise TextEncoderFilesError(f"{where}: layers under {prefix}N are missing or not numbered 0..N-1 "
                                    f"(found {sorted(found)[:8]}); the file is incomplete.")
    return max(found) + 1


def _heads(width: int, head_dim: int, what: str, where: Path) -> int:
    if width % head_dim or width == 0:
        raise TextEncoderFilesError(f"{where}: {what} is {width} wide, not a multiple of the family's head size "
                                    f"{head_dim}; this is not a model of the expected family.")
    return width // head_dim


def llama_config_values(tensors: dict[str, TensorInfo], where: Path) -> dict[str, Any]:
    """LlamaConfig arguments from a Llama-3 file's shapes (head counts from head_dim 128)."""
    vocab, hidden = _shape(tensors, "model.embed_tokens.weight", where)
    q_out = _shape(tensors, "model.layers.0.self_attn.q_proj.weight", where)[0]
    kv_out = _shape(tensors, "model.layers.0.self_attn.k_proj.weight", where)[0]
    heads = _heads(q_out, LLAMA_HEAD_DIM, "the query projection", where)
    kv_heads = _heads(kv_out, LLAMA_HEAD_DIM, "the key projection", where)
    if hidden % heads or heads % kv_heads:
        raise TextEncoderFilesError(f"{where}: hidden size {hidden} with {heads} heads of {LLAMA_HEAD_DIM} and "
                                    f"{kv_heads} KV heads does not divide; not a Llama-3 model.")
    return dict(
        vocab_size=vocab, hidden_size=hidden, num_attention_heads=heads, num_key_value_heads=kv_heads,
        head_dim=LLAMA_HEAD_DIM, intermediate_size=_shape(tensors, "model.layers.0.mlp.gate_proj.weight", where)[0],
        num_hidden_layers=_layer_count(tensors, "model.layers.", where), rms_norm_eps=LLAMA3_RMS_EPS,
        max_position_embeddings=LLAMA3_MAX_POSITIONS, tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": LLAMA3_ROPE_THETA},
    )


def vision_config_values(tensors: dict[str, TensorInfo], where: Path) -> dict[str, Any]:
    """CLIPVisionConfig arguments from the vision file's shapes; image_size = patch * sqrt(positions - 1)."""
    hidden, channels, patch, _ = _shape(tensors, "vision_model.embeddings.patch_embedding.weight", where)
    positions = _shape(tensors, "vision_model.embeddings.position_embedding.weight", where)[0]
    side = math.isqrt(max(positions - 1, 0))
    if side * side != positions - 1 or side == 0:
        raise TextEncoderFilesError(f"{where}: {positions} position embeddings are not 1 + a square number of patches; "
                                    "not a CLIP ViT vision tower.")
    return dict(
        hidden_size=hidden, num_channels=channels, patch_size=patch, image_size=patch * side,
        num_attention_heads=_heads(hidden, CLIP_HEAD_DIM, "the vision tower", where),
        intermediate_size=_shape(tensors, "vision_model.encoder.layers.0.mlp.fc1.weight", where)[0],
        num_hidden_layers=_layer_count(tensors, "vision_model.encoder.layers.", where),
        hidden_act="quick_gelu", layer_norm_eps=CLIP_LAYER_NORM_EPS,
    )


def clip_text_config_values(tensors: dict[str, TensorInfo], where: Path) -> dict[str, Any]:
    vocab, hidden = _shape(tensors, "text_model.embeddings.token_embedding.weight", where)
    return dict(
        vocab_size=vocab, hidden_size=hidden,
        max_position_embeddings=_shape(tensors, "text_model.embeddings.position_embedding.weight", where)[0],
        num_attention_heads=_heads(hidden, CLIP_HEAD_DIM, "the text model", where),
        intermediate_size=_shape(tensors, "text_model.encoder.layers.0.mlp.fc1.weight", where)[0],
        num_hidden_layers=_layer_count(tensors, "text_model.encoder.layers.", where),
        hidden_act="quick_gelu", layer_norm_eps=CLIP_LAYER_NORM_EPS,
    )


def llava_image_size(vision_file: str | os.PathLike) -> int:
    """The square image size the vision tower in this file takes (336 for llava_llama3_vision)."""
    path = Path(vision_file)
    return int(vision_config_values(read_header(path), path)["image_size"])


# ----------------------------------------------------------------------------------------------
# Loading tensors onto an empty model
# ----------------------------------------------------------------------------------------------


def _is_float8(name: str) -> bool:
    return name.startswith("F8_")


def _converted_tensors(path: Path, tensors: dict[str, TensorInfo], dtype: torch.dtype, device: torch.device,
                       keys: Iterable[str]) -> Iterator[tuple[str, torch.Tensor]]:
    """(file key, tensor on `device` in `dtype`) one at a time. float8 weights are dequantized with their
    `<layer>.scale_weight` (w.to(float32) * scale, then the compute dtype): one tensor in float32 at a time."""
    handle = open_safetensors(path, TextEncoderFilesError)
    for key in keys:
        stored = handle.get_tensor(key).to(device)
        if _is_float8(tensors[key].dtype):
            scale_key = key[: -len("weight")] + "scale_weight" if key.endswith("weight") else None
            if scale_key is not None and scale_key in tensors:
                scale = handle.get_tensor(scale_key).to(device=device, dtype=torch.float32)
                stored = stored.to(torch.float32) * scale
        elif not stored.is_floating_point():
            raise TextEncoderFilesError(f"{path}: tensor {key} has dtype {tensors[key].dtype}, expected floating point.")
        yield key, stored.to(dtype)


def _is_ignored(key: str) -> bool:
    return bool(_IGNORED.search(key)) or key.endswith(".scale_weight")


def _load_into(module: torch.nn.Module, sources: list[tuple[Path, dict[str, TensorInfo], dict[str, str]]],
               dtype: torch.dtype, device: torch.device, fill: dict[str, float] | None = None) -> None:
    """Fill `module`'s meta parameters from files. `sources`: (file, header, {file key: module key}).
    Every name and shape is compared before any tensor is read. `fill`: module keys (by suffix) that may
    be absent from the files, with the constant they then get (only for tensors off our path)."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    provided = {module_key for _, _, mapping in sources for module_key in mapping.values()}
    filled = {k: value for k in expected if k not in provided
              for suffix, value in (fill or {}).items() if k == suffix or k.endswith("." + suffix)}
    problems: list[str] = []
    for path, tensors, mapping in sources:
        for file_key, module_key in mapping.items():
            want = expected.get(module_key)
            got = tensors[file_key].shape
            if want is None:
                problems.append(f"{path.name}: tensor {file_key} {list(got)} has no place in the model")
            elif tuple(got) != want:
                problems.append(f"{path.name}: tensor {file_key} has shape {list(got)}, the model expects {list(want)}")
    missing = [k for k in expected if k not in provided and k not in filled]
    problems += [f"tensor for {k} {list(expected[k])} is missing" for k in missing]
    if problems:
        shown = "\n  ".join(problems[:8]) + (f"\n  ... and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise TextEncoderFilesError("the text-encoder file(s) do not fit the model built from their shapes "
                                    f"(incomplete or modified file?):\n  {shown}")
    state: dict[str, torch.Tensor] = {k: torch.full(expected[k], value, dtype=dtype, device=device)
                                      for k, value in filled.items()}
    for path, tensors, mapping in sources:
        for file_key, tensor in _converted_tensors(path, tensors, dtype, device, mapping):
            state[mapping[file_key]] = tensor
    module.load_state_dict(state, strict=True, assign=True)


def _mapping(tensors: dict[str, TensorInfo], file_prefix: str, module_keys: Iterable[str],
             module_prefixes: Sequence[str] = ("",)) -> dict[str, str]:
    """{file key: module key} for the file keys under `file_prefix`, the prefix replaced by whichever of
    `module_prefixes` matches the module's names best (transformers versions nest CLIP differently).
    Known extras (projections, fp8 scales, ComfyUI markers) are skipped; any other key is kept, and
    _load_into then names it as having no place in the model."""
    module_keys = set(module_keys)
    keys = [k for k in tensors if k.startswith(file_prefix) and not _is_ignored(k)]
    best = max(module_prefixes, key=lambda p: sum((p + k[len(file_prefix):]) in module_keys for k in keys))
    return {k: best + k[len(file_prefix):] for k in keys}


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Construct under the compute dtype as from_pretrained does (float buffers follow it)."""
    previous = torch.get_default_dtype()
    if dtype.is_floating_point:
        torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def build_empty(model_class: Any, config: Any, dtype: torch.dtype) -> torch.nn.Module:
    """The model with every parameter on the meta device (no random init, no memory); buffers real."""
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False), _default_dtype(dtype):
        return model_class(config)


def _unexpected(tensors: dict[str, TensorInfo], prefixes: Sequence[str], path: Path) -> None:
    extra = sorted(k for k in tensors if not k.startswith(tuple(prefixes)) and not _is_ignored(k))
    if extra:
        raise TextEncoderFilesError(f"{path}: tensors {', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''} have no "
                                    "place in the model; the file holds more than the expected text encoder.")


def _load_tokenizer(folder: Path, *, exactly_tokenizer_json: bool = False, **kwargs: Any) -> Any:
    """AutoTokenizer, or with `exactly_tokenizer_json` the plain fast tokenizer of tokenizer.json: ComfyUI's
    llama_tokenizer declares tokenizer_class LlamaTokenizer, whose transformers-5 class rebuilds a Llama-2
    (Metaspace) pipeline; Llama-3's tokenizer.json is byte-level BPE and must be used as it is."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast


    loader = PreTrainedTokenizerFast if exactly_tokenizer_json and (folder / "tokenizer.json").is_file() else AutoTokenizer
    try:
        with quiet_transformers():
            return loader.from_pretrained(str(folder), local_files_only=True, **kwargs)
    except (OSError, ValueError, TypeError) as exc:
        raise TextEncoderFilesError(f"tokenizer folder {folder} cannot be loaded ({exc}).") from None


def load_llava(source: LlavaSource, dtype: torch.dtype, device: Any) -> tuple[Any, Any]:
    """(LlavaForConditionalGeneration, tokenizer) from a Llama file + vision file + tokenizer folder."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    if source.is_folder or source.vision is None or source.tokenizer is None:
        raise ValueError("load_llava builds single files only; folders load with from_pretrained")
    device = torch.device(device)
    lang, vision = source.language, source.vision
    tokenizer = _load_tokenizer(source.tokenizer, exactly_tokenizer_json=True, padding_side="right")
    image_token = tokenizer.convert_tokens_to_ids("<image>")
    if image_token is None or image_token == tokenizer.unk_token_id:
        raise TextEncoderFilesError(f"Llama-3 tokenizer {source.tokenizer} has no <image> token; it is not the "
                                    f"LLaVA-Llama-3 tokenizer. {LLAMA_TOKENIZER_HINT}.")
    if tokenizer.pad_token_id is None:
        raise TextEncoderFilesError(f"Llama-3 tokenizer {source.tokenizer} has no pad token (<pad>); "
                                    f"{LLAMA_TOKENIZER_HINT}.")
    text_values = llama_config_values(lang.tensors, lang.path)
    vision_values = vision_config_values(vision.tensors, vision.path)
    projector_out = _shape(vision.tensors, PROJECTOR_KEY, vision.path)[0]
    if projector_out != text_values["hidden_size"]:
        raise TextEncoderFilesError(f"{vision.path}: its projector outputs {projector_out} features but the Llama file "
                                    f"{lang.path.name} is {text_values['hidden_size']} wide; the two files do not belong "
                                    "together.")
    if image_token >= text_values["vocab_size"]:
        raise TextEncoderFilesError(f"tokenizer {source.tokenizer}: <image> is id {image_token}, beyond the "
                                    f"{text_values['vocab_size']} embeddings of {lang.path.name}; they do not belong together.")
    _unexpected(lang.tensors, ("model.", "lm_head."), lang.path)
    _unexpected(vision.tensors, ("vision_model.", "multi_modal_projector."), vision.path)
    patches = (vision_values["image_size"] // vision_values["patch_size"]) ** 2
    config = LlavaConfig(
        text_config=LlamaConfig(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                                eos_token_id=tokenizer.eos_token_id, **text_values),
        vision_config=CLIPVisionConfig(**vision_values),
        image_token_index=image_token, image_seq_length=patches, projector_hidden_act="gelu",
        vision_feature_layer=VISION_FEATURE_LAYER, vision_feature_select_strategy=VISION_FEATURE_SELECT,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
    )
    model = build_empty(LlavaForConditionalGeneration, config, dtype)
    language, tower, projector = model.model.language_model, model.model.vision_tower, model.model.multi_modal_projector
    _load_into(language, [(lang.path, lang.tensors, _mapping(lang.tensors, "model.", language.state_dict()))],
               dtype, device)
    # LLaVA reads layer -2 of the tower, before post_layernorm: a file without it loses nothing.
    _load_into(tower, [(vision.path, vision.tensors, _mapping(vision.tensors, "vision_model.", tower.state_dict(),
                                                              ("", "vision_model.")))], dtype, device,
               fill={"post_layernorm.weight": 1.0, "post_layernorm.bias": 0.0})
    _load_into(projector, [(vision.path, vision.tensors, _mapping(vision.tensors, "multi_modal_projector.",
                                                                  projector.state_dict()))], dtype, device)
    if "lm_head.weight" in lang.tensors:
        _load_into(model.lm_head, [(lang.path, lang.tensors, {"lm_head.weight": "weight"})], dtype, device)
    else:
        # ComfyUI's files may omit lm_head: we only read hidden states (logits_to_keep=1 still runs
        # lm_head on one position), so share the embedding matrix instead of allocating 1 GB of zeros.
        model.lm_head.weight = model.get_input_embeddings().weight
    model.to(device)  # the constructors' buffers (rotary inv_freq, position_ids); parameters are there already
    leftover = [n for n, p in model.named_parameters() if p.device.type == "meta"]
    if leftover:
        raise TextEncoderFilesError(f"{lang.path}: no tensors for {', '.join(leftover[:5])}; incomplete file.")
    return model.eval().requires_grad_(False), tokenizer


def load_clip_text(source: ClipSource, dtype: torch.dtype, device: Any) -> tuple[Any, Any]:
    """(CLIPTextModel, tokenizer) from a CLIP-L text file + tokenizer folder."""
    from transformers import CLIPTextConfig, CLIPTextModel

    if source.is_folder or source.tokenizer is None:
        raise ValueError("load_clip_text builds single files only; folders load with from_pretrained")
    device = torch.device(device)
    item = source.text
    tokenizer = _load_tokenizer(source.tokenizer)
    values = clip_text_config_values(item.tensors, item.path)
    # Ids the pooler needs (it reads the first end-of-text token), from the tokenizer, not the file.
    config = CLIPTextConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id, **values)
    _unexpected(item.tensors, ("text_model.", "vision_model."), item.path)  # a full CLIPModel file: vision ignored
    model = build_empty(CLIPTextModel, config, dtype)
    _load_into(model, [(item.path, item.tensors, _mapping(item.tensors, "text_model.", model.state_dict(),
                                                          ("", "text_model.")))], dtype, device)
    model.to(device)
    return model.eval().requires_grad_(False), tokenizer
