"""The text stage with its cache: a new seed (or the negative row unchanged) must not re-run, or even
re-load, an 8 B encoder. Rows are kept on the CPU, keyed by texts, reference pixels, encoder files
(identity from sizes and mtimes, without loading) and dtype."""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from typing import Any, Callable

import torch

from . import prompt_template as pt
from .encoding import TextEncoders
from .encodings import PromptEncoding, TextConditioning, cfg_conditioning, single_conditioning
from .loading import _single_file_options, encoder_identity, load_text_encoders


def pixel_hash(pixel_values: torch.Tensor) -> str:
    data = pixel_values.detach().to("cpu", torch.float32).contiguous()
    h = hashlib.sha256(str(tuple(data.shape)).encode())
    h.update(data.numpy().tobytes())
    return h.hexdigest()


def row_key(prompt: str, subject: str, pixel_values: torch.Tensor, identity: str, dtype: torch.dtype) -> tuple:
    """Cache key of one encoded row. The positive and the negative row are cached separately, so
    editing only the negative prompt re-encodes only that row."""
    return (prompt, subject, pixel_hash(pixel_values), identity, str(dtype))


class EncodingCache:
    """The last few encoded rows, kept on CPU (a 720p job's text is ~7 MB per row in bf16)."""

    def __init__(self, max_entries: int = 8):
        self.max_entries = max(int(max_entries), 1)
        self._entries: OrderedDict[tuple, PromptEncoding] = OrderedDict()

    def get(self, key: tuple) -> PromptEncoding | None:
        hit = self._entries.get(key)
        if hit is not None:
            self._entries.move_to_end(key)
        return hit

    def put(self, key: tuple, encoding: PromptEncoding) -> None:
        self._entries[key] = encoding.to("cpu")
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


DEFAULT_CACHE = EncodingCache()


def encode_text_conditioning(
    llava_dir: str | os.PathLike, clip_dir: str | os.PathLike, *, prompt: str, negative_prompt: str, subject: str,
    pixel_values: torch.Tensor, uncond_pixel_values: torch.Tensor | None, do_cfg: bool,
    dtype: torch.dtype = torch.bfloat16, device: Any = "cpu", cache: EncodingCache | None = DEFAULT_CACHE,
    crop_start: int | None = None, text_len: int = pt.LLAVA_TEXT_LEN,
    loader: Callable[..., TextEncoders] = load_text_encoders, status: Callable[[str], None] | None = None,
    llava_vision: str | os.PathLike | None = None, llava_tokenizer: str | os.PathLike | None = None,
    clip_tokenizer: str | os.PathLike | None = None, offload: str | Callable[[], str] = "model",
) -> TextConditioning:
    """Cached, stage-wise prompt encoding: on a cache miss load both encoders, encode the missing
    rows, free the encoders; on a hit (same texts, subject, reference pixels, encoder folders,
    dtype) nothing is loaded. Returns the conditioning on `device`. `status` gets short texts for
    the node's status line. `llava_vision` / `llava_tokenizer` / `clip_tokenizer`: for single files
    (see load_text_encoders). `offload`: "model" / "group" for load_text_encoders, or a function that
    decides it, called only on a cache miss (a hit loads nothing, so there is nothing to decide)."""
    say = status or (lambda _text: None)
    single = _single_file_options(llava_vision, llava_tokenizer, clip_tokenizer)
    identity = encoder_identity(llava_dir, clip_dir, crop_start=crop_start, text_len=text_len, **single)
    rows = [(prompt, subject, pixel_values)]
    if do_cfg:
        if uncond_pixel_values is None:
            raise ValueError("CFG needs the unconditional (all-white) LLaVA pixel values")
        rows.insert(0, (negative_prompt, pt.NEGATIVE_SUBJECT, uncond_pixel_values))  # [uncond, cond]
    keys = [row_key(p, s, px, identity, dtype) for p, s, px in rows]
    found = [cache.get(k) if cache is not None else None for k in keys]
    missing = [i for i, hit in enumerate(found) if hit is None]
    if not missing:
        say("prompt encoding: cached")
    else:
        mode = offload() if callable(offload) else offload
        # Passed only when not the default, so loaders written before the option keep working.
        extra = {"offload": mode} if mode != "model" else {}
        say("loading text encoders (LLaVA-Llama-3-8B, CLIP-L)"
            + (", LLaVA's layers streamed from CPU RAM" if extra else ""))
        encoders = loader(llava_dir, clip_dir, dtype, device, crop_start=crop_start, text_len=text_len,
                          **single, **extra)
        say(f"encoding {len(missing)} prompt(s)")
        try:
            # Upstream's order is positive first; `rows` is [uncond, cond], so reverse.
            order = sorted(missing, reverse=True)
            for i, encoding in zip(order, encoders.encode_rows([rows[i] for i in order])):
                found[i] = encoding.to("cpu")
                if cache is not None:
                    cache.put(keys[i], encoding)
        finally:
            encoders.free()
    found = [enc.to(device) for enc in found]
    conditioning = cfg_conditioning(found[1], found[0]) if do_cfg else single_conditioning(found[0])
    return conditioning
