"""The HunyuanCustom LoRA node chained between the loader and the sampler, as ComfyUI calls them, with
the tiny model set and LoRA files in models/loras: the video equals the one from a hand-merged
checkpoint, and another strength or no LoRA next run does not read the checkpoint again."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file

from _checkpoint_writers import write_upstream_pt
from _lora_files import make_lora, merged, write_lora
from _tiny_model_set import FIXTURES, blue_square_spec, build_tiny_model_set
from hunyuan_custom import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from hunyuan_custom.pipelines import weights_io
from hunyuan_custom.pipelines.diffusion_models import loading

Loader = NODE_CLASS_MAPPINGS["HunyuanCustomModelLoader"]
LoRA = NODE_CLASS_MAPPINGS["HunyuanCustomLoRA"]
Sampler = NODE_CLASS_MAPPINGS["HunyuanCustomSampler"]
FILES = ("hyvae_v1_0801/", "llava-llama-3-8b-v1_1/", "openai_clip-vit-large-patch14/")
BASE = "hunyuancustom_720P/mp_rank_00_model_states.pt"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    build_tiny_model_set(root)
    sd = load_file(str(FIXTURES / "transformer_ref2v" / "weights.safetensors"))
    style, motion = make_lora(sd, seed=11), make_lora(sd, modules=("single_blocks.0.linear1",), rank=2, alpha=2.0, seed=12)
    (root / "loras" / "hunyuan").mkdir(parents=True)
    write_lora(style, root / "loras" / "hunyuan" / "style.safetensors", "musubi", 64)
    write_lora(motion, root / "loras" / "motion.safetensors", "diffusers", 64)
    for name, loras in (("merged_a", [(style, 0.8), (motion, -0.5)]), ("merged_b", [(style, 0.3)])):
        folder = root / "diffusion_models" / name
        folder.mkdir()
        shutil.copy(FIXTURES / "transformer_ref2v" / "config.json", folder / "config.json")
        write_upstream_pt(merged(sd, loras), folder / "mp_rank_00_model_states.pt")
    return root


@pytest.fixture
def comfy_models(models_dir, monkeypatch):
    monkeypatch.setenv("HYC_MODELS_DIR", str(models_dir))
    return models_dir


def _frames(model) -> torch.Tensor:
    spec = blue_square_spec()
    answer = Sampler().sample(model, spec, size="64*48", guidance_scale=7.5, flow_shift=13.0, seed=3, num_frames=9, steps=2)
    return answer["result"][0]


def test_the_node_is_registered_with_its_widgets(comfy_models):
    assert NODE_DISPLAY_NAME_MAPPINGS["HunyuanCustomLoRA"] == "HunyuanCustom LoRA"
    required = LoRA.INPUT_TYPES()["required"]
    assert required["lora_name"][0] == ["hunyuan/style.safetensors", "motion.safetensors"]
    assert required["strength"][1]["default"] == 1.0
    assert (required["strength"][1]["min"], required["strength"][1]["max"]) == (-2.0, 2.0)


def test_chained_loras_give_the_hand_merged_video_and_new_strengths_do_not_reload(comfy_models, monkeypatch):
    (base,) = Loader().load(BASE, *FILES, dtype="float32")
    plain = _frames(base)
    (one,) = LoRA().apply(base, "hunyuan/style.safetensors", 0.8)
    (two,) = LoRA().apply(one, "motion.safetensors", -0.5)
    got = _frames(two)
    assert (got - plain).abs().max() > 1e-3
    (reference,) = Loader().load("merged_a/mp_rank_00_model_states.pt", *FILES, dtype="float32")
    torch.testing.assert_close(got, _frames(reference), rtol=0, atol=2e-4)

    reads = []
    with monkeypatch.context() as spy:  # every reader of checkpoint files
        for module, name in ((loading, "load_transformer"), (weights_io, "load_torch_file"),
                             (weights_io, "open_safetensors")):
            real = getattr(module, name)
            spy.setattr(module, name, lambda *a, _real=real, _name=name, **k: (reads.append((_name, str(a[0]))),
                                                                              _real(*a, **k))[1])
        (weaker,) = LoRA().apply(base, "hunyuan/style.safetensors", 0.3)
        got = _frames(weaker)
        again = _frames(base)  # the loader's output alone: the LoRAs come off
    assert [r for r in reads if "loras" in r[1]]  # the spy sees reads: the LoRA file was read
    assert not [r for r in reads if "diffusion_models" in r[1] or r[0] == "load_transformer"], reads
    torch.testing.assert_close(again, plain, rtol=0, atol=0)
    (reference,) = Loader().load("merged_b/mp_rank_00_model_states.pt", *FILES, dtype="float32")
    torch.testing.assert_close(got, _frames(reference), rtol=0, atol=2e-4)


def test_a_wrong_file_is_refused_at_queue_time_naming_what_it_is(comfy_models):
    from safetensors.torch import save_file

    save_file({"lora_unet_blocks_0_self_attn_q.lora_down.weight": torch.zeros(2, 8),
               "lora_unet_blocks_0_self_attn_q.lora_up.weight": torch.zeros(8, 2)},
              str(comfy_models / "loras" / "wan_style.safetensors"))
    assert LoRA.VALIDATE_INPUTS("hunyuan/style.safetensors") is True
    message = LoRA.VALIDATE_INPUTS("wan_style.safetensors")
    assert message.startswith("wan_style.safetensors looks like a Wan 2.1") and "lora_name" not in message
    assert "not found" in LoRA.VALIDATE_INPUTS("gone.safetensors")
    with pytest.raises(ValueError, match="Wan 2.1"):
        LoRA().apply(object.__new__(type("M", (), {"with_loras": lambda self, x: self})), "wan_style.safetensors", 1.0)
