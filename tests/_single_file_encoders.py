"""Tiny text encoders written twice: as transformers folders and as ComfyUI's single files (test helper).

The head sizes follow the real families, because the single files carry no head counts and the
loader derives them from Llama-3's 128-wide and CLIP's 64-wide heads: LLaVA hidden 128 (1 head),
vision tower hidden 64 (1 head), CLIP text hidden 64 (1 head).

`build_encoder_pair(root)` writes, from ONE set of random weights:
  root/folders/llava-llama-3-8b-v1_1/, root/folders/openai_clip-vit-large-patch14/   (HF folders)
  root/text_encoders/llava_llama3_fp16.safetensors      Llama-3 language model, HF Llama names, no lm_head
  root/text_encoders/llava_llama3_lm_head.safetensors   the same with lm_head.weight
  root/text_encoders/llava_llama3_fp8_scaled.safetensors float8 block weights + scale_weight / scale_input
                                                        + the scaled_fp8 marker
  root/text_encoders/clip_l.safetensors                 CLIP text model (+ text_projection, logit_scale)
  root/clip_vision/llava_llama3_vision.safetensors      vision tower + multi_modal_projector (+ visual_projection)
  root/folders/llava-fp8-dequantized/                   the folder holding what the fp8 file dequantizes to
  root/tokenizers/llama_tokenizer/, root/tokenizers/sd1_tokenizer/  (as ComfyUI ships them)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

import _tiny_text_encoders as tiny

LLAVA_HIDDEN = 128  # one 128-wide Llama-3 head
LLAVA_LAYERS = 4  # hidden_states[-3] needs at least 3
VISION_HIDDEN = 64  # one 64-wide CLIP head
CLIP_HIDDEN = 64
IMAGE_SIZE = tiny.IMAGE_SIZE
FP8 = torch.float8_e4m3fn


@dataclass(frozen=True)
class EncoderPair:
    llava_folder: Path
    clip_folder: Path
    llama_file: Path
    llama_file_with_lm_head: Path
    llama_fp8_file: Path
    fp8_dequantized_folder: Path
    vision_file: Path
    clip_file: Path
    llama_tokenizer: Path
    clip_tokenizer: Path


def _llava_model(seed: int = 0):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    tokenizer = tiny._llama3_like_tokenizer()
    text_config = LlamaConfig(
        vocab_size=len(tokenizer) + 3, hidden_size=LLAVA_HIDDEN, intermediate_size=96, num_hidden_layers=LLAVA_LAYERS,
        num_attention_heads=1, num_key_value_heads=1, head_dim=128, max_position_embeddings=8192, rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 500000.0}, pad_token_id=tokenizer.pad_token_id,
    )
    vision_config = CLIPVisionConfig(
        hidden_size=VISION_HIDDEN, intermediate_size=80, num_hidden_layers=3, num_attention_heads=1,
        image_size=IMAGE_SIZE, patch_size=tiny.PATCH_SIZE, projection_dim=16,
    )
    config = LlavaConfig(
        vision_config=vision_config, text_config=text_config,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"), image_seq_length=tiny.IMAGE_TOKENS,
        vision_feature_layer=-2, vision_feature_select_strategy="default", pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    with torch.no_grad():  # make norms and biases non-trivial so a wrong mapping shows
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.add_(torch.randn_like(p) * 0.1)
    return model, tokenizer


def _clip_model(seed: int = 1):
    from transformers import CLIPConfig, CLIPModel

    tokenizer = tiny._clip_tokenizer()
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=CLIP_HIDDEN, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=1, max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=IMAGE_SIZE, patch_size=tiny.PATCH_SIZE),
        projection_dim=16,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.add_(torch.randn_like(p) * 0.1)
    return model, tokenizer


def _strip(key: str, prefix: str) -> str | None:
    return key[len(prefix):] if key.startswith(prefix) else None


def llama_file_tensors(state: dict[str, torch.Tensor], lm_head: bool) -> dict[str, torch.Tensor]:
    """ComfyUI's llava_llama3 layout: the language model under HF Llama names (`model.*`)."""
    out = {}
    for key, value in state.items():
        rest = _strip(key, "model.language_model.")
        if rest is not None:
            out["model." + rest] = value
    if lm_head:
        out["lm_head.weight"] = state["lm_head.weight"]
    return out


