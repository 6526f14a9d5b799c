"""Runs one job on N gloo processes (CPU) and records what the tests assert, in one start-up.

`python tests/_parallel_ranks.py WORLD OUT.pt` spawns WORLD ranks (torch.multiprocessing, a FileStore
rendezvous: no port to pick), runs every scenario of that world size and has rank 0 save, per
scenario, the one-process result (rank 0 runs the plain sampler first) and the parallel one, plus
what each rank saw (its attention's tokens, its cache decisions). Starting Python with torch costs
seconds, so all scenarios share one start; the tests (test_parallel.py) only read OUT.pt.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "reference"
STEPS = 3


def _models():
    from _transformer_parity import build_from_fixture

    return {
        "ref2v": build_from_fixture(FIXTURES / "transformer_ref2v"),
        "editing": build_from_fixture(FIXTURES / "transformer_editing"),
        "audio": build_from_fixture(FIXTURES / "audio", "transformer_audio_weights.safetensors"),
    }


def _request(model, kind: str, guidance: float = 7.5, cache=None, frames: int = 9, height: int = 48, width: int = 64,
             steps: int = STEPS):
    from hunyuan_custom.pipelines.sampling import DenoiseRequest, initial_noise, latent_shape
    from hunyuan_custom.pipelines.text_encoders.encodings import TextConditioning

    g = torch.Generator().manual_seed(11)
    mask = torch.ones(2, 9, dtype=torch.int64)
    mask[0, 5:] = 0  # uncond row: 5 valid tokens, cond row: 9 (odd: the text is padded for 2 ranks)
    text = TextConditioning(torch.randn(2, 9, model.config.text_embed_dim, generator=g), mask,
                            torch.randn(2, model.config.pooled_projection_dim, generator=g))
    shape = latent_shape(frames, height, width)
    extra = {}
    if kind == "editing":
        extra["bg_latents"] = torch.randn(1, 32, *shape[2:], generator=g)
    if kind == "audio":
        from hunyuan_custom.pipelines.windows import cut_frames

        proj = model.audio_proj
        extra["audio_prompts"] = torch.randn(1, frames, proj.seq_len, proj.blocks, proj.channels, generator=g)
        extra["window_cuts"] = {"audio_prompts": cut_frames}  # as the audio condition declares it
    return DenoiseRequest(latents=initial_noise(5, shape), ref_latents=torch.randn(1, 16, 1, *shape[3:], generator=g),
                          text=text, steps=steps, flow_shift=13.0, guidance_scale=guidance, cache=cache, **extra)


def _attention_tokens(model) -> list[int]:
    """Record the query length each attention call of `model` sees on this rank."""
    seen: list[int] = []
    from diffusers.models.transformers import transformer_hunyuan_video as hv

    processor_call = hv.HunyuanVideoAttnProcessor2_0.__call__

    def spy(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, image_rotary_emb=None):
        text = 0 if encoder_hidden_states is None else encoder_hidden_states.shape[1]
        seen.append(hidden_states.shape[1] + text)
        return processor_call(self, attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb)

    hv.HunyuanVideoAttnProcessor2_0.__call__ = spy
    return seen


def _teacache_decisions() -> list[bool]:
    from hunyuan_custom.pipelines.diffusion_models import teacache

    decisions: list = []  # (relative change measured, whether the blocks ran), per call
    decide, measure = teacache.TeaCacheHeadHook._decide, teacache.TeaCacheSchedule.relative_change
    changes: list[float] = []

    def spy(self, state, modulated):
        changes.clear()
        result = decide(self, state, modulated)
        decisions.append((changes[0] if changes else None, bool(result)))
        return result

    def measured(self, modulated, previous):
        changes.append(measure(self, modulated, previous))
        return changes[-1]

    teacache.TeaCacheHeadHook._decide = spy
    teacache.TeaCacheSchedule.relative_change = measured
    return decisions


def _scenarios(world: int):
    from hunyuan_custom.pipelines.diffusion_models.step_cache import CacheSettings

    tea = CacheSettings("teacache", threshold=0.5)
    if world == 2:
        return [("cfg", "cfg", "ref2v", {}), ("ulysses_ref2v", "ulysses", "ref2v", {}),
                ("ulysses_editing", "ulysses", "editing", {}), ("ulysses_audio", "ulysses", "audio", {}),
                ("ulysses_guidance1", "ulysses", "ref2v", {"guidance": 1.0}),
                ("ulysses_teacache", "ulysses", "ref2v", {"cache": tea}),
                # MagCache decides from its published ratios, not from tensors: the ranks agree by construction
                ("ulysses_magcache", "ulysses", "ref2v", {"cache": CacheSettings("magcache", threshold=0.5),
                                                          "steps": 10}),
                # deepcache acts at 30 steps only: 8 of them re-run the last block on stored shares
                ("ulysses_deepcache", "ulysses", "ref2v", {"cache": CacheSettings("deepcache"), "steps": 30}),
                # 141 frames = 36 latents: two windows of 33 (the second wraps around to the head)
                ("windows_ref2v", "windows", "ref2v", {"frames": 141}),
                ("windows_audio", "windows", "audio", {"frames": 141})]
    return [("cfg_ulysses", "cfg+ulysses", "ref2v", {}), ("cfg_ulysses_audio", "cfg+ulysses", "audio", {}),
            ("cfg_windows", "auto", "ref2v", {"frames": 141})]


def _rank(rank: int, world: int, store_dir: str, out: str) -> None:
    import copy

    from hunyuan_custom.pipelines.parallel import group
    from hunyuan_custom.pipelines.parallel.plan import JobShape, choose_plan, image_tokens
    from hunyuan_custom.pipelines.parallel.session import JobSession
    from hunyuan_custom.pipelines.sampling import denoise
    from hunyuan_custom.pipelines.windows import one_window, window_count

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store_dir}/store", rank=rank, world_size=world)
    models = _models()
    tokens = _attention_tokens(None)
    decisions = _teacache_decisions()
    results = {}
    for name, mode, kind, over in _scenarios(world):
        base = models[kind]
        request = _request(base, kind, guidance=over.get("guidance", 7.5), cache=over.get("cache"),
                           steps=over.get("steps", STEPS), frames=over.get("frames", 9))
        latents = tuple(request.latents.shape)
        shape = JobShape(uses_cfg=request.uses_cfg, cfg_batched=False, heads=base.config.num_attention_heads,
                         image_tokens=image_tokens(*one_window(latents)[2:]), windows=window_count(latents[2]))
        plan = choose_plan(world, mode, shape)
        single = None
        tokens.clear()
        decisions.clear()
        if rank == 0:
            with torch.no_grad():
                single = denoise(copy.deepcopy(base), request)
        single_decisions = list(decisions)
        tokens.clear()
        decisions.clear()
        ctx = group.RankContext(rank, world, torch.device("cpu"), "gloo", plan, group.build_mesh(plan, "cpu"))
        session = JobSession(ctx)
        parallel = session.denoise(copy.deepcopy(base), request)
        seen = [None] * world
        dist.all_gather_object(seen, {"tokens": sorted(set(tokens)), "decisions": list(decisions)})
        if rank == 0:
            results[name] = {"single": single, "parallel": parallel, "plan": plan.describe, "ranks": seen,
                             "single_decisions": single_decisions}
    results["cancel"] = _cancel(rank, world, models["ref2v"])
    results["windows"] = _windows(rank, world)
    if rank == 0:
        torch.save(results, out)
    dist.barrier()
    dist.destroy_process_group()


def _windows(rank: int, world: int):
    """WindowSplit: 5 overlapping windows of a 12-frame latent; the ranks' combined sums and counts
    against one process accumulating every window."""
    from types import SimpleNamespace

    from hunyuan_custom.pipelines.parallel.windows import WindowSplit

    g = torch.Generator().manual_seed(4)
    latents = torch.zeros(1, 2, 12, 2, 2)
    windows = [SimpleNamespace(index=i, frames=[(3 * i + k) % 12 for k in range(5)]) for i in range(5)]
    updates = [torch.randn(1, 2, 5, 2, 2, generator=g) for _ in windows]

    def accumulate(chosen):
        velocity, counts = None, None
        for w in chosen:
            index = torch.tensor(w.frames)
            velocity = (torch.zeros_like(latents) if velocity is None else velocity).index_add_(2, index, updates[w.index])
            counts = (torch.zeros(12) if counts is None else counts).index_add_(0, index, torch.ones(5))
        return velocity, counts

    split = WindowSplit(rank, world)
    mine = split.mine(windows)
    velocity, counts = split.combine(*accumulate(mine), latents)
    single = accumulate(windows)
    seen = [None] * world
    dist.all_gather_object(seen, [w.index for w in mine])
    return {"ranks": seen, "equal": torch.allclose(velocity, single[0], atol=1e-6) and torch.equal(counts, single[1])}


def _cancel(rank: int, world: int, model) -> list:
    """Rank 0 cancels before step 2: every rank must leave the loop at that step."""
    from hunyuan_custom.pipelines.parallel import group
    from hunyuan_custom.pipelines.parallel.plan import ParallelPlan
    from hunyuan_custom.pipelines.parallel.session import Cancelled, JobSession

    plan = ParallelPlan(world, cfg=2, ulysses=world // 2)
    ctx = group.RankContext(rank, world, torch.device("cpu"), "gloo", plan, group.build_mesh(plan, "cpu"))
    session = JobSession(ctx)
    steps: list[int] = []

    def check() -> None:
        if len(steps) == 2:
            raise KeyboardInterrupt("user cancel")

    try:
        session.denoise(model, _request(model, "ref2v"), on_step=lambda i, n, x: steps.append(i),
                        check_cancel=check if rank == 0 else None)
        outcome = "finished"
    except KeyboardInterrupt:
        outcome = "KeyboardInterrupt"
    except Cancelled:
        outcome = "Cancelled"
    seen = [None] * world
    dist.all_gather_object(seen, (outcome, len(steps)))
    return seen


def main() -> None:
    world, out = int(sys.argv[1]), sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="hyc-ranks-") as store:
        mp.start_processes(_rank, args=(world, store, out), nprocs=world, start_method="spawn")


if __name__ == "__main__":
    main()
