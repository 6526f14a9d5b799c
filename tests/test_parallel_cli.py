"""`torchrun --nproc-per-node N -m hunyuan_custom generate ... --device cpu` (gloo) on the tiny models,
against one process; and the refusals a bad setup gets before anything loads."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from _cli_run import error_line, local_argv, run_cli, subprocess_pythonpath, write_reference_png
from _tiny_model_set import build_tiny_model_set
from hunyuan_custom.pipelines.media import video_io

SMALL = ("--size", "64*48", "--num-frames", "9", "--steps", "3", "--seed", "7")


def _start_runs(folder: Path) -> dict:
    """One process, then torchrun with 2 ranks (auto: CFG parallel), then 2 ranks of Ulysses."""
    models = build_tiny_model_set(folder / "models")
    ref = write_reference_png(folder / "ref.png")
    env = {**os.environ, "PYTHONPATH": subprocess_pythonpath(folder), "OMP_NUM_THREADS": "1"}

    def command(out: str, *launcher: str, extra: tuple = ()) -> str:
        argv = local_argv(models, ref, folder / out, *SMALL, *extra)
        return " ".join(map(_quote, [*launcher, "-m", "hunyuan_custom", *argv]))

    torchrun = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2")
    script = " && ".join([command("single.mp4", sys.executable), command("cfg.mp4", *torchrun),
                          command("ulysses.mp4", *torchrun, extra=("--parallel", "ulysses"))])
    return {"args": ["sh", "-c", script], "env": env}


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(str(text))


@pytest.mark.early_run(start=_start_runs)
def test_torchrun_two_ranks_writes_the_one_process_video(early_run):
    assert early_run.returncode == 0, early_run.stderr[-3000:]
    folder = early_run.folder
    single = video_io.read_video_uint8(folder / "single.mp4")[0]
    cfg = video_io.read_video_uint8(folder / "cfg.mp4")[0]
    ulysses = video_io.read_video_uint8(folder / "ulysses.mp4")[0]
    assert single.shape == (9, 48, 64, 3)
    # CFG parallel is bit for bit: the same frames, and here the very same file
    assert (cfg == single).all()
    assert (folder / "cfg.mp4").read_bytes() == (folder / "single.mp4").read_bytes()
    # Ulysses: float rounding at most moves a pixel value by one step
    assert (ulysses.int() - single.int()).abs().max() <= 1
    # rank 0 speaks once: one status line per stage, one output path per run
    assert early_run.stdout.count("cfg.mp4") == 1 and early_run.stderr.count("parallel: 2 ranks: cfg 2 (gloo)") == 1
    assert early_run.stderr.count("parallel: 2 ranks: ulysses 2 (gloo)") == 1


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return build_tiny_model_set(tmp_path_factory.mktemp("models"))


def _ranks_env(monkeypatch, world: int, rank: int = 0) -> None:
    for name, value in (("WORLD_SIZE", world), ("RANK", rank), ("LOCAL_RANK", rank)):
        monkeypatch.setenv(name, str(value))


@pytest.mark.parametrize("world, extra, message", [
    (8, (), "needs the attention heads (2) to divide by 4"),
    (2, ("--parallel", "ulysses", "--size", "16*48", "--num-frames", "5"), "video tokens (9"),
    (4, ("--parallel", "cfg"), "CFG parallel uses exactly 2 processes, got 4"),
    (2, ("--parallel", "cfg", "--guidance-scale", "1"), "guidance_scale is 1"),
    (2, ("--parallel", "windows"), "window parallel needs a video of several windows (over 129 frames)"),
    (4, ("--parallel", "windows", "--num-frames", "141"), "the video has only 2 windows"),
    (2, ("--parallel", "ulysses", "--cache", "fbcache"), "cache fbcache"),
])
def test_bad_setup_is_refused_in_one_line_before_loading(models, ref_png, tmp_path, monkeypatch, world, extra, message):
    _ranks_env(monkeypatch, world)
    run = run_cli(local_argv(models, ref_png, tmp_path / "out.mp4", *SMALL, *extra))
    line = error_line(run)
    assert message in line and f"torchrun --nproc-per-node {world}" in line, line
    assert "loading" not in run.stderr and not (tmp_path / "out.mp4").exists()


def test_parallel_flag_without_torchrun_says_how_to_start(models, ref_png, tmp_path):
    run = run_cli(local_argv(models, ref_png, tmp_path / "out.mp4", *SMALL, "--parallel", "cfg"))
    assert "torchrun --nproc-per-node N" in error_line(run)


def test_other_ranks_stay_quiet_on_bad_input(models, ref_png, tmp_path, monkeypatch):
    from hunyuan_custom.pipelines import cli

    monkeypatch.setattr(cli, "FOLLOWER_REFUSAL_DELAY_S", 0.0)
    _ranks_env(monkeypatch, 8, rank=3)
    run = run_cli(local_argv(models, ref_png, tmp_path / "out.mp4", *SMALL))
    assert run.returncode == 2 and run.stdout == "" and run.stderr == ""


def test_torchrun_with_cuda_but_no_gpu_is_refused_before_loading(models, ref_png, tmp_path, monkeypatch):
    from hunyuan_custom.pipelines.parallel.group import backend_for
    from hunyuan_custom.pipelines.parallel.plan import ParallelSetupError

    _ranks_env(monkeypatch, 2)
    argv = local_argv(models, ref_png, tmp_path / "out.mp4", *SMALL)
    argv[argv.index("--device") + 1] = "cuda"
    line = error_line(run_cli(argv))
    assert "cuda" in line and "cpu" in line and not (tmp_path / "out.mp4").exists()
    assert backend_for("cpu") == "gloo"
    if not torch.cuda.is_available():
        with pytest.raises(ParallelSetupError, match="needs CUDA GPUs for NCCL.*--device cpu"):
            backend_for("cuda")