def vision_file_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """ComfyUI's llava_llama3_vision layout: `vision_model.*` (HF CLIP names) + `multi_modal_projector.*`."""
    out = {}
    for key, value in state.items():
        rest = _strip(key, "model.vision_tower.")
        if rest is not None:
            out["vision_model." + (_strip(rest, "vision_model.") or rest)] = value
        rest = _strip(key, "model.multi_modal_projector.")
        if rest is not None:
            out["multi_modal_projector." + rest] = value
    out["visual_projection.weight"] = torch.randn(16, VISION_HIDDEN)  # in ComfyUI's file; unused by LLaVA
    return out


def clip_file_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """clip_l.safetensors: the text model only (`text_model.*`) + projection and logit scale."""
    out = {k: v for k, v in state.items() if k.startswith("text_model.")}
    if not out:  # a transformers version without the text_model. prefix in CLIPModel
        raise AssertionError("CLIPModel state dict has no text_model.* keys")
    out["text_projection.weight"] = state["text_projection.weight"]
    out["logit_scale"] = state["logit_scale"]
    return out


def fp8_scaled(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(ComfyUI fp8_scaled file tensors, the dequantized weights they stand for: w.to(float32) * scale)."""
    out, dequantized = {}, {}
    for key, value in tensors.items():
        if key.startswith("model.layers.") and key.endswith(".weight") and value.ndim == 2:
            scale = (value.abs().max().float() / torch.finfo(FP8).max).clamp(min=1e-12)
            q = (value.float() / scale).to(FP8)
            out[key] = q
            out[key[: -len("weight")] + "scale_weight"] = scale.reshape(())
            out[key[: -len("weight")] + "scale_input"] = torch.ones(())  # ComfyUI may store these: ignored
            dequantized[key] = q.to(torch.float32) * scale
        else:
            out[key] = value
            dequantized[key] = value
    out["scaled_fp8"] = torch.empty(0, dtype=FP8)
    return out, dequantized


def _save(tensors: dict[str, torch.Tensor], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path


def build_encoder_pair(root: Path | str) -> EncoderPair:
    root = Path(root)
    folders = root / "folders"
    llava, llama_tok = _llava_model()
    clip, clip_tok = _clip_model()
    llava_folder, clip_folder = folders / tiny.LLAVA_FOLDER, folders / tiny.CLIP_FOLDER
    for model, tokenizer, folder in ((llava, llama_tok, llava_folder), (clip, clip_tok, clip_folder)):
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    llama_tok.save_pretrained(root / "tokenizers" / "llama_tokenizer")
    clip_tok.save_pretrained(root / "tokenizers" / "sd1_tokenizer")

    state = {k: v.detach().clone() for k, v in llava.state_dict().items()}
    llama = llama_file_tensors(state, lm_head=False)
    llama_file = _save(llama, root / "text_encoders" / "llava_llama3_fp16.safetensors")
    with_head = _save(llama_file_tensors(state, lm_head=True), root / "text_encoders" / "llava_llama3_lm_head.safetensors")
    fp8_tensors, dequantized = fp8_scaled(llama)
    fp8_file = _save(fp8_tensors, root / "text_encoders" / "llava_llama3_fp8_scaled.safetensors")
    vision_file = _save(vision_file_tensors(state), root / "clip_vision" / "llava_llama3_vision.safetensors")
    clip_file = _save(clip_file_tensors(clip.state_dict()), root / "text_encoders" / "clip_l.safetensors")

    # The folder the fp8 file must match: the same model holding the dequantized weights.
    with torch.no_grad():
        language = llava.model.language_model
        for key, value in dequantized.items():
            language.get_parameter(key[len("model."):]).copy_(value)
    deq_folder = folders / "llava-fp8-dequantized"
    llava.save_pretrained(deq_folder)
    llama_tok.save_pretrained(deq_folder)
    return EncoderPair(llava_folder, clip_folder, llama_file, with_head, fp8_file, deq_folder, vision_file, clip_file,
                       root / "tokenizers" / "llama_tokenizer", root / "tokenizers" / "sd1_tokenizer")


def pixel_values(seed: int = 0) -> torch.Tensor:
    return tiny.random_pixel_values(seed, IMAGE_SIZE)


def write_transformer_for_these_encoders(folder: Path, fixtures: Path, seed: int = 5) -> Path:
    """The tiny upstream transformer of the reference fixtures, its text inputs widened to these encoders
    (text_states_dim 128, text_states_dim_2 64): upstream .pt + config.json, as build_tiny_model_set writes."""
    import json

    from safetensors.torch import load_file

    weights = load_file(str(fixtures / "transformer_ref2v" / "weights.safetensors"))
    config = json.loads((fixtures / "transformer_ref2v" / "config.json").read_text())
    old, old_2 = config["args_namespace"]["text_states_dim"], config["args_namespace"]["text_states_dim_2"]
    config["args_namespace"].update(text_states_dim=LLAVA_HIDDEN, text_states_dim_2=CLIP_HIDDEN)
    g = torch.Generator().manual_seed(seed)
    for key, new_in, old_in in (("txt_in.input_embedder.weight", LLAVA_HIDDEN, old),
                                ("txt_in.c_embedder.linear_1.weight", LLAVA_HIDDEN, old),
                                ("vector_in.in_layer.weight", CLIP_HIDDEN, old_2)):
        out_features, in_features = weights[key].shape
        assert in_features == old_in, key
        weights[key] = torch.randn(out_features, new_in, generator=g) / new_in ** 0.5
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"module": weights}, folder / "mp_rank_00_model_states.pt")
    (folder / "config.json").write_text(json.dumps(config))
    return folder / "mp_rank_00_model_states.pt"


def write_vae(folder: Path, fixtures: Path) -> Path:
    """The tiny upstream VAE folder (config.json + pytorch_model.pt with `vae.` keys)."""
    import json

    from safetensors.torch import load_file

    folder.mkdir(parents=True, exist_ok=True)
    weights = load_file(str(fixtures / "vae" / "weights.safetensors"))
    torch.save({"vae." + k: v for k, v in weights.items()}, folder / "pytorch_model.pt")
    config = json.loads((fixtures / "vae" / "config.json").read_text())["constructor_kwargs"]
    (folder / "config.json").write_text(json.dumps(config))
    return folder


LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                   "<unk>", "<image>", "<pad>"]


def write_comfy_like_llama_tokenizer(folder: Path) -> Path:
    """A folder shaped like ComfyUI's comfy/text_encoders/llama_tokenizer: a byte-level BPE tokenizer.json
    (Llama-3's pre-tokenizer regex, BOS template) and a tokenizer_config.json that declares
    tokenizer_class LlamaTokenizer (legacy), with <image> and <pad> as added special tokens."""
    import json

    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(["The woman looks like a person drinking coffee at the cafe. Hello world"] * 50, trainer)
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in LLAMA3_SPECIALS])
    bos = backend.token_to_id("<|begin_of_text|>")
    backend.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                                           special_tokens=[("<|begin_of_text|>", bos)])
    folder.mkdir(parents=True, exist_ok=True)
    backend.save(str(folder / "tokenizer.json"))
    added = {str(backend.token_to_id(t)): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                                            "single_word": False, "special": True} for t in LLAMA3_SPECIALS}
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "add_bos_token": True, "add_eos_token": False, "added_tokens_decoder": added, "bos_token": "<|begin_of_text|>",
        "eos_token": "<|end_of_text|>", "legacy": True, "pad_token": "<pad>", "padding_side": "right",
        "processor_class": "LlavaProcessor", "tokenizer_class": "LlamaTokenizer", "unk_token": "<unk>"}))
    return folder
