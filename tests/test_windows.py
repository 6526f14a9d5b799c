"""Long videos: Avatar's window schedule, the cuts of each condition's inputs, and the sampler's window
loop seen through a spy transformer (which inputs each window's forward gets, every latent updated,
Cancel and progress between windows, the cache refusal). One window = today's numbers is what the
parity tests (tests/test_parity_sampling_loop*.py) check, unchanged."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hunyuan_custom.pipelines.diffusion_models.step_cache import CacheSettings
from hunyuan_custom.pipelines.sampling import DenoiseRequest, denoise, windowed_cache_refusal
from hunyuan_custom.pipelines.text_encoders.encodings import TextConditioning
from hunyuan_custom.pipelines.windows import (HeadedLatentCut, Window, avatar_shift, avatar_windows, cut_frames,
                                              cut_latents, window_count)


# ------------------------------------------------------------------ the schedule against Avatar's formula
def _avatar_formula(total: int, step: int) -> list[list[int]]:
    """HunyuanVideo-Avatar's loop, written from its description: shift starts at 0 and grows by 10
    mod 33 after each step; windows start at range(0, N, 33) minus the shift; indices mod N."""
    shift = 0
    for _ in range(step):
        shift = (shift + 10) % 33
    return [[(s - shift + j) % total for j in range(33)] for s in range(0, total, 33)]


@pytest.mark.parametrize("total", [34, 65, 66, 76, 97, 100, 376])
def test_windows_and_shifts_match_avatars_formula(total):
    for step in range(40):
        windows = avatar_windows(total, step)
        assert [w.latents for w in windows] == _avatar_formula(total, step)
        assert len(windows) == math.ceil(total / 33) == window_count(total)
        covered = {i for w in windows for i in w.latents}
        assert covered == set(range(total))  # every latent in some window at every step
    assert [avatar_shift(i) for i in range(6)] == [0, 10, 20, 30, 7, 17]


@pytest.mark.parametrize("total", [1, 3, 33])
def test_up_to_33_latents_is_one_still_window(total):
    for step in (0, 1, 7):
        (window,) = avatar_windows(total, step)
        assert window.is_whole and window.latents == list(range(total))


def test_frames_of_a_window_are_avatars_audio_slice():
    window = Window(index=1, count=3, start=33 - 20, size=33, total=76)
    period = 4 * 76
    assert window.frames() == [(4 * 13 + f) % period for f in range(129)]
    wrapped = Window(index=2, count=3, start=66 - 20, size=33, total=76)  # 46..78 -> wraps at 76
    assert wrapped.frames()[0] == 184 and wrapped.frames()[-1] == (184 + 128) % period


def test_cut_frames_takes_the_windows_frames_with_zeros_past_the_end():
    frames = 4 * (40 - 1) + 1  # 157 frames, 40 latents
    audio = torch.arange(1, frames + 1, dtype=torch.float32).view(1, frames, 1, 1, 1).expand(1, frames, 2, 1, 3)
    window = avatar_windows(40, 3)[1]  # shift 30: starts at 3, covers 3..35
    cut = cut_frames(audio, window)
    assert cut.shape == (1, 129, 2, 1, 3)
    assert cut[0, :, 0, 0, 0].tolist() == [float(f + 1) for f in range(12, 12 + 129)]
    tail = avatar_windows(40, 3)[0]  # starts at -30 -> latents 10..39 then 0..2: frames 40..159 then 0..8
    values = cut_frames(audio, tail)[0, :, 0, 0, 0].tolist()
    expected = [float(f + 1) if f < frames else 0.0 for f in ((40 + i) % 160 for i in range(129))]
    assert values == expected  # frames 157..159 are the zero padding (4 * N frames)
    whole = avatar_windows(9, 5)[0]
    assert cut_frames(audio[:, :33], whole) is not None and cut_latents(torch.zeros(1, 2, 9, 1, 1), whole).shape[2] == 9


def test_headed_cut_puts_the_windows_own_head_first():
    latents = torch.arange(40, dtype=torch.float32).view(1, 1, 40, 1, 1)
    heads = -latents
    window = avatar_windows(40, 1)[1]  # starts at 23
    cut = HeadedLatentCut(heads)(latents, window)
    assert cut[0, 0, 0, 0, 0] == -23 and cut[0, 0, 1:, 0, 0].tolist() == [float((23 + j) % 40) for j in range(1, 33)]
    whole = avatar_windows(9, 0)[0]
    assert torch.equal(HeadedLatentCut(heads[:, :, :9])(latents[:, :, :9], whole), latents[:, :, :9])


# ------------------------------------------------------------------ the sampler, through a spy transformer
class SpyTransformer(nn.Module):
    """Records each forward's inputs; the velocity is the input latents' codes (so a latent's update
    tells which windows moved it)."""

    def __init__(self):
        super().__init__()
        self.x_embedder = nn.Module()
        self.x_embedder.proj = nn.Conv3d(16, 4, 1)
        self.calls: list[dict] = []

    def forward(self, hidden, t, states, mask, pooled, *, ref_latents, bg_latents, audio_prompts, audio_strength,
                deep_cache, return_dict):
        self.calls.append({"hidden": hidden.clone(), "bg": None if bg_latents is None else bg_latents.clone(),
                           "audio": None if audio_prompts is None else audio_prompts.clone(),
                           "ref": ref_latents.clone()})
        return (torch.ones_like(hidden),)


def _request(latents: int, *, steps: int = 3, guidance: float = 1.0, **over) -> DenoiseRequest:
    rows = 2 if guidance > 1 else 1
    text = TextConditioning(torch.zeros(rows, 4, 8), torch.ones(rows, 4, dtype=torch.int64), torch.zeros(rows, 8))
    code = torch.arange(latents, dtype=torch.float32).view(1, 1, latents, 1, 1).expand(1, 16, latents, 2, 2)
    frames = 4 * (latents - 1) + 1
    args = dict(latents=code.clone(), ref_latents=torch.full((1, 16, 1, 2, 2), -7.0), text=text, steps=steps,
                flow_shift=1.0, guidance_scale=guidance,
                bg_latents=1000 + torch.arange(latents, dtype=torch.float32).view(1, 1, latents, 1, 1).expand(1, 32, latents, 2, 2),
                audio_prompts=torch.arange(1, frames + 1, dtype=torch.float32).view(1, frames, 1, 1, 1).expand(1, frames, 10, 5, 4),
                window_cuts={"bg_latents": HeadedLatentCut(-torch.arange(latents, dtype=torch.float32)
                                                           .view(1, 1, latents, 1, 1).expand(1, 32, latents, 2, 2)),
                             "audio_prompts": cut_frames})
    args.update(over)
    return DenoiseRequest(**args)


def test_each_windows_forward_gets_its_own_latents_bg_latents_and_audio_frames():
    model = SpyTransformer()
    total, steps = 76, 3
    with torch.no_grad():
        denoise(model, _request(total, steps=steps))
    assert len(model.calls) == steps * 3
    for i in range(steps):
        for k, window in enumerate(avatar_windows(total, i)):
            call = model.calls[i * 3 + k]
            starts = window.first_latent
            assert call["hidden"].shape[2] == 33
            bg = call["bg"][0, 0, :, 0, 0]
            assert bg[0] == -starts  # the window's own head first
            assert bg[1:].tolist() == [1000.0 + j for j in window.latents[1:]]
            audio = call["audio"][0, :, 0, 0, 0].tolist()
            frames = 4 * (total - 1) + 1
            assert audio == [float(f + 1) if f < frames else 0.0 for f in window.frames()]
            assert torch.equal(call["ref"], torch.full((1, 16, 1, 2, 2), -7.0))  # the reference in every window
        if i == 0:  # step 0's latents are the initial codes: the window saw exactly its latents
            for k, window in enumerate(avatar_windows(total, 0)):
                assert model.calls[k]["hidden"][0, 0, :, 0, 0].tolist() == [float(j) for j in window.latents]


def test_uncond_pass_of_every_window_gets_zero_audio():
    model = SpyTransformer()
    with torch.no_grad():
        denoise(model, _request(40, steps=1, guidance=5.0))
    assert len(model.calls) == 4  # 2 windows x [uncond, cond]
    assert not model.calls[0]["audio"].any() and model.calls[1]["audio"].any()
    assert torch.equal(model.calls[0]["bg"], model.calls[1]["bg"])  # bg in both rows, as upstream


def test_every_latent_is_updated_every_step_and_duplicates_are_averaged():
    model = SpyTransformer()  # velocity 1 everywhere: each latent moves by exactly dt per step
    seen = []
    request = _request(40, steps=4)
    with torch.no_grad():
        denoise(model, request, on_step=lambda i, n, x: seen.append(x.clone()))
    from hunyuan_custom.pipelines.scheduler import FlowMatchEuler

    sigmas = FlowMatchEuler(4, 1.0, device="cpu").sigmas
    before = request.latents
    for i, after in enumerate(seen):
        step = after - before
        expected = (sigmas[i + 1] - sigmas[i]).item()
        assert torch.allclose(step, torch.full_like(step, expected), atol=1e-6)  # all 40, duplicates = mean of 1s
        before = after


def test_cancel_is_checked_between_windows_and_progress_counts_them():
    model = SpyTransformer()
    checks, windows_done = [], []

    def cancel():
        checks.append(len(model.calls))
        if len(checks) == 5:
            raise InterruptedError("cancelled")

    with pytest.raises(InterruptedError), torch.no_grad():
        denoise(model, _request(76, steps=3), check_cancel=cancel,
                on_window=lambda done, total: windows_done.append((done, total)))
    assert checks == [0, 1, 2, 3, 4]  # before every window, and the 5th stopped the run mid-step
    assert len(model.calls) == 4 and windows_done == [(1, 9), (2, 9), (3, 9), (4, 9)]


def test_a_window_input_without_a_cut_is_refused():
    with pytest.raises(ValueError, match="bg_latents has no window cut"), torch.no_grad():
        denoise(SpyTransformer(), _request(40, window_cuts={"audio_prompts": cut_frames}))


def test_adaptive_caches_are_refused_for_windowed_runs_and_deepcache_does_not_act():
    assert windowed_cache_refusal("teacache", 33) is None and windowed_cache_refusal("off", 376) is None
    assert windowed_cache_refusal("deepcache", 376) is None
    message = windowed_cache_refusal("teacache", 34)
    assert "133 frames" in message and "set cache to off" in message
    with pytest.raises(ValueError, match="fbcache step cache cannot run"), torch.no_grad():
        denoise(SpyTransformer(), _request(40, cache=CacheSettings("fbcache")))
    modes = []

    class Recording(SpyTransformer):
        def forward(self, *args, deep_cache, **kw):
            modes.append(deep_cache.mode)
            return super().forward(*args, deep_cache=deep_cache, **kw)

    with torch.no_grad():
        denoise(Recording(), _request(40, steps=30, cache=CacheSettings("deepcache")))
    assert len(modes) == 60 and set(modes) == {"off"}  # every step of every window runs in full


def test_reference_to_video_needs_no_cut_and_every_window_gets_the_reference():
    model = SpyTransformer()
    with torch.no_grad():
        denoise(model, _request(70, steps=2, bg_latents=None, audio_prompts=None, window_cuts={}))
    assert len(model.calls) == 2 * 3
    assert all(c["bg"] is None and c["audio"] is None and torch.equal(c["ref"], torch.full((1, 16, 1, 2, 2), -7.0))
               for c in model.calls)


def test_the_samplers_progress_bar_counts_windows_within_steps(monkeypatch):
    from types import SimpleNamespace

    from hunyuan_custom.nodes import comfy
    from hunyuan_custom.nodes.sampler import HunyuanCustomSampler
    from hunyuan_custom.pipelines.conditioning.prompt_spec import PromptSpec

    seen = []

    class Bar:
        def __init__(self, total, node_id=None):
            self.total = total

        def update(self, value, preview=None):
            seen.append((value, self.total))

        def text(self, _message):
            pass

    class Windowed:  # a 3-window run of 2 steps, as generate reports it
        def generate(self, job, status, progress, check_cancel):
            for step in range(2):
                for k in range(3):
                    progress("window", step * 3 + k + 1, 6, None)
                progress("sampling", step + 1, 2, None)
            return SimpleNamespace(frames=torch.zeros(261, 48, 64, 3), fps=25.0, seed=3, audio=None)

    monkeypatch.setattr(comfy, "Progress", Bar)
    monkeypatch.setattr(comfy, "free_comfy_models", lambda: None)
    monkeypatch.setattr(comfy, "empty_cache", lambda: None)
    spec = PromptSpec.create("a cat", "", "cat", torch.rand(1, 40, 30, 3))
    HunyuanCustomSampler().sample(Windowed(), spec, size="64*48", guidance_scale=7.5, flow_shift=13.0, seed=3,
                                  num_frames=261, steps=2, cache="off")
    assert seen == [(1, 6), (2, 6), (3, 6), (3, 6), (4, 6), (5, 6), (6, 6), (6, 6)]
