"""Editing-mode sampling-loop parity with upstream (fixtures: sampling_loop_editing/).

The same recipe as sampling_loop/ through our `sampling.denoise`, with `bg_latents`: upstream's
recorded text conditioning and initial noise, the editing transformer, the same bg_latents in both
CFG rows. Compared: latents per step, final latents, raw and guided predictions per step, and the
decoded video. Runs are discovered from the files present.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import reference_root
from _transformer_parity import build_from_fixture, decode_with_set_vae, mismatch
from test_parity_sampling_loop import LOOP_ATOL, _conditioning
from hunyuan_custom.pipelines.sampling import DenoiseRequest, denoise
from hunyuan_custom.pipelines.scheduler import make_schedule

FOLDER = "sampling_loop_editing"


def _runs(root) -> list[str]:
    return sorted(p.name for p in (root / FOLDER).glob("run_*.safetensors"))


@pytest.fixture(scope="module")
def loop(reference_dir):
    folder = reference_dir / FOLDER
    config = json.loads((folder / "config.json").read_text())
    transformer_dir = (folder / config["transformer"]["config"]).parent
    model = build_from_fixture(transformer_dir, Path(config["transformer"]["weights"]).name)
    assert model.config.video_condition, "the editing loop needs the transformer with bg_in / bg_proj"
    inputs = {k: v.clone() for k, v in load_file(str(folder / "inputs.safetensors")).items()}
    return folder, config, model, inputs


def test_parity_editing_loop_feeds_the_same_bg_latents_to_both_rows(loop):
    folder, _config, _model, inputs = loop
    assert _runs(folder.parent), f"{folder} has no run_*.safetensors"
    rows = inputs["transformer_in.bg_latents"]
    assert rows.shape[0] == 2 and all(torch.equal(row[None], inputs["bg_latents"]) for row in rows)


@pytest.mark.parametrize("run_name", _runs(reference_root()))
def test_parity_editing_sampling_loop_run(loop, run_name):
    folder, config, model, inputs = loop
    expected = load_file(str(folder / run_name))
    steps = int(expected["timesteps"].shape[0])
    shift = float(config["predict_kwargs"]["flow_shift"])
    sigmas, timesteps = make_schedule(steps, shift)
    assert torch.equal(sigmas, expected["sigmas"]) and torch.equal(timesteps, expected["timesteps"])
    request = DenoiseRequest(
        latents=inputs["initial_latents"], ref_latents=inputs["ref_latents"], text=_conditioning(config, inputs),
        steps=steps, flow_shift=shift, guidance_scale=float(config["predict_kwargs"]["guidance_scale"]),
        deep_cache=bool(expected["is_cache_per_step"].any()), bg_latents=inputs["bg_latents"],
    )
    seen: list[torch.Tensor] = []
    outputs: list[torch.Tensor] = []
    handle = model.register_forward_hook(lambda _m, _a, out: outputs.append(out[0].detach().clone()))
    try:
        with torch.no_grad():
            final = denoise(model, request, on_step=lambda i, n, x: seen.append(x.clone()))
    finally:
        handle.remove()
    per_step = torch.cat(outputs).reshape(steps, -1, *outputs[0].shape[1:])
    uncond, cond = per_step[:, 0:1], per_step[:, 1:2]
    problems = {
        "latents_per_step": mismatch(torch.stack(seen), expected["latents_per_step"], atol=LOOP_ATOL, rtol=0),
        "final_latents": mismatch(final, expected["final_latents"], atol=LOOP_ATOL, rtol=0),
        "transformer_out_per_step": mismatch(per_step, expected["transformer_out_per_step"], atol=LOOP_ATOL, rtol=0),
        "noise_pred_guided_per_step": mismatch(uncond + request.guidance_scale * (cond - uncond),
                                               expected["noise_pred_guided_per_step"], atol=LOOP_ATOL, rtol=0),
    }
    video = decode_with_set_vae(folder, config, final)
    problems["decoded_video"] = mismatch(video, expected["decoded_video"], atol=LOOP_ATOL, rtol=0)
    problems = {k: v for k, v in problems.items() if v}
    assert not problems, problems


def test_bg_latents_change_the_editing_prediction(loop):
    """bg_in / bg_proj are live: other bg_latents give another first step (guards against the
    upstream low-VRAM path's bug of dropping them)."""
    _, config, model, inputs = loop
    base = dict(latents=inputs["initial_latents"], ref_latents=inputs["ref_latents"], text=_conditioning(config, inputs),
                steps=1, flow_shift=5.0, guidance_scale=7.5)
    with torch.no_grad():
        with_bg = denoise(model, DenoiseRequest(**base, bg_latents=inputs["bg_latents"]))
        other = denoise(model, DenoiseRequest(**base, bg_latents=-inputs["bg_latents"]))
    assert (with_bg - other).abs().max() > 1e-3
