"""The local sampler's step preview: HunyuanVideo's latent-to-RGB map (ComfyUI's numbers) applied
to the sampler's estimate of the finished latents, not to the noise."""

from __future__ import annotations

import numpy as np
import torch

from hunyuan_custom.nodes.preview import PREVIEW_SIZE, StepPreview
from hunyuan_custom.pipelines.scheduler import make_schedule
from hunyuan_custom.pipelines.vae.preview import LATENT_RGB_BIAS, LATENT_RGB_FACTORS, latent_frame_rgb

RED = torch.tensor([0.6, -0.6, -0.6])  # in the map's -1..1


def latent_pixel_for(rgb: torch.Tensor) -> torch.Tensor:
    """The smallest latent vector the map sends to `rgb` (the 16x3 map has rank 3)."""
    factors, bias = torch.tensor(LATENT_RGB_FACTORS), torch.tensor(LATENT_RGB_BIAS)
    return factors @ torch.linalg.solve(factors.T @ factors, rgb - bias)


def test_the_map_is_comfyuis_linear_fit():
    zeros = latent_frame_rgb(torch.zeros(16, 2, 3))
    assert zeros.shape == (2, 3, 3) and zeros.dtype == torch.uint8
    assert zeros[0, 0].tolist() == [round((b + 1) * 127.5) for b in LATENT_RGB_BIAS]
    one_hot = torch.zeros(16, 1, 1)
    one_hot[12] = 1.0  # the strongest channel: dark in all three colours
    expected = [round((f + b + 1) * 127.5) for f, b in zip(LATENT_RGB_FACTORS[12], LATENT_RGB_BIAS)]
    assert latent_frame_rgb(one_hot)[0, 0].tolist() == expected


def test_a_latent_fit_to_red_previews_red():
    frame = latent_pixel_for(RED).view(16, 1, 1).expand(16, 4, 5)
    pixels = latent_frame_rgb(frame)
    assert (pixels == torch.tensor([204, 51, 51], dtype=torch.uint8)).all()


def test_the_preview_shows_the_estimate_of_the_finished_video_not_the_noise():
    steps, shift = 30, 13.0
    sigmas = make_schedule(steps, shift)[0]
    h, w, frames = 6, 8, 3
    clean = latent_pixel_for(RED).view(1, 16, 1, 1, 1).expand(1, 16, frames, h, w)
    noise = torch.randn(1, 16, frames, h, w, generator=torch.Generator().manual_seed(0))
    velocity = noise - clean  # a flow-matching model that is exactly right
    preview = StepPreview(steps, shift)
    latents = noise.clone()
    for i in range(3):
        latents = latents + (sigmas[i + 1] - sigmas[i]) * velocity  # the sampler's Euler step
        kind, image, size = preview(i + 1, latents)
    assert kind == "JPEG" and size == PREVIEW_SIZE and image.size == (8 * w, 8 * h)
    shown = np.asarray(image).reshape(-1, 3).mean(axis=0)
    assert abs(shown - [204, 51, 51]).max() < 3, shown  # red, after 3 of 30 steps
    noisy = latent_frame_rgb(latents[0, :, frames // 2]).float().reshape(-1, 3)
    assert noisy.std(dim=0).min() > 10  # what the latents themselves still look like: noise


def test_the_sampler_node_sends_these_previews(monkeypatch):
    import sys
    import types

    from hunyuan_custom.nodes.sampler import HunyuanCustomSampler
    from hunyuan_custom.pipelines.conditioning.prompt_spec import PromptSpec
    from hunyuan_custom.pipelines.generate import GenerationResult

    shown = []

    class Bar:
        def __init__(self, total):
            pass

        def update_absolute(self, value, total, preview=None):
            shown.append(preview)

    utils = types.ModuleType("comfy.utils")
    utils.ProgressBar = Bar
    monkeypatch.setitem(sys.modules, "comfy", types.ModuleType("comfy"))
    monkeypatch.setitem(sys.modules, "comfy.utils", utils)
    red = latent_pixel_for(RED).view(1, 16, 1, 1, 1).expand(1, 16, 3, 6, 8)

    class Model:
        def generate(self, job, status, progress, check_cancel):
            for i in range(job.steps):
                progress("sampling", i + 1, job.steps, red)
            return GenerationResult(frames=torch.zeros(9, 48, 64, 3), fps=25.0, seed=job.seed)

    spec = PromptSpec.create("a red block", "", "block", torch.ones(1, 32, 32, 3))
    HunyuanCustomSampler().sample(Model(), spec, size="64*48", guidance_scale=7.5, flow_shift=13.0, seed=1,
                                  num_frames=9, steps=2)
    assert len(shown) == 2 and all(p[0] == "JPEG" for p in shown)
    assert np.asarray(shown[-1][1]).reshape(-1, 3).mean(axis=0).round().tolist() == [204, 51, 51]
