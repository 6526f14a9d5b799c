"""benchmarks/lora_cost.py runs (tiny shapes, CPU) and its figures hold together; the figures that matter
come from a GPU run."""

from __future__ import annotations

from hunyuan_custom.benchmarks import lora_cost


def test_the_lora_cost_benchmark_prints_its_figures(capsys):
    figures = lora_cost.main(["--tiny", "--device", "cpu", "--steps", "2", "--rank", "4"])
    out = capsys.readouterr().out
    assert "s/step without LoRA" in out and "switch strength" in out
    assert figures["lora_params_M"] > 0 and figures["stored_elements"] >= figures["lora_params_M"] * 1e6
    assert figures["strength0_max_diff"] == 0 and figures["branches_left_at_strength0"] == 0
