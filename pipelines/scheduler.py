"""Flow-matching schedule with shift, exactly as upstream HunyuanCustom samples.

Upstream (`FlowMatchDiscreteScheduler`, reverse=True, solver euler):
    sigmas    = shift*s / (1 + (shift-1)*s)  for s = torch.linspace(1, 0, steps+1)  (float32)
    timesteps = sigmas[:-1] * 1000           (the value fed to the transformer)
    Euler:      prev = sample.float() + model_output.float() * (sigmas[i+1] - sigmas[i])

The schedule comes from diffusers' `FlowMatchEulerDiscreteScheduler` given the unshifted sigmas
explicitly: its float32 shift and `sigmas*1000` are bit-identical to upstream (checked by
tests/test_parity_scheduler.py). The Euler step is our one line instead of diffusers' `step()`,
because `step()` casts the result back to the model output's dtype: with a bf16 transformer the
latents would be rounded to bf16 every step, while upstream keeps them in float32. Stepping by
index also avoids diffusers' timestep lookup (which picks the second match on duplicates).
"""

from __future__ import annotations

import torch

NUM_TRAIN_TIMESTEPS = 1000


def _check(steps: int, shift: float) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a whole number >= 1, got {steps!r}")
    if not shift > 0:
        raise ValueError(f"flow shift must be > 0, got {shift!r}")


def make_diffusers_scheduler(steps: int, shift: float, device: torch.device | str | None = None):
    """A diffusers FlowMatchEulerDiscreteScheduler set to upstream's schedule for (steps, shift)."""
    _check(steps, shift)
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, shift=float(shift))
    # Unshifted sigmas without the final 0: diffusers shifts them and appends the 0 itself.
    unshifted = torch.linspace(1, 0, steps + 1, dtype=torch.float32)[:-1]
    scheduler.set_timesteps(sigmas=unshifted.numpy(), device=device)
    return scheduler


def make_schedule(steps: int, shift: float, device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(sigmas [steps+1], timesteps [steps]), float32, identical to upstream's."""
    scheduler = make_diffusers_scheduler(steps, shift, device=device)
    sigmas = scheduler.sigmas.to(dtype=torch.float32, device=device)
    return sigmas, scheduler.timesteps.to(dtype=torch.float32, device=device)


def euler_step(sample: torch.Tensor, model_output: torch.Tensor, sigma: torch.Tensor | float,
               sigma_next: torch.Tensor | float) -> torch.Tensor:
    """One upstream Euler step; the result is float32 whatever the inputs' dtypes."""
    return sample.float() + model_output.float() * (sigma_next - sigma)


class FlowMatchEuler:
    """The schedule plus an index-based Euler step, for a sampling loop.

        flow = FlowMatchEuler(steps, shift, device)
        for i, t in enumerate(flow.timesteps):
            latents = flow.step(i, model(latents, t.expand(batch)), latents)
    """

    def __init__(self, steps: int, shift: float, device: torch.device | str | None = None) -> None:
        self.steps = steps
        self.shift = float(shift)
        self.sigmas, self.timesteps = make_schedule(steps, shift, device=device)

    def __len__(self) -> int:
        return self.steps

    def step(self, index: int, model_output: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        if not 0 <= index < self.steps:
            raise IndexError(f"step index {index} outside 0..{self.steps - 1}")
        sigmas = self.sigmas.to(model_output.device)
        return euler_step(sample, model_output, sigmas[index], sigmas[index + 1])
