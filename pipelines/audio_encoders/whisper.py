"""Whisper (the audio encoder of the audio-driven mode): recognise its files and load its encoder.

Accepted, from ComfyUI's models/audio_encoders/ or any path:
  * the `whisper-tiny/` folder upstream downloads (openai/whisper-tiny in Hugging Face layout:
    config.json, preprocessor_config.json, model.safetensors and/or pytorch_model.bin);
  * a single file of the same weights, e.g. that folder's model.safetensors renamed
    `whisper-tiny.safetensors` (Hugging Face key names, with or without the `model.` prefix).
Files are recognised by their tensor names (people rename files), and a folder by its config.json.
Only the encoder is built and loaded (the decoder is never run), in float32 as upstream runs it.
The encoder is transformers' WhisperEncoder, the module WhisperModel.encoder is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..weights_io import (LEGACY_PICKLE, SAFETENSORS, TORCH_ZIP, WeightsFileError, check_config_bounds,
                          container_kind, load_torch_file, open_safetensors, read_json_file, tensor_state_dict,
                          unknown_container_message)

# The largest encoder a config.json may ask for (whisper-large: 32 layers of width 1280): a few times
# that, so a 1 KB config cannot make the loader build gigabytes.
CONFIG_BOUNDS = {"d_model": 8192, "encoder_layers": 128, "encoder_attention_heads": 128, "encoder_ffn_dim": 32768,
                 "num_mel_bins": 512, "max_source_positions": 16384}

# Where the encoder's tensors sit: WhisperForConditionalGeneration (openai/whisper-tiny's files,
# ComfyUI's audio encoders), WhisperModel.save_pretrained, and a bare WhisperEncoder.
ENCODER_PREFIXES = ("model.encoder.", "encoder.", "")
_MARKERS = ("conv1.weight", "conv2.weight", "embed_positions.weight", "layers.0.self_attn.k_proj.weight",
            "layer_norm.weight")
WHISPER_HEAD_DIM = 64  # every released Whisper size (tiny 384 = 6 x 64, ..., large 1280 = 20 x 64)
WHISPER_HINT = ("the whisper-tiny/ folder (openai/whisper-tiny from Hugging Face) or its model.safetensors, in "
                "ComfyUI/models/audio_encoders/")


class WhisperFilesError(ValueError):
    """A Whisper file or folder is missing or is something else; the message names it."""


@dataclass(frozen=True)
class WhisperSource:
    """A recognised Whisper: where its encoder tensors are and the encoder's configuration."""

    path: Path
    weight_files: tuple[Path, ...]
    prefix: str  # of the encoder tensors in those files
    config: dict[str, Any]  # WhisperConfig values (from config.json, or read from the shapes)
    feature_config: dict[str, Any]  # WhisperFeatureExtractor values (preprocessor_config.json or defaults)

    @property
    def channels(self) -> int:
        return int(self.config["d_model"])

    @property
    def states(self) -> int:
        """Hidden states the encoder returns: the embeddings, then one per layer."""
        return int(self.config["encoder_layers"]) + 1


def _keys_and_shapes(path: Path) -> dict[str, tuple[int, ...]] | None:
    """Tensor names and shapes of a weight file (safetensors: header only), None if it is no weight file."""
    try:
        kind = container_kind(path, WhisperFilesError)
    except WhisperFilesError:
        return None
    if kind == SAFETENSORS:
        handle = open_safetensors(path, WhisperFilesError)
        return {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}
    if kind in (TORCH_ZIP, LEGACY_PICKLE):
        state = tensor_state_dict(load_torch_file(path, WhisperFilesError), path, ("state_dict", "model_state_dict"),
                                  "Whisper weights", WhisperFilesError)
        return {k: tuple(v.shape) for k, v in state.items()}
    return None


def _encoder_prefix(keys: dict[str, tuple[int, ...]]) -> str | None:
    for prefix in ENCODER_PREFIXES:
        if all(prefix + m in keys for m in _MARKERS):
            return prefix
    return None


