"""benchmarks/window_speed.py on tiny models on the CPU: the rows and the table it prints, not its timings."""

from __future__ import annotations

import pytest

from hunyuan_custom.benchmarks import window_speed


def test_tiny_cpu_table_has_a_row_per_window_count(capsys):
    rows = window_speed.main(["--tiny", "--device", "cpu", "--steps", "2", "--windows", "1,2"])
    assert [(r.windows, r.frames, r.latents) for r in rows] == [(1, 129, 33), (2, 261, 66)]
    assert all(r.step_seconds > 0 and r.peak_bytes > 0 for r in rows)
    # One window's activations whatever the length: only the latent itself (a few copies) grows.
    latent_bytes = 16 * 33 * 6 * 8 * 4
    assert rows[1].peak_bytes - rows[0].peak_bytes < 6 * latent_bytes
    out = capsys.readouterr().out
    assert "s/step/window" in out and "peak live tensors (MiB)" in out


def test_too_many_windows_is_refused():
    with pytest.raises(SystemExit):
        window_speed.main(["--tiny", "--device", "cpu", "--windows", "12"])
