"""How many bytes the text encoders will take once loaded, from the files' headers alone.

offload 'auto' has to choose where LLaVA goes BEFORE loading 16 GB of it. The safetensors headers
give every tensor's shape; counting each floating tensor at the compute dtype's size is what the
loaders produce (fp8_scaled files are dequantized to it, fp32 folders converted). Only the tensors
the models keep are counted: CLIP's vision half and the fp8 scale / marker tensors are skipped.
Legacy .bin folders have no cheap header: their file sizes are used (an over-count at worst).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from .files import TextEncoderFilesError, _is_ignored, folder_weight_files, read_header

_ITEMSIZE = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2, "U16": 2,
             "I8": 1, "U8": 1, "BOOL": 1}
# What each model keeps of a file or folder (file keys by prefix).
LLAVA_FOLDER_PREFIXES = ("",)  # the whole LlavaForConditionalGeneration
LLAMA_FILE_PREFIXES = ("model.", "lm_head.")
LLAVA_VISION_PREFIXES = ("vision_model.", "multi_modal_projector.")
CLIP_TEXT_PREFIXES = ("text_model.",)


def _is_floating(dtype: str) -> bool:
    return dtype.startswith(("F", "BF"))


def _stored_itemsize(dtype: str) -> int:
    return 1 if dtype.startswith("F8") else _ITEMSIZE.get(dtype, 2)


def safetensors_bytes(path: str | os.PathLike, itemsize: int, prefixes: Sequence[str] = ("",)) -> int:
    """Bytes of the tensors under `prefixes` in one safetensors file, floating ones at `itemsize`."""
    total = 0
    for name, info in read_header(path).items():
        if not name.startswith(tuple(prefixes)) or _is_ignored(name):
            continue
        numel = 1
        for size in info.shape:
            numel *= size
        total += numel * (itemsize if _is_floating(info.dtype) else _stored_itemsize(info.dtype))
    return total


def folder_bytes(folder: str | os.PathLike, itemsize: int, prefixes: Sequence[str] = ("",)) -> int:
    weights = folder_weight_files(Path(folder))
    if weights is None:
        raise TextEncoderFilesError(f"{folder} holds no model.safetensors or pytorch_model.bin (nor their "
                                    ".index.json); download the folder again.")
    files, is_safetensors = weights
    if is_safetensors:
        return sum(safetensors_bytes(f, itemsize, prefixes) for f in files)
    return sum(f.stat().st_size for f in files if f.is_file())


def llava_bytes(llava_path: str | os.PathLike, itemsize: int, llava_vision: str | os.PathLike | None = None) -> int:
    """LLaVA as load_text_encoders builds it: a folder, or a Llama-3 file + the vision file."""
    path = Path(llava_path)
    if path.is_dir():
        return folder_bytes(path, itemsize, LLAVA_FOLDER_PREFIXES)
    total = safetensors_bytes(path, itemsize, LLAMA_FILE_PREFIXES)  # no lm_head: it is tied, nothing added
    if llava_vision:
        total += safetensors_bytes(llava_vision, itemsize, LLAVA_VISION_PREFIXES)
    return total


def clip_bytes(clip_path: str | os.PathLike, itemsize: int) -> int:
    """CLIP-L's text model (a folder's full CLIPModel: its text half)."""
    path = Path(clip_path)
    if path.is_dir():
        return folder_bytes(path, itemsize, CLIP_TEXT_PREFIXES)
    return safetensors_bytes(path, itemsize, CLIP_TEXT_PREFIXES)