def _config_from_shapes(keys: dict[str, tuple[int, ...]], prefix: str, path: Path) -> dict[str, Any]:
    """WhisperConfig values of a single file (which carries no config.json)."""
    width, mels, _ = keys[prefix + "conv1.weight"]
    if width % WHISPER_HEAD_DIM:
        raise WhisperFilesError(f"audio_encoder: {path} holds a Whisper of width {width}, not a multiple of "
                                f"{WHISPER_HEAD_DIM}; a single file needs a released Whisper size (or use its folder, "
                                "whose config.json gives the head count).")
    layers = 0
    while f"{prefix}layers.{layers}.fc1.weight" in keys:
        layers += 1
    return {"d_model": width, "num_mel_bins": mels, "encoder_layers": layers,
            "encoder_attention_heads": width // WHISPER_HEAD_DIM,
            "encoder_ffn_dim": keys[prefix + "layers.0.fc1.weight"][0],
            "max_source_positions": keys[prefix + "embed_positions.weight"][0]}


def _first_keys(keys: dict[str, tuple[int, ...]] | None) -> str:
    return ", ".join(sorted(keys or {})[:4]) or "none"


def inspect_whisper(path: str | os.PathLike) -> WhisperSource:
    """What `path` holds, from config.json and tensor headers only (nothing large is read); a clear
    WhisperFilesError naming the path when it is missing or not a Whisper."""
    path = Path(path)
    if path.is_dir():
        return _inspect_folder(path)
    if not path.is_file():
        raise WhisperFilesError(f"audio_encoder: {path} does not exist; it takes {WHISPER_HINT}.")
    try:
        keys = _keys_and_shapes(path)
    except WeightsFileError as exc:  # pragma: no cover - the loaders pass WhisperFilesError
        raise WhisperFilesError(str(exc)) from None
    if keys is None:
        raise WhisperFilesError(f"audio_encoder: {unknown_container_message(path)} It takes {WHISPER_HINT}.")
    prefix = _encoder_prefix(keys)
    if prefix is None:
        raise WhisperFilesError(f"audio_encoder: {path} is not a Whisper model (no encoder.conv1 / embed_positions "
                                f"tensors; its first keys are: {_first_keys(keys)}). It takes {WHISPER_HINT}.")
    config = _config_from_shapes(keys, prefix, path)
    return WhisperSource(path, (path,), prefix, config, {"feature_size": config["num_mel_bins"]})


def _inspect_folder(folder: Path) -> WhisperSource:
    if not (folder / "config.json").is_file():
        raise WhisperFilesError(f"audio_encoder: {folder} has no config.json; it takes {WHISPER_HINT}.")
    config = read_json_file(folder / "config.json", WhisperFilesError)
    if not isinstance(config, dict) or config.get("model_type") != "whisper":
        config = config if isinstance(config, dict) else {}
        raise WhisperFilesError(f"audio_encoder: {folder} holds a {config.get('model_type') or 'unknown'!r} model "
                                f"(config.json model_type), not Whisper; it takes {WHISPER_HINT}.")
    # The weight files are found by their tensors, safetensors first (what from_pretrained prefers).
    found: list[tuple[Path, str]] = []
    for pattern in ("*.safetensors", "*.bin", "*.pt", "*.pth"):
        for candidate in sorted(folder.glob(pattern)):
            keys = _keys_and_shapes(candidate)
            prefix = _encoder_prefix(keys) if keys else None
            if prefix is not None:
                found.append((candidate, prefix))
        if found:
            break
    if not found:
        raise WhisperFilesError(f"audio_encoder: {folder} has a Whisper config.json but no file with its encoder "
                                "weights (model.safetensors or pytorch_model.bin); download the folder again.")
    path, prefix = found[0]  # several complete copies (e.g. safetensors and .bin) hold the same weights
    check_config_bounds(config, CONFIG_BOUNDS, f"audio_encoder: {folder / 'config.json'}", WhisperFilesError)
    features: dict[str, Any] = {"feature_size": config.get("num_mel_bins", 80)}
    preprocessor = folder / "preprocessor_config.json"
    if preprocessor.is_file():
        features = read_json_file(preprocessor, WhisperFilesError)
        if not isinstance(features, dict):
            raise WhisperFilesError(f"audio_encoder: {preprocessor} is not a JSON object; download it again.")
    return WhisperSource(folder, (path,), prefix, config, features)


