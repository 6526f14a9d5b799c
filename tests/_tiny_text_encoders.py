"""Tiny, randomly initialised stand-ins for upstream's two text encoders (test helper).

`build_tiny_text_encoders(root)` writes two folders in the layouts users download:
  root/llava-llama-3-8b-v1_1/          LlavaForConditionalGeneration (tiny Llama + tiny CLIP vision)
                                       + a Llama-3-style fast tokenizer + preprocessor config
  root/openai_clip-vit-large-patch14/  a full CLIPModel (as openai/clip-vit-large-patch14 ships it)
                                       + a CLIP BPE tokenizer
Both tokenizers are built in code (the `tokenizers` library), so no download is needed.

Dimensions match the tiny transformer fixtures (text_states_dim 32, text_states_dim_2 24), so the
end-to-end tests can feed these encodings straight into the tiny transformer.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

LLAVA_FOLDER = "llava-llama-3-8b-v1_1"
CLIP_FOLDER = "openai_clip-vit-large-patch14"

LLAVA_HIDDEN = 32  # = text_states_dim of the tiny transformer fixtures
LLAVA_LAYERS = 4
CLIP_HIDDEN = 24  # = text_states_dim_2 of the tiny transformer fixtures
IMAGE_SIZE = 28
PATCH_SIZE = 14
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2  # CLS dropped ("default" feature strategy)

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

BOS = "<|begin_of_text|>"
LLAMA3_SPECIAL = ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<image>", "<pad>"]

# Words the tiny Llama tokenizer knows; anything else becomes <unk> (one token per word either way).
_KNOWN_TEXT = (
    "system user Describe the video by detailing following aspects : 1 . The main content and theme of "
    "2 color , shape size texture quantity text spatial relationships objects 3 Actions events behaviors "
    "temporal physical movement changes 4 background environment light style atmosphere 5 camera angles "
    "movements transitions used in looks like woman man person object is drinking coffee at a cafe playing "
    "guitar fire Realistic High - quality Aerial view overexposed low deformation poor composition bad hands "
    "teeth eyes limbs distortion blurring subtitles static picture black border cat dog red ball"
)


def _llama3_like_tokenizer():
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, BOS: 1}
    for word in sorted(set(re.findall(r"\w+|[^\w\s]+", _KNOWN_TEXT))):
        vocab.setdefault(word, len(vocab))
    for special in LLAMA3_SPECIAL:
        vocab[special] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in [BOS, *LLAMA3_SPECIAL]])
    # Llama-3 prepends <|begin_of_text|>; upstream's 95-token crop counts it.
    backend.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, vocab[BOS])])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=BOS, eos_token="<|eot_id|>", pad_token="<pad>", unk_token="<unk>",
        padding_side="right",
    )


def _clip_tokenizer():
    import tempfile

    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    # Byte-level BPE without merges: one token per character, which is all a test needs.
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in bytes_to_unicode().values():
        vocab.setdefault(char, len(vocab))
        vocab.setdefault(char + "</w>", len(vocab))
    # Through files, as openai/clip-vit-large-patch14 ships them: the one constructor that
    # transformers 4.x and 5.x share.
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "vocab.json").write_text(json.dumps(vocab))
        (Path(folder) / "merges.txt").write_text("#version: 0.2\n")
        return CLIPTokenizer.from_pretrained(folder)


def build_tiny_llava(folder: Path, seed: int = 0):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    tokenizer = _llama3_like_tokenizer()
    text_config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=LLAVA_HIDDEN, intermediate_size=64, num_hidden_layers=LLAVA_LAYERS,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, rms_norm_eps=1e-5,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision_config = CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, projection_dim=16,
    )
    config = LlavaConfig(
        vision_config=vision_config, text_config=text_config,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"), image_seq_length=IMAGE_TOKENS,
        vision_feature_layer=-2, vision_feature_select_strategy="default", pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    with torch.no_grad():  # a real checkpoint's pad row is not zero; make sure nothing relies on that
        model.get_input_embeddings().weight[tokenizer.pad_token_id].normal_(0, 0.02)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    # The real folder ships a processor config; we never use it (pixels come from pipelines/conditioning/reference.py).
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "CLIPImageProcessor", "crop_size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        "size": {"shortest_edge": IMAGE_SIZE}, "image_mean": CLIP_MEAN, "image_std": CLIP_STD,
    }))
    return folder


def build_tiny_clip(folder: Path, seed: int = 1):
    from transformers import CLIPConfig, CLIPModel

    tokenizer = _clip_tokenizer()
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=CLIP_HIDDEN, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=IMAGE_SIZE, patch_size=PATCH_SIZE),
        projection_dim=16,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_text_encoders(root: Path | str) -> tuple[Path, Path]:
    """Write both tiny encoder folders under `root`; returns (llava_dir, clip_dir)."""
    root = Path(root)
    return build_tiny_llava(root / LLAVA_FOLDER), build_tiny_clip(root / CLIP_FOLDER)


def white_pixel_values(size: int = IMAGE_SIZE) -> torch.Tensor:
    """CLIP-normalised all-white image, like upstream's negative-branch image, at the tiny size."""
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return ((torch.ones(1, 3, size, size) - mean) / std).float()


def random_pixel_values(seed: int = 0, size: int = IMAGE_SIZE) -> torch.Tensor:
    return torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed))
