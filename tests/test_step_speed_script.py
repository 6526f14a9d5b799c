"""benchmarks/step_speed.py on tiny models on the CPU: the table it prints, not its timings."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hunyuan_custom.benchmarks import step_speed

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_cpu_table_has_every_cache_with_block_counts_and_differences(capsys):
    rows = step_speed.main(["--tiny", "--device", "cpu", "--steps", "10"])
    out = capsys.readouterr().out
    assert [(r.cache, r.mode) for r in rows] == [
        ("off", ""), ("deepcache", ""), ("teacache", "adaptive"), ("teacache", "forced"), ("magcache", "adaptive"),
        ("magcache", "forced"), ("fbcache", "adaptive"), ("fbcache", "forced"), ("taylorseer", "adaptive"),
        ("taylorseer", "forced")]
    assert not any(r.error for r in rows)
    by = {(r.cache, r.mode): r for r in rows}
    full = 10 * 2 * 4
    assert by[("off", "")].blocks == by[("deepcache", "")].blocks == full  # deepcache acts at 30 steps only
    assert by[("off", "")].max_diff == 0 == by[("deepcache", "")].max_diff
    skipped = len(step_speed.forced_pattern(10, 2))
    assert skipped == 3  # steps 3, 5, 7
    assert by[("teacache", "forced")].blocks == by[("magcache", "forced")].blocks == full - skipped * 2 * 4
    assert by[("fbcache", "forced")].blocks == full - skipped * 2 * 3  # its first block always runs
    assert all(by[k].max_diff > 0 for k in by if k[1] == "forced")
    table = out[out.index("attention  compile"):]
    assert "x off" in table and "blocks run" in table and "max |d| vs off" in table
    assert f"{full - skipped * 8}/{full}" in table and "skip 3 steps" in table and "interval 2" in table
    assert "n/a" in table  # no peak for a CPU


def test_compiled_rows_and_a_missing_backend_are_reported(capsys):
    rows = step_speed.main(["--tiny", "--device", "cpu", "--steps", "4", "--caches", "fbcache", "--modes", "forced",
                            "--compile", "off,on", "--compile-backend", "eager", "--attention", "native,bogus"])
    capsys.readouterr()
    good = [r for r in rows if not r.error]
    assert {(r.compiled, r.cache) for r in good} == {(False, "off"), (False, "fbcache"), (True, "off"),
                                                      (True, "fbcache")}
    assert [r.error.startswith("backend unavailable") for r in rows if r.error] == [True, True]
    compiled_fb = next(r for r in good if r.compiled and r.cache == "fbcache")
    assert compiled_fb.max_diff == next(r for r in good if not r.compiled and r.cache == "fbcache").max_diff


def _start_script(_folder: Path) -> dict:
    return {"args": [sys.executable, str(ROOT / "benchmarks" / "step_speed.py"), "--tiny", "--device", "cpu", "--steps",
                     "3", "--caches", "teacache", "--modes", "adaptive"], "cwd": ROOT}


@pytest.mark.early_run(start=_start_script)  # runs while the other tests do (tests/_early_run.py)
def test_script_runs_from_a_checkout(early_run):
    assert early_run.returncode == 0, early_run.stderr[-3000:]
    assert "teacache" in early_run.stdout and "x off" in early_run.stdout
