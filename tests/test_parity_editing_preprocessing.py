"""Video-editing preprocessing parity with upstream (fixtures: editing_preprocessing/, preprocessing/ edit.*).

Every case listed in the set's config.json: the processed mask and the masked video exactly as
uint8, the [-1, 1] videos exactly, the VAE posterior mean / logvar of both (tiled, as upstream)
and `bg_latents` rebuilt from the recorded N(0, 1) draws. Sizes, frame counts, expand values,
mask channels and the box option are all read from the set.

Our committed copy of editing_preprocessing.safetensors leaves out the `<case>.pixel_value_bg` /
`.pixel_value_mask` float tensors (2.5 MB that are the uint8 videos mapped by x/255*2-1; its
metadata lists them); they are compared whenever a set has them (HYC_REFERENCE_DIR), and
preprocessing/'s edit.* tensors check the same mapping on our copy.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import reference_root
from _transformer_parity import mismatch
from hunyuan_custom.pipelines.conditioning.base import StageContext
from hunyuan_custom.pipelines.conditioning.edit import EditCondition, encode_bg_latents
from hunyuan_custom.pipelines.conditioning.edit_pixels import output_frames, prepare_edit_pixels
from hunyuan_custom.pipelines.conditioning.prompt_spec import PromptSpec
from hunyuan_custom.pipelines.conditioning.reference import reference_for_vae
from hunyuan_custom.pipelines.job import Job
from hunyuan_custom.pipelines.vae import model as vae_module

ATOL = 1e-4  # the fixture README's tolerance for posterior mean/logvar and bg_latents


def _config(root):
    return json.loads((root / "editing_preprocessing" / "config.json").read_text())


def _case_names(root) -> list[str]:
    path = root / "editing_preprocessing" / "config.json"
    return [case["name"] for case in _config(root)["cases"]] if path.is_file() else []


@pytest.fixture(scope="module")
def edit_set(reference_dir):
    folder = reference_dir / "editing_preprocessing"
    config = _config(reference_dir)
    tensors = {k: v.clone() for k, v in load_file(str(folder / "editing_preprocessing.safetensors")).items()}
    vae_cfg = vae_module.config_from_dict({"constructor_kwargs": config["vae"]["constructor_kwargs"]})
    vae = vae_module.HunyuanVideoVAE.from_config(vae_cfg)
    vae.model.load_state_dict(load_file(str(folder / config["vae"]["weights"])), strict=True)
    return config, tensors, vae


def _case(config, name):
    return next(case for case in config["cases"] if case["name"] == name)


def _inputs(t, case) -> tuple[torch.Tensor, torch.Tensor]:
    """The source and mask frames upstream used: the first min(video, mask) of each. (Ours would
    apply a one-frame mask to every frame; upstream stops after one frame.)"""
    video, mask = t["input.video_rgb_uint8"], t[f"input.mask_{case['mask_video']}_uint8"]
    count = min(len(video), len(mask))
    return video[:count], mask[:count]


def test_parity_set_lists_its_cases(reference_dir):
    assert _case_names(reference_dir), f"{reference_dir / 'editing_preprocessing'} lists no cases"


@pytest.mark.parametrize("name", _case_names(reference_root()))
def test_parity_editing_case(edit_set, name):
    config, t, vae = edit_set
    case = _case(config, name)
    video, mask_input = _inputs(t, case)
    pixels = prepare_edit_pixels(video, mask_input, expand=int(case["expand_scale"]), box=bool(case.get("bbox", False)))
    expected_mask = t[f"{name}.mask_processed_uint8"]
    assert pixels.mask.shape == expected_mask.shape, "frames used = min(video, mask) at the video's size"
    assert torch.equal(pixels.mask, expected_mask), f"{int((pixels.mask != expected_mask).sum())} mask pixels differ"
    assert torch.equal(pixels.masked_video, t[f"{name}.masked_video_uint8"])

    bg, mask = pixels.bg_for_vae(), pixels.mask_for_vae()
    for ours, key in ((bg, f"{name}.pixel_value_bg"), (mask, f"{name}.pixel_value_mask")):
        if key in t:  # left out of our trimmed copy (see the module docstring)
            assert torch.equal(ours, t[key]), key

    problems = {}
    for which, video in (("bg", bg), ("mask", mask)):
        dist = vae.encode(video, tiled=True)  # upstream encodes with tiling on
        problems[f"{which}.mean"] = mismatch(dist.mean, t[f"{name}.{which}.mean"], atol=ATOL, rtol=0)
        problems[f"{which}.logvar"] = mismatch(dist.logvar, t[f"{name}.{which}.logvar"], atol=ATOL, rtol=0)
    draws = [t[f"{name}.bg.noise"], t[f"{name}.mask.noise"]]  # upstream's order: bg, then mask

    def recorded_sample(video):  # the fixture's recipe: (mean + std * recorded noise) * scaling factor
        dist = vae.encode(video, tiled=True)
        return (dist.mean + dist.std * draws.pop(0)) * vae.scaling_factor

    latents = encode_bg_latents(pixels, recorded_sample)
    problems["bg_latents"] = mismatch(latents, t[f"{name}.bg_latents"], atol=ATOL, rtol=0)
    problems = {k: v for k, v in problems.items() if v}
    assert not problems, problems
    if "predict_video_length" in case:
        assert output_frames(pixels.num_frames) == case["predict_video_length"]


@pytest.mark.parametrize("name", _case_names(reference_root()))
def test_parity_edit_condition_draws_what_upstreams_seeded_global_rng_drew(edit_set, name):
    """The condition's own path (plan, then encode_latents with the job's CPU generator): seeded with
    the case's global RNG seed, the generator draws upstream's noise, so bg_latents match outright."""
    config, t, vae = edit_set
    case = _case(config, name)
    if case.get("global_rng_seed") is None:
        pytest.skip("the set records no RNG seed for this case")
    video, mask = _inputs(t, case)
    condition = EditCondition(video, mask, expand=int(case["expand_scale"]), box=bool(case.get("bbox", False)))
    frames, height, width = (int(v) for v in video.shape[:3])
    spec = PromptSpec.create("a subject", "", "subject", t["input.ref_image_rgb_uint8"][None].float() / 255)
    job = Job(spec.with_condition(condition), width=width, height=height, num_frames=frames, steps=1,
              guidance_scale=7.5, flow_shift=5.0, seed=0)
    planned, note = job.planned()
    assert planned.num_frames == output_frames(frames)
    assert note[0].startswith(f"source {width}x{height}, {frames} frame")
    ctx = StageContext(width=width, height=height, num_frames=planned.num_frames, seed=0, device=torch.device("cpu"),
                       dtype=torch.float32, files=None,
                       generator=torch.Generator("cpu").manual_seed(int(case["global_rng_seed"])))
    latents = planned.spec.condition("edit").encode_latents(vae, ctx)["bg_latents"]
    problem = mismatch(latents, t[f"{name}.bg_latents"], atol=ATOL, rtol=0)
    assert not problem, problem


def test_parity_editing_reference_padded_to_the_source_size(edit_set):
    # The editing mode pads the reference to the SOURCE video's size; same encode recipe.
    config, t, vae = edit_set
    height, width = t["input.video_rgb_uint8"].shape[1:3]
    ref = reference_for_vae(t["input.ref_image_rgb_uint8"].numpy(), width, height)
    assert torch.equal(ref, t["ref.pixel_value_ref_for_vae"])
    dist = vae.encode(ref, tiled=True)
    problems = {name: mismatch(ours, t[f"ref.{name}"], atol=ATOL, rtol=0)
                for name, ours in (("mean", dist.mean), ("logvar", dist.logvar))}
    assert not any(problems.values()), problems


def test_parity_preprocessing_edit_tensors(reference_dir):
    """preprocessing/ holds one more VideoDataset run (half-size 3-channel mask, its own expand)."""
    folder = reference_dir / "preprocessing"
    t = load_file(str(folder / "preprocessing.safetensors"))
    if "edit.input_video_rgb_uint8" not in t:
        pytest.skip(f"{folder} has no edit.* tensors")
    expand = int(json.loads((folder / "config.json").read_text())["expand_scale"])
    pixels = prepare_edit_pixels(t["edit.input_video_rgb_uint8"], t["edit.mask_video_uint8"], expand=expand)
    assert torch.equal(pixels.bg_for_vae(), t["edit.pixel_value_bg_for_vae"])
    assert torch.equal(pixels.mask_for_vae(), t["edit.pixel_value_mask_for_vae"])
    assert torch.equal(pixels.masked_video.permute(3, 0, 1, 2)[None].float() / 255, t["edit.pixel_value_bg"])
