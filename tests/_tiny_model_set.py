"""A complete tiny HunyuanCustom model set in the REAL on-disk layouts users download.

Laid out as ComfyUI's models/ folder (diffusion_models/, vae/, text_encoders/), so the same set
serves the CLI (paths) and the nodes ($HYC_MODELS_DIR):
- hunyuancustom_720P/mp_rank_00_model_states.pt: upstream pickle, weights under `module`, with the
  fixture's config.json beside it (tiny sizes); hunyuancustom_editing_720P/ the same for the
  editing transformer (bg_in / bg_proj);
- vae_3d/hyvae_v1_0801/: upstream config.json + pytorch_model.pt with `vae.` keys;
- llava-llama-3-8b-v1_1/ and openai_clip-vit-large-patch14/: HF folders, tokenizers built in code;
- hunyuancustom_audio_720P/mp_rank_00_model_states.pt (the audio checkpoint, same layout) and
  audio_encoders/whisper-tiny/ (a Hugging Face Whisper folder, as openai/whisper-tiny downloads).
Weights come from the upstream reference fixtures (random, tiny).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from _tiny_text_encoders import build_tiny_text_encoders

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "reference"


@dataclass(frozen=True)
class TinyModelSet:
    transformer: Path
    editing_transformer: Path
    vae: Path
    text_encoder: Path
    text_encoder_2: Path
    audio_transformer: Path | None = None
    audio_encoder: Path | None = None


# The Model Loader's picks for the set's ref2v files (transformer, VAE, LLaVA, CLIP), as ComfyUI names them
# inside the model folders once HYC_MODELS_DIR points at the set's root.
LOADER_PICKS = ("hunyuancustom_720P/mp_rank_00_model_states.pt", "hyvae_v1_0801/", "llava-llama-3-8b-v1_1/",
                "openai_clip-vit-large-patch14/")


def blue_square_spec():
    """The node tests' prompt: a blue square on white as the reference (40 x 30 pixels)."""
    import torch

    from hunyuan_custom.pipelines.conditioning.prompt_spec import PromptSpec

    ref = torch.ones(1, 40, 30, 3)
    ref[:, 10:30, 5:25] = torch.tensor([0.1, 0.5, 0.9])
    return PromptSpec.create("a blue square", "", "square", ref)


def build_tiny_model_set(root: Path, fixtures: Path = FIXTURES) -> TinyModelSet:
    root = Path(root)
    transformers = {}
    for variant, folder in (("ref2v", "hunyuancustom_720P"), ("editing", "hunyuancustom_editing_720P")):
        dit_dir = root / "diffusion_models" / folder
        dit_dir.mkdir(parents=True)
        weights = load_file(str(fixtures / f"transformer_{variant}" / "weights.safetensors"))
        torch.save({"module": weights}, dit_dir / "mp_rank_00_model_states.pt")
        shutil.copy(fixtures / f"transformer_{variant}" / "config.json", dit_dir / "config.json")
        transformers[variant] = dit_dir / "mp_rank_00_model_states.pt"

    vae_dir = root / "vae" / "hyvae_v1_0801"
    vae_dir.mkdir(parents=True)
    vae_weights = load_file(str(fixtures / "vae" / "weights.safetensors"))
    torch.save({"vae." + k: v for k, v in vae_weights.items()}, vae_dir / "pytorch_model.pt")
    vae_config = json.loads((fixtures / "vae" / "config.json").read_text())["constructor_kwargs"]
    (vae_dir / "config.json").write_text(json.dumps(vae_config))

    (root / "text_encoders").mkdir()
    llava_dir, clip_dir = build_tiny_text_encoders(root / "text_encoders")
    audio_dit, whisper = _audio_models(root, fixtures)
    return TinyModelSet(transformers["ref2v"], transformers["editing"], vae_dir, Path(llava_dir), Path(clip_dir),
                        audio_dit, whisper)


def _audio_models(root: Path, fixtures: Path) -> tuple[Path, Path]:
    """The audio checkpoint (its Whisper windows are 5 states x 8 channels) and a Whisper folder whose
    encoder gives exactly those (the audio front-end fixture's tiny random Whisper)."""
    audio_dir = root / "diffusion_models" / "hunyuancustom_audio_720P"
    audio_dir.mkdir(parents=True)
    weights = load_file(str(fixtures / "audio" / "transformer_audio_weights.safetensors"))
    torch.save({"module": weights}, audio_dir / "mp_rank_00_model_states.pt")
    shutil.copy(fixtures / "audio" / "config.json", audio_dir / "config.json")
    whisper = root / "audio_encoders" / "whisper-tiny"
    shutil.copytree(fixtures / "audio_frontend" / "whisper_tiny_random", whisper)
    return audio_dir / "mp_rank_00_model_states.pt", whisper
