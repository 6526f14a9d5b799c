"""Scheduler parity with upstream's FlowMatchDiscreteScheduler (fixtures: reference_dir/scheduler)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from hunyuan_custom.pipelines import scheduler as sched


def _load(reference_dir):
    folder = reference_dir / "scheduler"
    config = json.loads((folder / "config.json").read_text())
    return config, load_file(str(folder / "scheduler.safetensors"))


def test_parity_every_schedule_is_bit_identical(reference_dir):
    config, ref = _load(reference_dir)
    assert config["schedules"], "scheduler/config.json lists no schedules"
    for entry in config["schedules"]:
        sigmas, timesteps = sched.make_schedule(int(entry["steps"]), float(entry["shift"]))
        expected_sigmas, expected_timesteps = ref[entry["sigmas"]], ref[entry["timesteps"]]
        label = f"steps {entry['steps']} shift {entry['shift']}"
        assert sigmas.dtype == timesteps.dtype == torch.float32
        assert sigmas.shape == expected_sigmas.shape == (entry["n_sigmas"],), label
        assert timesteps.shape == expected_timesteps.shape == (entry["n_timesteps"],), label
        assert torch.equal(sigmas, expected_sigmas), label
        assert torch.equal(timesteps, expected_timesteps), label


def test_parity_euler_trace(reference_dir):
    config, ref = _load(reference_dir)
    trace = config["trace"]
    flow = sched.FlowMatchEuler(int(trace["schedule_steps"]), float(trace["shift"]))
    sample = ref["trace.sample_0"]
    for i in range(int(trace["n_steps_traced"])):
        assert torch.equal(flow.timesteps[i : i + 1], ref[f"trace.timestep_{i}"].reshape(1))
        sample = flow.step(i, ref[f"trace.model_output_{i}"], sample)
        expected = ref[f"trace.sample_{i + 1}"]
        assert sample.shape == expected.shape
        torch.testing.assert_close(sample, expected, atol=1e-6, rtol=0, msg=f"trace step {i}")


def test_diffusers_step_agrees_when_fed_float32():
    """Our index step equals diffusers' own step() when the model output is float32."""
    scheduler = sched.make_diffusers_scheduler(8, 7.0)
    flow = sched.FlowMatchEuler(8, 7.0)
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 4, 2, 3, 3, generator=generator)
    ours = sample.clone()
    for i, t in enumerate(scheduler.timesteps):
        out = torch.randn(sample.shape, generator=generator)
        sample = scheduler.step(out, t, sample, return_dict=False)[0]
        ours = flow.step(i, out, ours)
        assert torch.equal(sample, ours)


def test_step_keeps_float32_latents_with_bf16_model_output():
    flow = sched.FlowMatchEuler(4, 7.0)
    sample = torch.randn(1, 4, 1, 2, 2)
    out = torch.randn(1, 4, 1, 2, 2).to(torch.bfloat16)
    result = flow.step(0, out, sample)
    assert result.dtype == torch.float32
    assert torch.equal(result, sample + out.float() * (flow.sigmas[1] - flow.sigmas[0]))


def test_last_step_reaches_sigma_zero_and_bad_arguments_are_refused():
    flow = sched.FlowMatchEuler(3, 5.0)
    assert flow.sigmas[0] == 1 and flow.sigmas[-1] == 0 and len(flow) == 3
    with pytest.raises(IndexError):
        flow.step(3, torch.zeros(1), torch.zeros(1))
    for steps, shift in [(0, 5.0), (2.5, 5.0), (4, 0.0), (4, -1.0)]:
        with pytest.raises(ValueError):
            sched.make_schedule(steps, shift)
