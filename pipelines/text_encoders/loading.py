"""Loading the two text encoders: upstream's transformers folders or ComfyUI's single files
(files.py), whole on the device or with LLaVA's layers streamed (offload.py)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from . import files as tef
from . import prompt_template as pt
from .encoding import TextEncoders
from .files import check_clip_folder, check_llava_folder
from .quiet import quiet_transformers

def _fingerprint(path: Path) -> list[str]:
    """Path, and size + mtime of the weight/config/tokenizer files (of the file itself for a single file)."""
    parts = [str(path.resolve())]
    if path.is_file():
        st = path.stat()
        return parts + [f"{path.name}:{st.st_size}:{st.st_mtime_ns}"]
    try:
        names = sorted(os.listdir(path))
    except OSError:
        names = []
    for name in names:
        if name.endswith((".json", ".safetensors", ".bin", ".model", ".txt")):
            st = (path / name).stat()
            parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
    return parts


def encoder_identity(llava_path: str | os.PathLike, clip_path: str | os.PathLike, *, crop_start: int | None = None,
                     text_len: int = pt.LLAVA_TEXT_LEN, llava_vision: str | os.PathLike | None = None,
                     llava_tokenizer: str | os.PathLike | None = None,
                     clip_tokenizer: str | os.PathLike | None = None) -> str:
    """A cheap fingerprint of the encoder folders or files (paths, sizes and mtimes; the vision file and
    tokenizer folders of single files too) and the text settings, computable WITHOUT loading anything:
    the cache key part that says 'same encoders'."""
    parts = [f"crop={crop_start}", f"text_len={text_len}"]
    for path in (llava_path, clip_path):
        parts += _fingerprint(Path(path))
    for label, path in (("vision", llava_vision), ("llava_tokenizer", llava_tokenizer), ("clip_tokenizer", clip_tokenizer)):
        if path:
            parts += [label, *_fingerprint(Path(path))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _single_file_options(llava_vision: Any, llava_tokenizer: Any, clip_tokenizer: Any) -> dict[str, Any]:
    """The single-file keywords that were given (a loader written for folders never sees them)."""
    given = {"llava_vision": llava_vision, "llava_tokenizer": llava_tokenizer, "clip_tokenizer": clip_tokenizer}
    return {k: v for k, v in given.items() if v}


TEXT_OFFLOAD_MODES = ("model", "group")


def load_text_encoders(llava_path: str | os.PathLike, clip_path: str | os.PathLike, dtype: torch.dtype = torch.bfloat16,
                       device: Any = "cpu", *, crop_start: int | None = None, text_len: int = pt.LLAVA_TEXT_LEN,
                       llava_vision: str | os.PathLike | None = None, llava_tokenizer: str | os.PathLike | None = None,
                       clip_tokenizer: str | os.PathLike | None = None, offload: str = "model") -> TextEncoders:
    """Load upstream's two text encoders (no network). Each is a transformers folder (upstream's
    llava-llama-3-8b-v1_1/, openai_clip-vit-large-patch14/) or a ComfyUI single file: the Llama-3 file
    then needs `llava_vision` (the vision tower file) and `llava_tokenizer`, clip_l needs `clip_tokenizer`.

    offload "model": both encoders whole on `device`. "group": LLaVA is loaded into CPU RAM and its
    decoder layers are streamed to `device` one at a time during the encode (offload.py);
    the rest of LLaVA and CLIP go to `device`."""
    if offload not in TEXT_OFFLOAD_MODES:
        raise ValueError(f"text encoder offload must be one of {', '.join(TEXT_OFFLOAD_MODES)}, got {offload!r}")
    # Anything that is not a file goes through the folder checks (their messages name missing files).
    if not Path(llava_path).is_file():
        check_llava_folder(llava_path)
    if not Path(clip_path).is_file():
        check_clip_folder(clip_path)
    llava_src = tef.llava_source(llava_path, llava_vision, llava_tokenizer)
    clip_src = tef.clip_source(clip_path, clip_tokenizer)
    from transformers import AutoTokenizer, CLIPTextModel, LlavaForConditionalGeneration

    def placement(where: Any) -> dict[str, Any]:
        # device_map puts the weights straight onto the device: no second 16 GB copy in CPU RAM.
        return {"dtype": dtype, "local_files_only": True, "device_map": {"": str(torch.device(where))}}

    llava_device = "cpu" if offload == "group" else device  # group: the hooks move the layers later
    with quiet_transformers():
        if llava_src.is_folder:
            llava_tokenizer_ = AutoTokenizer.from_pretrained(str(llava_path), local_files_only=True, padding_side="right")
            llava = LlavaForConditionalGeneration.from_pretrained(str(llava_path), **placement(llava_device))
        else:
            llava, llava_tokenizer_ = tef.load_llava(llava_src, dtype, llava_device)
        if clip_src.is_folder:
            clip_tokenizer_ = AutoTokenizer.from_pretrained(str(clip_path), local_files_only=True)
            # openai/clip-vit-large-patch14 is a full CLIPModel; CLIPTextModel takes its text half.
            clip = CLIPTextModel.from_pretrained(str(clip_path), **placement(device))
        else:
            clip, clip_tokenizer_ = tef.load_clip_text(clip_src, dtype, device)
    llava = llava.eval().requires_grad_(False)
    clip = clip.eval().requires_grad_(False)
    if offload == "group":
        from .offload import apply_text_group_offloading

        apply_text_group_offloading(llava, device)
    identity = encoder_identity(llava_path, clip_path, crop_start=crop_start, text_len=text_len,
                                **_single_file_options(llava_vision, llava_tokenizer, clip_tokenizer))
    return TextEncoders(llava, llava_tokenizer_, clip, clip_tokenizer_, crop_start=crop_start, text_len=text_len,
                        identity=identity)
