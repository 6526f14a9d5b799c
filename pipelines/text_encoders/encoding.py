"""Prompt encoding for HunyuanCustom: LLaVA-Llama-3 (text + reference image) and CLIP-L.

Reproduces upstream's TextEncoder + encode_prompt with current transformers (5.x):
  * LLaVA: template + "\\nThe {subject} looks like<image>", right-padded to text_len + crop_start
    tokens; `<image>` is expanded to one token per vision feature BEFORE the call (transformers
    >= 4.47 requires it; upstream's pinned 4.41.2 merged the features internally), then
    hidden_states[-3] (no final norm), template tokens cropped.
  * Upstream's quirky mask: tokenizer mask + (features - 1) ones at the END, while the states hold
    [text][image features][padding]; under CFG the negative row is rewritten (prompt_template.py).
  * CLIP-L: raw prompt, 77 tokens, pooler_output.

TextEncoders holds loaded models (loading.py makes them); the text stage the sampler runs, with its
cache, is cache.encode_text_conditioning. transformers is imported inside functions so importing
this module stays cheap.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch

from . import prompt_template as pt
from .encodings import PromptEncoding, TextConditioning, cfg_conditioning, single_conditioning

log = logging.getLogger(__name__)

_REAL_LLAMA3_VOCAB = 128000  # a tokenizer at least this big is taken to be the real Llama-3 one


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
