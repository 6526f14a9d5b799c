"""Low-level reading of weight files, shared by every loader (transformer, VAE).

One place decides what a file is (from its bytes, never its name: people rename checkpoints
freely, and torch.load picks safetensors for any "*.safetensors" name), opens safetensors
memory-mapped, reads pickled checkpoints with torch.load(weights_only=True) only, and words the
errors. Loaders pass their own exception class (`error=`), so their callers keep catching what
they caught before, while the messages are the same whichever loader met the file.
"""

from __future__ import annotations

import json
import pickle
import re
import struct
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

SAFETENSORS = "safetensors"
TORCH_ZIP = "torch-zip"  # torch.save's default format since torch 1.6
LEGACY_PICKLE = "legacy-pickle"  # older torch.save(_use_new_zipfile_serialization=False), or a bare pickle
UNKNOWN = "unknown"

_ZIP_MAGIC = b"PK\x03\x04"
_MAX_SAFETENSORS_HEADER = 100_000_000  # the safetensors library refuses larger headers as well


class WeightsFileError(Exception):
    """A weight file that cannot be read; the message names the file and says what to do."""


def container_kind(path: Path, error: type[Exception] = WeightsFileError) -> str:
    """SAFETENSORS, TORCH_ZIP, LEGACY_PICKLE or UNKNOWN (also for an empty file), from the first bytes."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc}).") from None
    if head.startswith(_ZIP_MAGIC):
        return TORCH_ZIP
    # safetensors before pickles: a header length such as 0x0280 also starts with the pickle byte 0x80.
    if len(head) >= 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        if 0 < header_len < _MAX_SAFETENSORS_HEADER and head[8:9] == b"{":
            return SAFETENSORS
    if head[:1] == b"\x80" or head[:2] == b"\x8a\x0a":  # pickle protocol 2+ / old torch magic number
        return LEGACY_PICKLE
    return UNKNOWN


def unknown_container_message(path: Path) -> str:
    if path.is_file() and path.stat().st_size == 0:
        return f"{path}: the file is empty (interrupted download?). Download it again."
    return (f"{path}: neither a safetensors file nor a PyTorch checkpoint (unknown file header); it may be "
            "truncated, or a different kind of file.")


def corrupt_message(path: Path, detail: object) -> str:
    """The one wording for a file whose container is recognised but whose contents cannot be read."""
    detail = str(detail).strip().splitlines()[0] if str(detail).strip() else type(detail).__name__
    if "recursion limit" in detail:  # the safetensors parser's words for a header built to nest deeply
        detail = "its header is nested too deeply"
    return (f"{path}: cannot read this file; it looks truncated or corrupt ({detail}). "
            "Download it again and compare its size/checksum with the original.")


# ---------------------------------------------------------------- safetensors


def open_safetensors(path: Path, error: type[Exception] = WeightsFileError):
    """A memory-mapped safetensors handle (safe_open); tensors are read only when asked for."""
    from safetensors import SafetensorError, safe_open

    try:
        return safe_open(str(path), framework="pt", device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise error(corrupt_message(path, exc)) from None


_ST_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "F8_E4M3": getattr(torch, "float8_e4m3fn", None), "F8_E5M2": getattr(torch, "float8_e5m2", None),
}


def safetensors_dtype(name: str, error: type[Exception] = WeightsFileError) -> torch.dtype:
    """The torch dtype of a safetensors dtype string (as get_slice().get_dtype() gives it)."""
    dtype = _ST_DTYPES.get(name)
    if dtype is None:
        raise error(f"unsupported safetensors dtype {name}")
    return dtype


# ---------------------------------------------------------------- torch pickles


class _TorchLoadPath(str):
    """The file's path for torch.load, which must not pick a reader from the name.

    torch.load hands any path ending in ".safetensors" to safetensors, whatever the bytes are; we have
    already identified a torch checkpoint from its contents. mmap=True needs a path (not a file object),
    so the path is passed as a str whose endswith() never matches that suffix test.
    """

    def endswith(self, *args, **kwargs) -> bool:  # type: ignore[override]
        return False


_UNSUPPORTED_GLOBAL = re.compile(r"unsupported global:? (?:GLOBAL )?([\w.]+)", re.IGNORECASE)
# torch's advice around the refusal: retry with weights_only=False, or allow-list the class. Both would
# run what the file holds, so none of it is repeated.
_TORCH_ADVICE = ("Weights only load failed", "Please file an issue", "Check the documentation", "weights_only",
                 "safe_globals", "This file can still be loaded")


def _unpickling_reason(exc: Exception) -> str:
    """What torch refused, without its advice: the Python object the file names (e.g. posix.system),
    or its first line that is no advice."""
    text = str(exc)
    found = _UNSUPPORTED_GLOBAL.search(text)
    if found:
        return f"it names the Python object {found.group(1)}, which is not a tensor"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reasons = [line for line in lines if not any(advice in line for advice in _TORCH_ADVICE)]
    return (reasons or [type(exc).__name__])[0]


def load_torch_file(path: Path, error: type[Exception] = WeightsFileError) -> Any:
    """torch.load restricted to tensors and plain containers (weights_only=True): nothing else is unpickled.

    Zip checkpoints are memory-mapped (mmap=True), so their tensors are views of the file. Legacy
    (non-zip) pickles cannot be memory-mapped by torch: they are read into RAM, which costs a second
    copy of the weights while a model is built from them; re-saving them with torch.save avoids that.
    """
    kind = container_kind(path, error)
    if kind not in (TORCH_ZIP, LEGACY_PICKLE):
        raise error(unknown_container_message(path) if kind == UNKNOWN else
                    f"{path}: a {kind} file, not a PyTorch checkpoint.")
    try:
        with warnings.catch_warnings():
            # torch warns about any pickle protocol but 2 before it reads the tensors or refuses the file
            # anyway; either way the warning tells a user nothing.
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            # torch can memory-map only zip checkpoints; a legacy pickle is read whole (a second copy in RAM).
            return torch.load(_TorchLoadPath(path), map_location="cpu", weights_only=True, mmap=kind == TORCH_ZIP)
    except pickle.UnpicklingError as exc:
        raise error(
            f"{path}: refused to load. It holds pickled Python objects other than tensors (possibly code), and "
            "only tensors are read from pickled checkpoints (torch.load weights_only=True); nothing from it "
            f"was run. Use a safetensors file or the official checkpoint. Details: {_unpickling_reason(exc)}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, struct.error) as exc:
        raise error(corrupt_message(path, exc)) from None


def tensor_state_dict(obj: Any, path: Path, nested_keys: Iterable[str], expected: str,
                      error: type[Exception] = WeightsFileError) -> dict[str, torch.Tensor]:
    """The name -> tensor dict inside a loaded checkpoint: under the first of `nested_keys` that holds a
    dict (upstream DiT: `module`, upstream VAE: `state_dict`), else the top level. Non-tensor entries
    (optimizer state, step counters) are dropped. `expected` says what the loader looks for."""
    if not isinstance(obj, Mapping):
        raise error(f"{path}: holds a {type(obj).__name__}, not a dictionary of tensors; expected {expected}.")
    for key in nested_keys:
        if isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise error(f"{path}: no tensors found (top-level keys: {sorted(map(str, obj))[:10]}); expected {expected}.")
    return tensors


# ---------------------------------------------------------------- remembering header checks


def file_stamp(path: str | Path) -> tuple:
    """What changes when a model file or folder changes: the size and mtime of the file, or of every
    file in the folder and its sub-folders one level down (shards, configs, a diffusers `vae/`)."""
    path = Path(path)
    if not path.is_dir():
        stat = path.stat()
        return (stat.st_size, stat.st_mtime_ns)
    entries = []
    for child in sorted(path.iterdir()):
        inner = sorted(child.iterdir()) if child.is_dir() else [child]
        for item in inner:
            if item.is_file():
                stat = item.stat()
                entries.append((str(item.relative_to(path)), stat.st_size, stat.st_mtime_ns))
    return tuple(entries)


_CHECKED: dict[tuple, str | None] = {}


def remembered_problem(what: str, paths: Iterable[str | Path | None], check: Any) -> str | None:
    """The problem `check()` finds (the message of the exception it raises), or None; remembered by
    the paths' stamps, so asking again (each queued prompt, each sampler start) reads no header twice
    until a file changes. `check` raises WeightsFileError/ValueError/OSError for a bad file."""
    real = [Path(p).expanduser() for p in paths if p]
    try:
        key = (what, *((str(p.resolve()), file_stamp(p)) for p in real))
    except OSError as exc:
        return str(exc)
    if key not in _CHECKED:
        try:
            check()
            _CHECKED[key] = None
        except (WeightsFileError, ValueError, OSError) as exc:
            _CHECKED[key] = str(exc)
    return _CHECKED[key]


# ----------------------------------------------------------------------------------------------
# config.json files: read within bounds

CONFIG_MAX_BYTES = 4 << 20  # a model's config.json is a few KB


def read_json_file(path: Path, error: type[Exception] = WeightsFileError) -> Any:
    """A JSON file such as a model's config.json, refused in plain words when it is larger than
    4 MB, not JSON, or nested so deep that the parser gives up (RecursionError)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > CONFIG_MAX_BYTES:
            raise error(f"{path}: {size:,} bytes is far larger than any model's config file "
                        f"(at most {CONFIG_MAX_BYTES:,}); replace it with the model's own.")
        return json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise error(f"{path}: not valid JSON ({reason}); fix it or replace it with the model's own.") from None


def check_config_bounds(config: Mapping[str, Any], bounds: Mapping[str, int], where: str,
                        error: type[Exception] = WeightsFileError) -> None:
    """Refuse a configuration whose sizes (`bounds`: key -> largest value; a list's items each, and
    at most 16 of them) are beyond any real model, BEFORE anything is built from it: a 1 KB
    config.json could otherwise ask for thousands of blocks or gigabytes of weights."""
    for key, limit in bounds.items():
        value = config.get(key)
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if len(values) > 16:
            raise error(f"{where}: {key} lists {len(values)} values; no model of this kind has more than 16.")
        for item in values:
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                continue
            if item > limit or item < 0:
                raise error(f"{where}: {key} = {value} is beyond any model of this kind (at most {limit}); "
                            "the config.json does not belong to this model. Replace it with the model's own.")
