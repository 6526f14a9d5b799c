"""Prompt encoding for HunyuanCustom: LLaVA-Llama-3 (text + reference image) and CLIP-L.

Reproduces upstream's TextEncoder + encode_prompt with current transformers (5.x):
  * LLaVA: template + "\\nThe {subject} looks like<image>", right-padded to text_len + crop_start
    tokens; `<image>` is expanded to one token per vision feature BEFORE the call (transformers
    >= 4.47 requires it; upstream's pinned 4.41.2 merged the features internally), then
    hidden_states[-3] (no final norm), template tokens cropped.
  * Upstream's quirky mask: tokenizer mask + (features - 1) ones at the END, while the states hold
    [text][image features][padding]; under CFG the negative row is rewritten (prompt_template.py).
  * CLIP-L: raw prompt, 77 tokens, pooler_output.
  * EncodingCache: a new seed must not re-run (or even re-load) an 8 B encoder.

Typical use (the local sampler):
    cond = encode_text_conditioning(llava_dir, clip_dir, prompt=..., negative_prompt=..., subject=...,
                                    pixel_values=llava_pixel_values(img), uncond_pixel_values=uncond_llava_pixel_values(),
                                    do_cfg=guidance > 1, dtype=torch.bfloat16, device=device)
    -> TextConditioning(states [B,L,D], mask [B,L] int64, pooled [B,D2]); B = 2 ([uncond, cond]) or 1.
The encoders are loaded, used and freed inside that call; DEFAULT_CACHE keeps recent rows on CPU.
offload="group" keeps LLaVA's decoder layers in CPU RAM and streams them through the GPU
(text_encoder_offload.py): ~4 GiB of VRAM instead of ~16 for the stage.
Instead of the two transformers folders, ComfyUI's single files work too (llava_llama3_fp16 /
_fp8_scaled.safetensors + llava_vision=llava_llama3_vision.safetensors + llava_tokenizer=<folder>,
clip_l.safetensors + clip_tokenizer=<folder>): see text_encoder_files.py.

transformers is imported inside functions so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch

from . import prompt_template as pt
from . import files as tef
from .files import TextEncoderFilesError  # noqa: F401  (re-exported: callers catch it from here)

log = logging.getLogger(__name__)

LLAVA_DOWNLOAD = "xtuner/llava-llama-3-8b-v1_1-transformers (upstream's llava-llama-3-8b-v1_1/ folder)"
CLIP_DOWNLOAD = "openai/clip-vit-large-patch14 (upstream's openai_clip-vit-large-patch14/ folder)"
_REAL_LLAMA3_VOCAB = 128000  # a tokenizer at least this big is taken to be the real Llama-3 one


# ----------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptEncoding:
    """One prompt's encoding (one batch row), in upstream's layout after the template crop."""

    states: torch.Tensor  # [1, L, D] LLaVA hidden_states[-3]: [text][image features][padding]
    mask: torch.Tensor  # [1, L] int64: [1]*(n-crop) + [0]*(max_len-n) + [1]*image_extra
    pooled: torch.Tensor  # [1, D2] CLIP pooler_output
    image_extra: int  # image features - 1 (575 for the real model)

    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> "PromptEncoding":
        return PromptEncoding(
            self.states.to(device=device, dtype=dtype), self.mask.to(device=device),
            self.pooled.to(device=device, dtype=dtype), self.image_extra,
        )


@dataclass(frozen=True)
class TextConditioning:
    """What the transformer takes as text: batch order [uncond, cond] under CFG, else [cond]."""

    states: torch.Tensor  # [B, L, D]
    mask: torch.Tensor  # [B, L] int64 (uncond row already rewritten as upstream does)
    pooled: torch.Tensor  # [B, D2]

    @property
    def batch_size(self) -> int:
        return int(self.states.shape[0])

    @property
    def has_uncond(self) -> bool:
        return self.batch_size == 2

    def cond_only(self) -> "TextConditioning":
        """The conditional row alone (guidance 1: one pass)."""
        return TextConditioning(self.states[-1:], self.mask[-1:], self.pooled[-1:])

    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> "TextConditioning":
        return TextConditioning(
            self.states.to(device=device, dtype=dtype), self.mask.to(device=device),
            self.pooled.to(device=device, dtype=dtype),
        )


def cfg_conditioning(cond: PromptEncoding, uncond: PromptEncoding) -> TextConditioning:
    """Stack [uncond, cond] and apply upstream's negative-row mask rewrite."""
    if cond.states.shape != uncond.states.shape:
        raise ValueError(f"positive and negative encodings differ in shape: {tuple(cond.states.shape)} vs {tuple(uncond.states.shape)}")
    neg_mask = pt.cfg_negative_mask(uncond.mask, uncond.image_extra)
    return TextConditioning(
        states=torch.cat([uncond.states, cond.states.to(uncond.states)], dim=0),
        mask=torch.cat([neg_mask, cond.mask.to(neg_mask)], dim=0),
        pooled=torch.cat([uncond.pooled, cond.pooled.to(uncond.pooled)], dim=0),
    )


