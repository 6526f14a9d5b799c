"""One job on 2 and 4 gloo processes (CPU) against the same job in one process (pipelines/parallel/).

The ranks run in a subprocess of their own, started ahead of these tests (tests/_early_run.py):
tests/_parallel_ranks.py runs every scenario of a world size in one start and saves what rank 0
gathered; the tests read it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from _cli_run import subprocess_pythonpath

HERE = Path(__file__).resolve().parent
# Float rounding only: the split changes the order of sums (attention over permuted keys, smaller
# matmuls); 3 steps at guidance 7.5 amplify the velocity's rounding into the latents.
ULYSSES_ATOL = 1e-4


def _ranks(world: int):
    def start(folder: Path) -> dict:
        env = {**os.environ, "PYTHONPATH": subprocess_pythonpath(folder), "OMP_NUM_THREADS": "1"}
        return {"args": [sys.executable, str(HERE / "_parallel_ranks.py"), str(world), str(folder / "out.pt")],
                "env": env}
    return start


def _results(early_run) -> dict:
    assert early_run.returncode == 0, early_run.stderr[-3000:]
    return torch.load(early_run.folder / "out.pt", weights_only=False)


@pytest.mark.early_run(start=_ranks(2))
def test_two_ranks_every_mode_equals_one_process_and_caches_and_cancel_agree(early_run):
    results = _results(early_run)
    cfg = results["cfg"]
    assert cfg["plan"] == "2 ranks: cfg 2"
    assert torch.equal(cfg["parallel"], cfg["single"])  # CFG parallel: bit for bit
    # each rank ran one CFG pass: uncond (48 image + 5 text tokens) on rank 0, cond (48 + 9) on rank 1
    assert [r["tokens"] for r in cfg["ranks"]] == [[53], [57]]

    for name in ("ulysses_ref2v", "ulysses_editing", "ulysses_audio", "ulysses_guidance1", "ulysses_deepcache",
                 "ulysses_magcache"):
        result = results[name]
        assert result["plan"] == "2 ranks: ulysses 2", name
        single, parallel = result["single"], result["parallel"]
        assert torch.allclose(parallel, single, atol=ULYSSES_ATOL, rtol=0), (name, (parallel - single).abs().max())
        assert single.abs().max() > 0.1
    # Each rank's attention sees half the tokens: (48 image + text padded to even) / 2 per pass.
    assert [r["tokens"] for r in results["ulysses_ref2v"]["ranks"]] == [[27, 29], [27, 29]]
    assert [r["tokens"] for r in results["ulysses_guidance1"]["ranks"]] == [[29], [29]]

    # TeaCache under sequence parallel: every rank measures the change of ALL tokens (summed over the
    # ranks), so they take the single process's decisions, together.
    result = results["ulysses_teacache"]
    single = result["single_decisions"]
    ranks = [r["decisions"] for r in result["ranks"]]
    assert ranks[0] == ranks[1]  # same change measured, same decision: no rank left waiting
    assert [d for _, d in ranks[0]] == [d for _, d in single] and False in [d for _, d in single]
    for (change, _), (expected, _) in zip(ranks[0], single):
        assert (change is None) == (expected is None)
        if change is not None:
            assert change == pytest.approx(expected, rel=1e-4)
    assert torch.allclose(result["parallel"], result["single"], atol=ULYSSES_ATOL, rtol=0)

    # Cancel on rank 0 before step 3: every rank leaves the loop at that step.
    assert results["cancel"] == [("KeyboardInterrupt", 2), ("Cancelled", 2)]

    # Window parallel's building block: the windows of a step dealt out, their sums combined.
    assert results["windows"] == {"ranks": [[0, 2, 4], [1, 3]], "equal": True}
    # ...and the windowed sampler on it: each rank runs one of the two windows of a 141-frame video
    # (the audio cut to each window's frames), bit for bit the one-process result.
    for name in ("windows_ref2v", "windows_audio"):
        result = results[name]
        assert result["plan"] == "2 ranks: windows 2", name
        assert torch.equal(result["parallel"], result["single"]), name
        assert result["single"].shape[2] == 36


@pytest.mark.early_run(start=_ranks(4))
def test_four_ranks_cfg_times_ulysses_equals_one_process(early_run):
    results = _results(early_run)
    for name in ("cfg_ulysses", "cfg_ulysses_audio"):
        result = results[name]
        assert result["plan"] == "4 ranks: cfg 2 x ulysses 2"
        assert torch.allclose(result["parallel"], result["single"], atol=ULYSSES_ATOL, rtol=0)
    # ranks 0,1 share the uncond pass (5 text tokens, padded to 6), ranks 2,3 the cond pass (9 -> 10)
    assert [r["tokens"] for r in results["cfg_ulysses"]["ranks"]] == [[27], [27], [29], [29]]
    assert [outcome for outcome, _ in results["cancel"]] == ["KeyboardInterrupt"] + ["Cancelled"] * 3
    assert {steps for _, steps in results["cancel"]} == {2}
    assert results["windows"] == {"ranks": [[0, 4], [1], [2], [3]], "equal": True}
    # auto on 4 ranks for a 2-window video: CFG halves, each over the two windows (no Ulysses): exact.
    result = results["cfg_windows"]
    assert result["plan"] == "4 ranks: cfg 2 x windows 2"
    assert torch.equal(result["parallel"], result["single"])
