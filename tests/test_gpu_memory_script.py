"""benchmarks/gpu_memory.py: every stage runs on tiny synthetic models on the CPU, next to the estimate."""

from __future__ import annotations

import contextlib
import gc
import io
import os
import sys
import weakref
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from hunyuan_custom.benchmarks import gpu_memory, offload_residency, synthetic_models, vram_estimate

ROOT = Path(__file__).resolve().parents[1]
needs_recorder = pytest.mark.skipif(bool(offload_residency.missing_diffusers_internals()),
                                    reason="this diffusers' group offloading differs from the one the recorder patches")
needs_text_estimate = pytest.mark.skipif(not vram_estimate.text_estimate_supported(),
                                         reason="the shape-only text estimate needs transformers 5")


@dataclass(frozen=True)
class TinyRun:
    """One `gpu_memory.py --tiny --device cpu --offload X` run and what was alive when."""
    results: list
    out: str
    text_models: int  # text encoders built
    text_freed: bool  # all of them gone when the run returned
    transformer_alive_in_vae: list  # per decode: was the first transformer still referenced (after a gc)
    transformer_freed: bool  # gone after the run (after a gc)


def _watched_run(offload: str) -> TinyRun:
    """Leftover references would keep weights on the GPU and inflate the next stage's measured peak,
    so the run notes which synthetic models are still alive at the decode and at the end."""
    made: dict[str, list] = {"text": [], "transformer": []}
    build_text, build_transformer = synthetic_models.synthetic_text_encoders, synthetic_models.synthetic_transformer
    run_vae = gpu_memory.run_vae_stage
    alive_in_vae: list[bool] = []

    def text(*a, **k):
        models = build_text(*a, **k)
        made["text"] += [weakref.ref(m) for m in models]
        return models

    def transformer(*a, **k):
        model = build_transformer(*a, **k)
        made["transformer"].append(weakref.ref(model))
        return model

    def vae_stage(*a, **k):
        gc.collect()
        alive_in_vae.append(made["transformer"][0]() is not None)
        return run_vae(*a, **k)

    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.setattr(synthetic_models, "synthetic_text_encoders", text)
        patch.setattr(synthetic_models, "synthetic_transformer", transformer)
        patch.setattr(gpu_memory, "run_vae_stage", vae_stage)
        results = gpu_memory.main(["--tiny", "--device", "cpu", "--offload", offload])
    text_freed = all(ref() is None for ref in made["text"])
    gc.collect()
    return TinyRun(results, out.getvalue(), len(made["text"]), text_freed, alive_in_vae,
                   made["transformer"][0]() is None)


@pytest.fixture(scope="module")
def tiny_run():
    """`tiny_run(offload)`: the run for that offload, made once for this module's tests (each costs seconds)."""
    runs: dict[str, TinyRun] = {}

    def get(offload: str) -> TinyRun:
        if offload not in runs:
            runs[offload] = _watched_run(offload)
        return runs[offload]

    return get


@needs_text_estimate
@pytest.mark.parametrize("offload", ["model", pytest.param("group", marks=needs_recorder)])
def test_tiny_cpu_run_measures_every_stage_and_shows_the_same_estimates(offload, tiny_run):
    run = tiny_run(offload)
    results, out = run.results, run.out

    assert [r.stage for r in results] == ["text", "transformer", "vae"]
    # the real code paths ran: CFG text encoding (2 rows of 4 text + 16 image positions - 1), 2 steps, a tiled decode
    assert "states [2, 19, 64]" in out
    assert "transformer: step 2/2" in out
    assert "vae: decoded 3 tiles" in out
    streamed = offload == "group"
    assert ("LLaVA streamed" in results[0].label) == streamed and ("blocks streamed" in results[1].label) == streamed
    table = out[out.index("stage  "):]
    for r in results:
        assert r.peak_allocated is None and r.peak_reserved is None and not r.error  # no CUDA statistics on a CPU
        row = next(line for line in table.splitlines() if line.startswith(r.label))
        assert f"  {gpu_memory._gib(r.estimate.peak_total)}  " in row and r.estimate.peak_total > 0
        assert row.count("n/a") == 4  # allocated, reserved, ratio, confirmed
    assert "no CUDA statistics on cpu" in out

    # The estimate column is vram_estimate.py's own result for the same options.
    estimated = vram_estimate.main(["--tiny", "--offload", offload])
    assert [r.estimate.peak_total for r in results] == [s.peak_total for s in estimated]
    assert [r.estimate.peak_weights for r in results] == [s.peak_weights for s in estimated]


# The smallest job the tiny models run: for checks that do not depend on the job's size.
SMALLEST = ["--size", "16*16", "--frames", "5"]


def test_offload_none_keeps_the_transformer_through_the_decode_estimate(capsys):
    none = gpu_memory.main(["--tiny", "--device", "cpu", "--offload", "none", "--stages", "vae", *SMALLEST])
    model = gpu_memory.main(["--tiny", "--device", "cpu", "--offload", "model", "--stages", "vae", *SMALLEST])
    capsys.readouterr()
    transformer = vram_estimate.tensor_bytes(synthetic_models.synthetic_transformer(True, torch.bfloat16, False))
    assert none[0].estimate.peak_weights - model[0].estimate.peak_weights == transformer


