"""The local sampler's step preview: the middle frame of the video being denoised, in colour.

What is shown is the sampler's current estimate of the finished latents, not the noisy latents
themselves: with upstream's flow shift (13) the noise dominates the latents until the last steps.
The loop takes Euler steps x' = x + (sigma' - sigma) * v, so two consecutive latents give the
velocity v, and the estimate is x' - sigma' * v (what the latents would be at sigma 0). Only the
middle frame is kept between steps (16 x h x w numbers), and the colours come from
pipelines/vae/preview.py's linear map: no VAE, no extra model call.
"""

from __future__ import annotations

from typing import Any

PREVIEW_SIZE = 512


class StepPreview:
    """Call with (steps done, latents after that step); returns ComfyUI's ("JPEG", image, size)."""

    def __init__(self, steps: int, flow_shift: float):
        from ..pipelines.scheduler import make_schedule

        self.sigmas = make_schedule(steps, flow_shift)[0].tolist()  # sigmas[i] before step i + 1
        self.previous = None  # the middle frame after the previous step

    def __call__(self, done: int, latents: Any) -> tuple:
        frame = latents[0, :, latents.shape[2] // 2].detach().float().cpu()
        estimate = frame
        if self.previous is not None and 1 <= done < len(self.sigmas):
            sigma, sigma_before = self.sigmas[done], self.sigmas[done - 1]
            velocity = (frame - self.previous) / (sigma - sigma_before)
            estimate = frame - sigma * velocity
        self.previous = frame
        return ("JPEG", _image(estimate), PREVIEW_SIZE)


def _image(frame: Any) -> Any:
    from PIL import Image

    from ..pipelines.vae.preview import latent_frame_rgb

    rgb = latent_frame_rgb(frame).numpy()
    # Latent pixels are 8x8 video pixels; never build more than the preview shows.
    height, width = rgb.shape[:2]
    scale = min(8.0, PREVIEW_SIZE / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return Image.fromarray(rgb).resize(size, Image.BILINEAR)