def single_conditioning(cond: PromptEncoding) -> TextConditioning:
    """Guidance 1: only the conditional row, its mask unchanged."""
    return TextConditioning(cond.states, cond.mask, cond.pooled)


# ----------------------------------------------------------------------------------------------
# Pure helpers for the LLaVA call
# ----------------------------------------------------------------------------------------------


def image_feature_count(llava_config: Any) -> int:
    """Vision features per image = image tokens `<image>` expands to (576 for CLIP-ViT-L/14 at 336)."""
    vision = llava_config.vision_config
    patches = (int(vision.image_size) // int(vision.patch_size)) ** 2
    # "default" drops the CLS feature, "full" keeps it.
    return patches + (1 if getattr(llava_config, "vision_feature_select_strategy", "default") == "full" else 0)


@dataclass(frozen=True)
class ExpandedInputs:
    input_ids: torch.Tensor  # [1, T + N - 1]
    attention_mask: torch.Tensor  # [1, T + N - 1] what the model sees (image positions = 1)
    position_ids: torch.Tensor  # [1, T + N - 1]


def expand_image_tokens(input_ids: torch.Tensor, attention_mask: torch.Tensor, image_token_id: int, num_features: int) -> ExpandedInputs:
    """Replace the single `<image>` id by `num_features` image ids, in place, and extend the mask by
    num_features - 1 ones there: the same sequence transformers 4.41.2 built internally.

    Position ids follow 4.41.2 as well: cumsum(mask) - 1, and 1 on padding (valid tokens get
    0..k-1 either way; padding rows differ otherwise, and the positional refiner mask reads them).
    """
    if input_ids.shape[0] != 1:
        raise ValueError("expand_image_tokens handles one prompt at a time (batch 1)")
    where = (input_ids[0] == image_token_id).nonzero().flatten()
    if where.numel() != 1:
        raise ValueError(f"expected exactly one <image> token (id {image_token_id}) in the LLaVA input, found {where.numel()}")
    p = int(where[0])
    image_ids = torch.full((1, num_features), image_token_id, dtype=input_ids.dtype, device=input_ids.device)
    ids = torch.cat([input_ids[:, :p], image_ids, input_ids[:, p + 1 :]], dim=1)
    ones = torch.ones((1, num_features), dtype=attention_mask.dtype, device=attention_mask.device)
    mask = torch.cat([attention_mask[:, :p], ones, attention_mask[:, p + 1 :]], dim=1)
    position_ids = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 1)
    return ExpandedInputs(ids, mask, position_ids)


