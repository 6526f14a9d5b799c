"""Audio-mode sampling-loop parity with upstream (fixtures: sampling_loop_audio/).

Upstream's recorded encoder outputs, reference latent and Whisper windows go through OUR
sampling.denoise (audio rows [zeros, windows], audio_strength as given, deepcache as upstream)
and our VAE; we compare every step's latents, the per-step guided predictions, the final latents
and the decoded video. Runs are discovered from the files present.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import reference_root
from _transformer_parity import build_from_fixture, decode_with_set_vae, mismatch
from test_parity_sampling_loop import _conditioning
from hunyuan_custom.pipelines.diffusion_models.deep_cache import upstream_deep_cache_mode
from hunyuan_custom.pipelines.sampling import DenoiseRequest, denoise
from hunyuan_custom.pipelines.scheduler import make_schedule

LOOP_ATOL = 1e-3  # the fixture README's tolerance for audio / editing loop latents (and per-step values)
FOLDER = "sampling_loop_audio"


def _runs() -> list[str]:
    return sorted(p.name for p in (reference_root() / FOLDER).glob("run_*.safetensors"))


@pytest.fixture(scope="module")
def loop(reference_dir):
    folder = reference_dir / FOLDER
    config = json.loads((folder / "config.json").read_text())
    weights = folder / config["transformer"]["weights"]
    model = build_from_fixture(weights.parent, weights.name)
    assert model.config.audio_condition, f"{weights} should be an audio-checkpoint transformer"
    # Clones: load_file's tensors are memory-mapped and unaligned (the README's alignment note).
    inputs = {k: v.clone() for k, v in load_file(str(folder / "inputs.safetensors")).items()}
    return folder, config, model, inputs


def test_parity_audio_rows_are_zeros_then_the_windows(loop):
    _, _, _, inputs = loop
    rows = inputs["transformer_in.audio_prompts"]
    assert torch.equal(rows[0], torch.zeros_like(rows[0])) and torch.equal(rows[1:], inputs["audio_prompts"])
    ref = inputs["transformer_in.ref_latents"]
    assert torch.equal(ref[0], ref[1]) and torch.equal(ref[1:], inputs["ref_latents"])


def test_parity_fixture_has_runs():
    assert _runs(), f"{reference_root() / FOLDER} has no run_*.safetensors"


@pytest.mark.parametrize("run_name", _runs())
def test_parity_audio_sampling_loop_run(loop, run_name):
    folder, config, model, inputs = loop
    expected = load_file(str(folder / run_name))
    steps = int(expected["timesteps"].shape[0])
    predict = config["predict_kwargs"]
    shift, guidance = float(predict["flow_shift"]), float(predict["guidance_scale"])
    sigmas, timesteps = make_schedule(steps, shift)
    assert torch.equal(sigmas, expected["sigmas"]) and torch.equal(timesteps, expected["timesteps"])
    cached = expected["is_cache_per_step"].bool().tolist()
    deep_cache = any(cached)
    if deep_cache:
        assert cached == [upstream_deep_cache_mode(i, steps) == "reuse" for i in range(steps)]

    request = DenoiseRequest(
        latents=inputs["initial_latents"], ref_latents=inputs["ref_latents"], text=_conditioning(config, inputs),
        steps=steps, flow_shift=shift, guidance_scale=guidance, deep_cache=deep_cache,
        audio_prompts=inputs["audio_prompts"],
        audio_strength=float(predict.get("audio_strength", inputs["audio_strength"].item())),
    )
    seen: list[torch.Tensor] = []
    outputs: list[torch.Tensor] = []
    handle = model.register_forward_hook(lambda _m, _a, out: outputs.append(
        (out.sample if hasattr(out, "sample") else out[0]).detach().clone()))
    try:
        with torch.no_grad():
            final = denoise(model, request, on_step=lambda i, n, x: seen.append(x.clone()))
    finally:
        handle.remove()

    problems = {
        "latents_per_step": mismatch(torch.stack(seen), expected["latents_per_step"], atol=LOOP_ATOL, rtol=0),
        "final_latents": mismatch(final, expected["final_latents"], atol=LOOP_ATOL, rtol=0),
    }
    per_step = torch.cat(outputs).reshape(steps, -1, *outputs[0].shape[1:])  # [steps, (uncond, cond), ...]
    if "transformer_out_per_step" in expected:
        problems["transformer_out_per_step"] = mismatch(per_step, expected["transformer_out_per_step"],
                                                        atol=LOOP_ATOL, rtol=0)
    if "noise_pred_guided_per_step" in expected:
        uncond, cond = per_step[:, 0:1], per_step[:, -1:]  # one row only when guidance is 1 (no CFG)
        guided = cond if per_step.shape[1] == 1 else uncond + guidance * (cond - uncond)
        problems["noise_pred_guided_per_step"] = mismatch(guided, expected["noise_pred_guided_per_step"],
                                                          atol=LOOP_ATOL, rtol=0)
    if "decoded_video" in expected:
        video = decode_with_set_vae(folder, config, final)
        problems["decoded_video"] = mismatch(video, expected["decoded_video"], atol=LOOP_ATOL, rtol=0)
    problems = {k: v for k, v in problems.items() if v}
    assert not problems, problems


def test_audio_changes_the_video_and_strength_zero_is_the_audio_free_residual(loop):
    """The audio reaches the result (a different clip gives other latents), and strength scales it."""
    _, config, model, inputs = loop
    base = dict(latents=inputs["initial_latents"], ref_latents=inputs["ref_latents"],
                text=_conditioning(config, inputs), steps=2, flow_shift=13.0, guidance_scale=7.5)
    with torch.no_grad():
        with_audio = denoise(model, DenoiseRequest(**base, audio_prompts=inputs["audio_prompts"], audio_strength=0.8))
        other = denoise(model, DenoiseRequest(**base, audio_prompts=inputs["audio_prompts"].flip(1), audio_strength=0.8))
        silent = denoise(model, DenoiseRequest(**base, audio_prompts=inputs["audio_prompts"], audio_strength=0.0))
        none = denoise(model, DenoiseRequest(**base))
    assert (with_audio - other).abs().max() > 1e-3
    torch.testing.assert_close(silent, none, rtol=0, atol=1e-6)
