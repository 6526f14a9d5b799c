"""Window schedules: how a video longer than the model's 129 frames is sampled, window by window.

The transformer was trained on 129 frames (33 latents) and its RoPE table is built for the window it
sees, so a longer latent is cut into windows along time; at every step each window gets one forward
(per CFG pass) and the velocities are put back where the window's latents came from.

`avatar_windows` is HunyuanVideo-Avatar's long-audio schedule (the same backbone, Tencent's own
method; facts from its `pipeline_hunyuan_video_audio.py`, not its code):
  * windows of 33 latents, NO overlap, tiling the latent CYCLICALLY (latent index `j % N`);
  * at step i the windows start at `k * 33 - shift_i`, k = 0 .. ceil(N / 33) - 1, with
    shift_0 = 0 and shift_{i+1} = (shift_i + 10) % 33, i.e. shift_i = 10 * i % 33: the seams move
    every step, so none stays in one place;
  * a latent that two windows cover (only the wrap-around duplicates) gets the MEAN of their
    velocities. Avatar steps each window and averages the stepped latents; for an Euler step
    x + dt * v that is the same as averaging the velocities, which is what we do (in float32);
  * N <= 33 latents (129 frames or fewer) is one window at position 0 that never moves: exactly
    the single-pass run.
Difference, on purpose: Avatar pads the latent to (A // 128 + 1) * 32 + 1 latents and trims the
output; we sample exactly the video's latents (never more windows than Avatar, no frames thrown
away, and the editing mode has no source for padding latents).

Each condition declares how its per-frame inputs are cut for a window (`WindowCut`):
`cut_latents` for latent-shaped inputs, `cut_frames` for per-video-frame inputs such as the audio
windows (a window starting at latent s takes frames [4s, 4s + 4 * 33 - 3) modulo 4 * N, the
frames past the video's end being zeros, as Avatar slices its zero-padded audio).

Another schedule can be added here (e.g. ComfyUI's overlapping uniform windows with pyramid
weights); the sampler only needs `Window.latents` and a weight per window latent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

WINDOW_LATENTS = 33  # 129 frames: what the model was trained on
SHIFT_PER_STEP = 10  # Avatar's shift_offset
FRAMES_PER_LATENT = 4  # the 884 VAE: latent j >= 1 stands for frames 4j-3 .. 4j


@dataclass(frozen=True)
class Window:
    """One window at one step: `start` (may be negative: it wraps) and the latent indices it covers,
    in window order, modulo the run's `total` latents."""

    index: int  # k: its place among the step's windows
    count: int  # how many windows the step has
    start: int
    size: int
    total: int

    @property
    def latents(self) -> list[int]:
        return [(self.start + j) % self.total for j in range(self.size)]

    @property
    def is_whole(self) -> bool:
        """The window is the whole run in order (a one-window run): inputs pass through uncut."""
        return self.start % self.total == 0 and self.size == self.total

    @property
    def first_latent(self) -> int:
        return self.start % self.total

    def frames(self, total_frames: int | None = None) -> list[int]:
        """The video frames the window's forward stands for: [4s, 4s + 4 * size - 3) modulo 4 * total
        (Avatar's audio slice). Indices >= `total_frames` (the padding) are the caller's zeros."""
        period = FRAMES_PER_LATENT * self.total
        first = FRAMES_PER_LATENT * self.start
        return [(first + f) % period for f in range(FRAMES_PER_LATENT * self.size - 3)]


def avatar_shift(step: int, window: int = WINDOW_LATENTS, per_step: int = SHIFT_PER_STEP) -> int:
    """shift at step `step`: 0, 10, 20, 30, 7, 17, ... (shift += 10 mod 33 after every step)."""
    return (per_step * step) % window


def window_count(total_latents: int, window: int = WINDOW_LATENTS) -> int:
    """Forwards per step and CFG pass: ceil(N / 33) (one for N <= 33)."""
    return max(1, math.ceil(total_latents / window))


def avatar_windows(total_latents: int, step: int, window: int = WINDOW_LATENTS,
                   per_step: int = SHIFT_PER_STEP) -> list[Window]:
    """The windows of step `step` for a latent of `total_latents` frames (see the module docstring)."""
    if total_latents < 1:
        raise ValueError(f"a run needs at least one latent, got {total_latents}")
    if total_latents <= window:
        return [Window(0, 1, 0, total_latents, total_latents)]
    shift = avatar_shift(step, window, per_step)
    count = window_count(total_latents, window)
    return [Window(k, count, k * window - shift, window, total_latents) for k in range(count)]


def one_window(latent_shape: tuple[int, ...], window: int = WINDOW_LATENTS) -> tuple[int, ...]:
    """The shape of one window's latents [B, C, min(N, 33), h, w]: what a forward's activations (and
    so the offload decision and the VRAM estimate) scale with, whatever the video's length."""
    return (*latent_shape[:2], min(int(latent_shape[2]), window), *latent_shape[3:])


# -- cutting a condition's inputs for a window -----------------------------------------------------
WindowCut = Callable[[torch.Tensor, Window], torch.Tensor]


def cut_latents(value: torch.Tensor, window: Window) -> torch.Tensor:
    """A latent-shaped input [B, C, N, h, w]: the window's latents (time axis 2)."""
    if window.is_whole:
        return value
    index = torch.tensor(window.latents, device=value.device)
    return value.index_select(2, index)


def cut_frames(value: torch.Tensor, window: Window) -> torch.Tensor:
    """A per-video-frame input [B, F, ...] (F = 4 * (N - 1) + 1): the window's frames, zeros for the
    ones past the video's end (Avatar's zero-padded audio)."""
    if window.is_whole:
        return value
    frames = value.shape[1]
    wanted = torch.tensor(window.frames(), device=value.device)
    padded = value
    if int(wanted.max()) >= frames:
        pad = int(wanted.max()) + 1 - frames
        padded = torch.cat([value, value.new_zeros(value.shape[0], pad, *value.shape[2:])], dim=1)
    return padded.index_select(1, wanted)


@dataclass(frozen=True)
class HeadedLatentCut:
    """`cut_latents`, with the window's FIRST latent taken from `heads` [B, C, N, h, w]: head s is
    latent s as a window starting there sees it (for the editing mode: frame 4s encoded on its
    own, an image latent, as the model saw at every window start in training)."""

    heads: torch.Tensor

    def __call__(self, value: torch.Tensor, window: Window) -> torch.Tensor:
        out = cut_latents(value, window)
        if window.is_whole:
            return out
        out = out.clone()
        out[:, :, 0] = self.heads[:, :, window.first_latent].to(out.dtype)
        return out
