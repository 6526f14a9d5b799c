"""Upstream's LLaVA prompt template and the attention-mask rules that go with it.

The strings and numbers are facts about the released model (it was trained with them); the mask
functions are pure (counts and tensors in, tensors out) so they can be checked against the
reference fixtures without any model. No transformers import here.
"""

from __future__ import annotations

import torch

# HunyuanVideo's Llama-3 video system template ("li-dit-encode-video"); `{}` is the user prompt.
LLAVA_VIDEO_TEMPLATE = (
    "<|start_header_id|>system<|end_header_id|>\n\n"
    "Describe the video by detailing the following aspects: "
    "1. The main content and theme of the video."
    "2. The color, shape, size, texture, quantity, text, and spatial relationships of the objects."
    "3. Actions, events, behaviors temporal relationships, physical movement changes of the objects."
    "4. background environment, light, style and atmosphere."
    "5. camera angles, movements, and transitions used in the video:<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>"
)
# HunyuanCustom appends this after the template; `<image>` becomes the vision features.
LLAVA_SUBJECT_SUFFIX = "\nThe {} looks like<image>"
IMAGE_PLACEHOLDER = "<image>"
NEGATIVE_SUBJECT = "person"  # upstream calls the negative branch without a name -> its default

# Token counts with the REAL Llama-3 tokenizer: the template prefix (BOS ... "user<|end_header_id|>\n\n")
# is 95 tokens and is cropped away; 256 tokens remain for the prompt, the suffix and padding.
LLAVA_CROP_START = 95
LLAVA_TEXT_LEN = 256
CLIP_MAX_LENGTH = 77


def build_llava_text(prompt: str, subject: str, template: str = LLAVA_VIDEO_TEMPLATE) -> str:
    """The exact string upstream hands to the LLaVA tokenizer (negative branch: subject 'person')."""
    return template.format(prompt) + LLAVA_SUBJECT_SUFFIX.format(subject)


def template_prefix(template: str = LLAVA_VIDEO_TEMPLATE) -> str:
    """The part of the template before the user prompt: the tokens that are cropped away."""
    return template.split("{}", 1)[0]


def tokenizer_mask(num_tokens: int, max_length: int) -> torch.Tensor:
    """Right-padded tokenizer attention mask [1, max_length]: `num_tokens` ones then zeros."""
    if not 0 < num_tokens <= max_length:
        raise ValueError(f"token count {num_tokens} must be in 1..{max_length}")
    mask = torch.zeros(1, max_length, dtype=torch.int64)
    mask[:, :num_tokens] = 1
    return mask


def append_image_ones(mask: torch.Tensor, image_extra: int) -> torch.Tensor:
    """Upstream's encode_prompt: the tokenizer mask followed by `image_extra` ones (575 for the real
    model = image features - 1, because `<image>` itself already has a mask entry). The ones go at
    the END even though the features sit where `<image>` was; see `crop_template`."""
    ones = torch.ones(mask.shape[0], image_extra, dtype=mask.dtype, device=mask.device)
    return torch.cat([mask, ones], dim=1)


def crop_template(tensor: torch.Tensor, crop_start: int) -> torch.Tensor:
    """Drop the template tokens (dim 1), for masks and hidden states alike."""
    return tensor[:, crop_start:]


def encode_mask(num_tokens: int, max_length: int, image_extra: int, crop_start: int) -> torch.Tensor:
    """The mask upstream's TextEncoder.encode returns for one prompt with an image:
    [1]*(n-crop) + [0]*(max_length-n) + [1]*image_extra."""
    return crop_template(append_image_ones(tokenizer_mask(num_tokens, max_length), image_extra), crop_start)


def cfg_negative_mask(mask: torch.Tensor, image_extra: int) -> torch.Tensor:
    """Upstream's rewrite of the unconditional row under CFG with a reference image: if its sum
    exceeds `image_extra`, it becomes ones(sum - image_extra) then zeros (the image part of the
    negative row is dropped from the joint attention). A sum of exactly `image_extra` is kept."""
    out = mask.clone()
    for row in range(out.shape[0]):
        total = int(out[row].sum())
        if total > image_extra:
            out[row] = 0
            out[row, : total - image_extra] = 1
    return out


def run_lengths(mask: torch.Tensor) -> list[list[int]]:
    """A 1-D 0/1 mask as [[value, count], ...] (the fixtures' notation)."""
    values = mask.reshape(-1).tolist()
    runs: list[list[int]] = []
    for v in values:
        if runs and runs[-1][0] == v:
            runs[-1][1] += 1
        else:
            runs.append([int(v), 1])
    return runs


def from_run_lengths(runs: list[list[int]]) -> torch.Tensor:
    return torch.tensor([v for v, count in runs for _ in range(count)], dtype=torch.int64)