def _encoder_tensors(source: WhisperSource) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for path in source.weight_files:
        if container_kind(path, WhisperFilesError) == SAFETENSORS:
            handle = open_safetensors(path, WhisperFilesError)
            tensors.update({k[len(source.prefix):]: handle.get_tensor(k) for k in handle.keys()
                            if k.startswith(source.prefix)})
        else:
            state = tensor_state_dict(load_torch_file(path, WhisperFilesError), path,
                                      ("state_dict", "model_state_dict"), "Whisper weights", WhisperFilesError)
            tensors.update({k[len(source.prefix):]: v for k, v in state.items() if k.startswith(source.prefix)})
    return tensors


@dataclass
class Whisper:
    """Whisper's feature extractor and encoder (float32, eval), ready to encode audio."""

    feature_extractor: Any  # transformers.WhisperFeatureExtractor
    encoder: torch.nn.Module  # transformers WhisperEncoder
    source: WhisperSource

    @property
    def device(self) -> torch.device:
        return self.encoder.conv1.weight.device


def load_whisper(source: WhisperSource | str | os.PathLike, device: Any = "cpu") -> Whisper:
    """The feature extractor and the float32 encoder on `device` (the encoder of whisper-tiny is 8 M
    parameters, 33 MB)."""
    from transformers import WhisperConfig, WhisperFeatureExtractor
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    if not isinstance(source, WhisperSource):
        source = inspect_whisper(source)
    check_config_bounds(source.config, CONFIG_BOUNDS, f"audio_encoder: {source.path}", WhisperFilesError)
    config = WhisperConfig.from_dict(dict(source.config))
    with torch.device("meta"):  # shapes only: nothing is allocated before they match the files' headers
        encoder = WhisperEncoder(config)
    # Keep only what the encoder has (the decoder, projections and the like are not used); every
    # encoder tensor must be there with its shape, checked from the headers before any is read.
    expected = encoder.state_dict()
    shapes: dict[str, tuple[int, ...]] = {}
    for weight_file in source.weight_files:
        shapes.update({k[len(source.prefix):]: v for k, v in (_keys_and_shapes(weight_file) or {}).items()
                       if k.startswith(source.prefix)})
    problems = [f"{k} is missing" for k in expected if k not in shapes]
    problems += [f"{k} has shape {list(shapes[k])}, config.json implies {list(expected[k].shape)}"
                 for k in expected if k in shapes and tuple(shapes[k]) != tuple(expected[k].shape)]
    if not problems:
        state = {k: v for k, v in _encoder_tensors(source).items() if k in expected}
        problems = [f"{k} has shape {list(v.shape)}, config.json implies {list(expected[k].shape)}"
                    for k, v in state.items() if v.shape != expected[k].shape]
    if problems:
        raise WhisperFilesError(f"audio_encoder: {source.path} does not hold a complete Whisper encoder: "
                                + "; ".join(problems[:4]) + (" ..." if len(problems) > 4 else "")
                                + ". Download it again.")
    encoder.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True, assign=True)
    leftovers = [n for n, t in list(encoder.named_parameters()) + list(encoder.named_buffers()) if t.is_meta]
    if leftovers:
        raise WhisperFilesError(f"audio_encoder: {source.path} leaves {leftovers[:3]} without weights; "
                                "download it again.")
    encoder.to(device=torch.device(device), dtype=torch.float32).eval().requires_grad_(False)
    extractor = WhisperFeatureExtractor.from_dict(dict(source.feature_config))  # as from_pretrained builds it
    return Whisper(extractor, encoder, source)