def _start_script(_folder: Path) -> dict:
    # 17 frames: the fewest that 16-frame tiles cut into more than one tile.
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_memory.py"), "--tiny", "--device", "cpu", "--stages",
           "vae", "--frames", "17", "--size", "16*16", "--vae-tile-frames", "16"]
    return {"args": cmd, "env": {**os.environ, "PYTHONPATH": ""}, "cwd": ROOT}


@pytest.mark.early_run(start=_start_script)  # runs while the other tests do (tests/_early_run.py)
def test_script_runs_from_a_checkout_with_a_vae_tile_option(early_run):
    assert early_run.returncode == 0, early_run.stderr[-2000:]
    assert "VAE decode (16-frame tiles)" in early_run.stdout and "vae: decoded 2 tiles" in early_run.stdout
    assert "n/a" in early_run.stdout


def test_bad_options_are_refused_before_any_work(capsys):
    for argv, word in ((["--vae-tile-frames", "20"], "--vae-tile-frames"), (["--stages", "text,decode"], "decode")):
        with pytest.raises(SystemExit) as exc:
            gpu_memory.main(["--tiny", "--device", "cpu", *argv])
        assert exc.value.code == 2 and word in capsys.readouterr().err


def _result(allocated: int, reserved: int, estimate: int) -> gpu_memory.StageResult:
    class Estimate:
        peak_total = estimate

    return gpu_memory.StageResult("transformer", "transformer (blocks streamed)", 12.0, allocated, reserved, 0,
                                  estimate=Estimate())


def test_confirmed_means_within_ten_percent_of_the_estimate_and_inside_the_card():
    gib = gpu_memory.GIB
    card = gpu_memory.Card(torch.device("cpu"))
    card.cuda, card.context, card.total = True, gib, 80 * gib  # as a CUDA card reports them
    ok = _result(int(16.5 * gib), 20 * gib, 15 * gib)  # 1.10 x the estimate, 20 + 1 GiB context <= 24
    over_estimate = _result(int(16.6 * gib), 20 * gib, 15 * gib)
    over_card = _result(15 * gib, 23 * gib + 1, 15 * gib)
    assert ok.confirmed(24 * gib, card.context) is True
    assert over_estimate.confirmed(24 * gib, card.context) is False
    assert over_card.confirmed(24 * gib, card.context) is False
    assert over_card.confirmed(80 * gib, card.context) is True
    lines = gpu_memory.format_table([ok, over_estimate], card, 24)
    assert lines[2].split()[-1] == "yes" and lines[3].split()[-1] == "NO"
    assert "16.50 GiB" in lines[2] and "1.10" in lines[2]
    assert any("CONFIRMED = peak allocated <= estimate + 10%" in line for line in lines)


def test_out_of_memory_is_reported_in_the_table_not_raised():
    card = gpu_memory.Card(torch.device("cpu"))
    result = gpu_memory.StageResult("vae", "VAE decode", 0.0)
    with gpu_memory.measuring(card, result):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB")
    assert result.error.startswith("out of memory: CUDA out of memory")
    assert any("VAE decode: out of memory" in line for line in gpu_memory.format_table([result], card, 24))


def test_fill_synthetic_gives_values_keeps_ties_and_dtypes():
    with torch.device("meta"):
        model = nn.Sequential(nn.Embedding(10, 8), nn.LayerNorm(8), nn.Linear(8, 10))
    model[2].weight = model[0].weight  # tied, like an lm_head
    model[2].register_buffer("weight_scale", torch.empty((), device="meta"))
    synthetic_models.fill_synthetic(model, torch.bfloat16)
    assert model[2].weight is model[0].weight
    assert all(p.dtype == torch.bfloat16 and p.device.type == "cpu" and p.isfinite().all() for p in model.parameters())
    assert torch.equal(model[1].weight.float().round(), torch.ones(8))  # norm weights near 1
    assert model[0].weight.float().std() > 0 and model[2].weight_scale.item() == 1.0

    with torch.device("meta"):
        odd = nn.Linear(4, 4)
    odd.register_buffer("inv_freq", torch.empty(2, device="meta"))
    with pytest.raises(ValueError, match="inv_freq"):
        synthetic_models.fill_synthetic(odd)


def test_synthetic_text_encoders_keep_real_buffers():
    llava, clip = synthetic_models.synthetic_text_encoders(True, torch.bfloat16)
    assert not any(t.is_meta for t in [*llava.parameters(), *llava.buffers(), *clip.parameters(), *clip.buffers()])
    position_ids = next(b for n, b in clip.named_buffers() if n.endswith("embeddings.position_ids"))
    assert torch.equal(position_ids[0], torch.arange(77))
    assert llava.model.language_model.rotary_emb.inv_freq.dtype == torch.float32  # as transformers computes it


@needs_text_estimate
@pytest.mark.parametrize("offload,kept", [("model", False), ("none", True)])
def test_each_stage_lets_go_of_its_models_before_the_next(offload, kept, tiny_run):
    """Leftover references would keep weights on the GPU and inflate the next stage's measured peak."""
    run = tiny_run(offload)
    assert run.text_models == 2 and run.text_freed
    # offload none: the transformer stays through the decode, as in generate.py
    assert run.transformer_alive_in_vae == [kept]
    assert run.transformer_freed
