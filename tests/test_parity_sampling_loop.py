"""Sampling-loop parity with upstream's HunyuanVideoCustomPipeline (fixtures: sampling_loop/).

From upstream's recorded encoder outputs we rebuild what the transformer receives (the CFG mask
rewrite included), run our loop from the recorded initial noise and compare every step's latents,
the final latents and the decoded video. Runs are discovered from the files present.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import reference_root
from _transformer_parity import build_from_fixture, decode_with_set_vae, mismatch, rope_grid
from hunyuan_custom.pipelines.diffusion_models.deep_cache import upstream_deep_cache_mode
from hunyuan_custom.pipelines.diffusion_models.rope import reference_rope_tables
from hunyuan_custom.pipelines.sampling import DenoiseRequest, denoise
from hunyuan_custom.pipelines.scheduler import make_schedule
from hunyuan_custom.pipelines.text_encoders.encodings import PromptEncoding, TextConditioning, cfg_conditioning

LOOP_ATOL = 1e-3  # the fixture README's tolerance for sampling-loop latents


@pytest.fixture(scope="module")
def loop(reference_dir):
    folder = reference_dir / "sampling_loop"
    config = json.loads((folder / "config.json").read_text())
    transformer_dir = (folder / config["transformer"]["config"]).parent
    model = build_from_fixture(transformer_dir, Path(config["transformer"]["weights"]).name)
    return folder, config, model, load_file(str(folder / "inputs.safetensors"))


def _runs(reference_dir):
    return sorted(p.name for p in (reference_dir / "sampling_loop").glob("run_*.safetensors"))


def _conditioning(config, inputs) -> TextConditioning:
    llava = config["text_encoders"]["llava"]
    image_extra = inputs["encoder.llava_pos.hidden_state"].shape[1] - (llava["max_length"] - llava["crop_start"])
    rows = {}
    for name in ("pos", "neg"):
        rows[name] = PromptEncoding(
            states=inputs[f"encoder.llava_{name}.hidden_state"], mask=inputs[f"encoder.llava_{name}.attention_mask"],
            pooled=inputs[f"encoder.clip_{name}.pooler_output"], image_extra=image_extra,
        )
    return cfg_conditioning(rows["pos"], rows["neg"])


def test_parity_cfg_inputs_match_what_upstream_fed_the_transformer(loop):
    folder, config, model, inputs = loop
    assert list(folder.glob("run_*.safetensors")), f"{folder} has no run_*.safetensors"
    text = _conditioning(config, inputs)
    assert torch.equal(text.mask, inputs["transformer_in.text_mask"])
    assert torch.equal(text.states, inputs["transformer_in.text_states"])
    assert torch.equal(text.pooled, inputs["transformer_in.text_states_2"])
    ref = inputs["transformer_in.ref_latents"]
    assert torch.equal(ref[0], ref[1]) and torch.equal(ref[1:], inputs["ref_latents"])  # same ref in both passes
    # The RoPE tables the loop builds for this latent size (reference rows first).
    cos, sin = reference_rope_tables(model.config.rope_axes_dim, *rope_grid(model, inputs["initial_latents"]), model.config.rope_theta)
    problems = {name: mismatch(ours, inputs[f"transformer_in.{name}"], atol=1e-5, rtol=1e-5)
                for name, ours in (("freqs_cos", cos), ("freqs_sin", sin))}
    assert not any(problems.values()), problems


@pytest.mark.parametrize("run_name", _runs(reference_root()))
def test_parity_sampling_loop_run(loop, run_name):
    folder, config, model, inputs = loop
    expected = load_file(str(folder / run_name))
    steps = int(expected["timesteps"].shape[0])
    shift = float(config["predict_kwargs"]["flow_shift"])
    sigmas, timesteps = make_schedule(steps, shift)
    assert torch.equal(sigmas, expected["sigmas"]) and torch.equal(timesteps, expected["timesteps"])

    cached = expected["is_cache_per_step"].bool().tolist()
    deep_cache = any(cached)
    if deep_cache:
        assert cached == [upstream_deep_cache_mode(i, steps) == "reuse" for i in range(steps)]

    seen: list[torch.Tensor] = []
    model_outputs: list[torch.Tensor] = []  # every transformer call, in call order
    request = DenoiseRequest(
        latents=inputs["initial_latents"], ref_latents=inputs["ref_latents"], text=_conditioning(config, inputs),
        steps=steps, flow_shift=shift, guidance_scale=float(config["predict_kwargs"]["guidance_scale"]),
        deep_cache=deep_cache,
    )

    def record(_module, _args, out):
        model_outputs.append((out.sample if hasattr(out, "sample") else out[0]).detach().clone())

    handle = model.register_forward_hook(record)
    try:
        with torch.no_grad():
            final = denoise(model, request, on_step=lambda i, n, x: seen.append(x.clone()))
    finally:
        handle.remove()
    problems = {
        "latents_per_step": mismatch(torch.stack(seen), expected["latents_per_step"], atol=LOOP_ATOL, rtol=0),
        "final_latents": mismatch(final, expected["final_latents"], atol=LOOP_ATOL, rtol=0),
    }
    # Per-step raw [uncond, cond] outputs and the CFG-combined prediction, where the run records them.
    per_step = torch.cat(model_outputs).reshape(steps, -1, *model_outputs[0].shape[1:])
    if "transformer_out_per_step" in expected:
        problems["transformer_out_per_step"] = mismatch(per_step, expected["transformer_out_per_step"], atol=LOOP_ATOL, rtol=0)
    if "noise_pred_guided_per_step" in expected:
        uncond, cond = per_step[:, 0:1], per_step[:, 1:2]
        guided = uncond + request.guidance_scale * (cond - uncond)
        problems["noise_pred_guided_per_step"] = mismatch(guided, expected["noise_pred_guided_per_step"], atol=LOOP_ATOL, rtol=0)
    if "decoded_video" in expected:
        video = decode_with_set_vae(folder, config, final)
        problems["decoded_video"] = mismatch(video, expected["decoded_video"], atol=LOOP_ATOL, rtol=0)
    problems = {k: v for k, v in problems.items() if v}
    assert not problems, problems


def test_batched_and_split_cfg_give_the_same_latents(loop):
    _, config, model, inputs = loop
    base = dict(latents=inputs["initial_latents"], ref_latents=inputs["ref_latents"], text=_conditioning(config, inputs),
                steps=3, flow_shift=13.0, guidance_scale=7.5)
    with torch.no_grad():
        split = denoise(model, DenoiseRequest(**base))
        batched = denoise(model, DenoiseRequest(**base, cfg_batched=True))
    assert (split - batched).abs().max() < 1e-4


def test_guidance_one_runs_only_the_conditional_pass(loop):
    _, config, model, inputs = loop
    calls = []
    handle = model.register_forward_pre_hook(lambda m, args: calls.append(args[0].shape[0]))
    try:
        with torch.no_grad():
            denoise(model, DenoiseRequest(latents=inputs["initial_latents"], ref_latents=inputs["ref_latents"],
                                          text=_conditioning(config, inputs), steps=2, flow_shift=13.0, guidance_scale=1.0))
    finally:
        handle.remove()
    assert calls == [1, 1]


def test_cancel_stops_between_steps(loop):
    _, config, model, inputs = loop
    done = []

    def cancel():
        if len(done) == 2:
            raise KeyboardInterrupt("cancelled")

    with pytest.raises(KeyboardInterrupt), torch.no_grad():
        denoise(model, DenoiseRequest(latents=inputs["initial_latents"], ref_latents=inputs["ref_latents"],
                                      text=_conditioning(config, inputs), steps=5, flow_shift=13.0, guidance_scale=7.5),
                on_step=lambda i, n, x: done.append(i), check_cancel=cancel)
    assert done == [1, 2]