@contextlib.contextmanager
def _zero_embeddings_where(embedding: torch.nn.Module, positions: torch.Tensor | None) -> Iterator[None]:
    """transformers 4.41.2 zeroed the input embeddings of pad tokens (ids == config.pad_token_id)
    before the language model; new versions do not, so do it with a temporary hook."""
    if positions is None or not bool(positions.any()):
        yield
        return

    def hook(_module, _inputs, output):
        return output.masked_fill(positions.to(output.device)[..., None], 0)

    handle = embedding.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Keep transformers' per-key load reports (CLIPModel checkpoint into CLIPTextModel) and
    progress bars out of the console; ComfyUI shows our own progress."""
    from transformers.utils import logging as tlogging

    previous = tlogging.get_verbosity()
    bars = tlogging.is_progress_bar_enabled()
    tlogging.set_verbosity_error()
    tlogging.disable_progress_bar()
    try:
        yield
    finally:
        tlogging.set_verbosity(previous)
        if bars:
            tlogging.enable_progress_bar()


# ----------------------------------------------------------------------------------------------
# The encoders
# ----------------------------------------------------------------------------------------------


class TextEncoders:
    """LLaVA + CLIP with their tokenizers; `encode` gives upstream's conditioning, `free` drops them."""

    def __init__(self, llava: Any, llava_tokenizer: Any, clip: Any, clip_tokenizer: Any, *,
                 crop_start: int | None = None, text_len: int = pt.LLAVA_TEXT_LEN,
                 clip_max_length: int = pt.CLIP_MAX_LENGTH, identity: str = ""):
        self.llava = llava
        self.llava_tokenizer = llava_tokenizer
        self.clip = clip
        self.clip_tokenizer = clip_tokenizer
        self.identity = identity
        self.text_len = int(text_len)
        self.clip_max_length = int(clip_max_length)
        self.crop_start = int(crop_start) if crop_start is not None else template_token_count(llava_tokenizer)
        self.max_length = self.text_len + self.crop_start
        self.num_image_features = image_feature_count(llava.config)
        self.image_extra = self.num_image_features - 1
        self.image_token_id = int(llava.config.image_token_id)
        pad = getattr(llava.config, "pad_token_id", None)
        self.model_pad_token_id = int(pad) if pad is not None else None
        if llava_tokenizer.pad_token_id is None:
            # Upstream's real tokenizer has one; padding to max_length needs it.
            raise ValueError("the LLaVA tokenizer has no pad token; the llava-llama-3-8b-v1_1 folder seems incomplete "
                             "(its tokenizer_config.json / special_tokens_map.json should define pad_token)")

    # -- LLaVA -----------------------------------------------------------------------------

    def _count_tokens(self, text: str) -> int:
        return len(self.llava_tokenizer(text)["input_ids"])

    def llava_text(self, prompt: str, subject: str) -> str:
        """The string for the LLaVA tokenizer. If it would not fit, the USER text is shortened so that
        the '\\nThe {subject} looks like<image>' suffix survives (upstream would cut <image> away and
        fail or lose the reference); a warning says so."""
        text = pt.build_llava_text(prompt, subject)
        total = self._count_tokens(text)
        if total <= self.max_length:
            return text
        enc = self.llava_tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
        keep = max(len(offsets) - (total - self.max_length), 0)
        while True:
            cut = offsets[keep - 1][1] if keep > 0 else 0
            text = pt.build_llava_text(prompt[:cut], subject)
            if self._count_tokens(text) <= self.max_length or keep == 0:
                break
            keep -= 1
        if self._count_tokens(text) > self.max_length:
            raise ValueError(f"the subject word {subject!r} is too long for the {self.text_len}-token LLaVA budget")
        log.warning("HunyuanCustom: prompt is longer than the %d-token LLaVA budget; kept its first %d of %d "
                    "characters so the reference-image part ('The %s looks like<image>') survives. Dropped: %r",
                    self.text_len, cut, len(prompt), subject, prompt[cut:][:200])
        return text

    def tokenize_llava(self, prompt: str, subject: str) -> tuple[torch.Tensor, torch.Tensor]:
        """input_ids and attention mask [1, max_length], upstream's tokenizer call (right padding)."""
        enc = self.llava_tokenizer(
            self.llava_text(prompt, subject), max_length=self.max_length, padding="max_length",
            truncation=True, return_tensors="pt",
        )
        return enc["input_ids"], enc["attention_mask"].to(torch.int64)

    def _require_loaded(self) -> None:
        if self.llava is None or self.clip is None:
            raise RuntimeError("these text encoders were freed after encoding; load them again with load_text_encoders")

    def check_pixel_values(self, pixel_values: torch.Tensor) -> None:
        self._require_loaded()
        size = int(self.llava.config.vision_config.image_size)
        if pixel_values.ndim != 4 or tuple(pixel_values.shape) != (1, 3, size, size):
            raise ValueError(f"LLaVA pixel values must be a normalised [1, 3, {size}, {size}] tensor, got "
                             f"{tuple(pixel_values.shape)} (build them with pipelines.conditioning.reference.llava_pixel_values)")

    @torch.no_grad()
    def encode_llava(self, prompt: str, subject: str, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(states [1, L, D], mask [1, L]) with L = max_length - crop_start + image_extra."""
        self.check_pixel_values(pixel_values)
        input_ids, tok_mask = self.tokenize_llava(prompt, subject)
        expanded = expand_image_tokens(input_ids, tok_mask, self.image_token_id, self.num_image_features)
        # Where the embeddings are, not llava.device (its first parameter): with offload "group" the
        # decoder layers sit in CPU RAM between calls while the inputs belong on the GPU.
        device = self.llava.get_input_embeddings().weight.device
        pad_positions = None
        if self.model_pad_token_id is not None:
            pad_positions = (expanded.input_ids == self.model_pad_token_id).to(device)
        with _zero_embeddings_where(self.llava.get_input_embeddings(), pad_positions):
            out = self.llava(
                input_ids=expanded.input_ids.to(device),
                pixel_values=pixel_values.to(device=device, dtype=self.llava.dtype),
                attention_mask=expanded.attention_mask.to(device),
                position_ids=expanded.position_ids.to(device),
                output_hidden_states=True,
                logits_to_keep=1,  # we only need hidden states; skip [T, 128k] logits
            )
        # Skip the last two layers; upstream applies no final norm to this intermediate layer.
        states = pt.crop_template(out.hidden_states[-3], self.crop_start)
        # Upstream's mask: tokenizer mask + image_extra ones at the end, then the same crop.
        mask = pt.crop_template(pt.append_image_ones(tok_mask, self.image_extra), self.crop_start)
        if states.shape[1] != mask.shape[1]:
            raise RuntimeError(f"LLaVA returned {states.shape[1]} positions, expected {mask.shape[1]}")
        return states, mask

    # -- CLIP ------------------------------------------------------------------------------

    @torch.no_grad()
    def encode_clip(self, prompt: str) -> torch.Tensor:
        """CLIP-L pooler_output [1, D2] of the raw prompt (no template)."""
        self._require_loaded()
        enc = self.clip_tokenizer(prompt, max_length=self.clip_max_length, padding="max_length",
                                  truncation=True, return_tensors="pt")
        device = self.clip.device
        out = self.clip(input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device))
        return out.pooler_output

    # -- both ------------------------------------------------------------------------------

    def encode_rows(self, rows: Sequence[tuple[str, str, torch.Tensor]]) -> list[PromptEncoding]:
        """Encode (prompt, subject, pixel_values) rows: all LLaVA calls first, then CLIP (upstream's order)."""
        llava = [self.encode_llava(p, s, px) for p, s, px in rows]
        pooled = [self.encode_clip(p) for p, _, _ in rows]
        return [PromptEncoding(st, m, pl, self.image_extra) for (st, m), pl in zip(llava, pooled)]

    def encode(self, prompt: str, negative_prompt: str, subject: str, pixel_values: torch.Tensor,
               uncond_pixel_values: torch.Tensor | None = None, do_cfg: bool = True) -> TextConditioning:
        """Upstream's conditioning; CFG batch order [uncond (subject 'person', white image), cond]."""
        if not do_cfg:
            return single_conditioning(self.encode_rows([(prompt, subject, pixel_values)])[0])
        if uncond_pixel_values is None:
            raise ValueError("CFG needs the unconditional (all-white) LLaVA pixel values")
        cond, uncond = self.encode_rows([(prompt, subject, pixel_values),
                                         (negative_prompt, pt.NEGATIVE_SUBJECT, uncond_pixel_values)])
        return cfg_conditioning(cond, uncond)

    def free(self) -> None:
        """Drop both models (stage-wise memory: load -> encode -> free before the transformer loads),
        with offload "group" also the hooks and their pinned CPU copies of LLaVA's layers."""
        from .offload import empty_host_cache, remove_text_group_offloading

        remove_text_group_offloading(self.llava)
        self.llava = self.clip = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
            empty_host_cache()

    def __enter__(self) -> "TextEncoders":
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.free()


def template_token_count(tokenizer: Any, template: str = pt.LLAVA_VIDEO_TEMPLATE) -> int:
    """crop_start: tokens of BOS + the template up to the user prompt. For the real Llama-3
    tokenizer this is upstream's fixed 95; if a real-size tokenizer disagrees, 95 is used (the
    model was trained with that crop) and a warning is logged."""
    count = len(tokenizer(pt.template_prefix(template))["input_ids"])
    if len(tokenizer) >= _REAL_LLAMA3_VOCAB and count != pt.LLAVA_CROP_START:
        log.warning("HunyuanCustom: the LLaVA tokenizer gives %d template tokens, upstream crops %d; using %d. "
                    "Is the tokenizer in llava-llama-3-8b-v1_1 the original one?", count, pt.LLAVA_CROP_START, pt.LLAVA_CROP_START)
        return pt.LLAVA_CROP_START
    return count


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------


def _check_folder(folder: Path, what: str, download: str, tokenizer_options: Sequence[Sequence[str]]) -> None:
    hint = f"Download {download} into it (all files, including the tokenizer)."
    if not folder.is_dir():
        raise TextEncoderFilesError(f"{what} folder not found: {folder}. {hint}")
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    weights = tef.folder_weight_files(folder)
    if weights is None:
        missing.append(" or ".join(tef.WEIGHT_FILES[:2]))
    else:
        missing += [f.name for f in weights[0] if not f.is_file()]
    if not any(all((folder / f).is_file() for f in option) for option in tokenizer_options):
        missing.append(" or ".join(" + ".join(option) for option in tokenizer_options))
    if missing:
        raise TextEncoderFilesError(f"{what} folder {folder} is incomplete, missing: {', '.join(missing)}. {hint}")


def check_llava_folder(folder: str | os.PathLike) -> None:
    _check_folder(Path(folder), "LLaVA text encoder", LLAVA_DOWNLOAD, [("tokenizer.json",), ("tokenizer.model",)])


def check_clip_folder(folder: str | os.PathLike) -> None:
    _check_folder(Path(folder), "CLIP text encoder", CLIP_DOWNLOAD, [("tokenizer.json",), ("vocab.json", "merges.txt")])


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
    decoder layers are streamed to `device` one at a time during the encode (text_encoder_offload.py);
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
    with _quiet_transformers():
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


# ----------------------------------------------------------------------------------------------
# Cache
# ----------------------------------------------------------------------------------------------


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
