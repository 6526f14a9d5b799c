"""Local generation end to end on CPU with a tiny model set in the real layouts: CLI and nodes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from _full_disk import full_disk_ffmpeg
from _cli_run import local_argv, run_cli, subprocess_pythonpath, write_reference_png
from _tiny_model_set import build_tiny_model_set
from hunyuan_custom.pipelines.media import video_io
from hunyuan_custom.pipelines.conditioning.prompt_spec import PromptSpec
from hunyuan_custom.pipelines.generate import LocalGenerator, ModelFiles, RuntimeOptions
from hunyuan_custom.pipelines.job import Job


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return build_tiny_model_set(tmp_path_factory.mktemp("models"))


def _argv(models, ref_png, out, **over) -> list[str]:
    flags = {"--size": "64*48", "--num-frames": "9", "--steps": "3", "--seed": "7", **over}
    return local_argv(models, ref_png, out, *[part for item in flags.items() for part in item])


def _start_cli(folder: Path) -> dict:
    """`python -m hunyuan_custom generate ...` as a separate process, on a model set and picture of its own:
    the one CLI run of the suite that proves the entry point works from a checkout (the other CLI tests
    call cli.main, see _cli_run); it runs while the other tests do (tests/_early_run.py)."""
    models = build_tiny_model_set(folder / "models")
    ref_png = write_reference_png(folder / "ref.png")
    env = {**os.environ, "PYTHONPATH": subprocess_pythonpath(folder)}
    return {"args": [sys.executable, "-m", "hunyuan_custom", *_argv(models, ref_png, folder / "video.mp4")], "env": env}


def _main(models, ref_png, out, **over) -> tuple[int, str]:
    """The same command in this process (cli.main), for the checks that need no process of their own:
    starting Python with torch takes seconds per run."""
    run = run_cli(_argv(models, ref_png, out, **over))
    return run.returncode, run.stderr


@pytest.mark.early_run(start=_start_cli)
def test_cli_writes_mp4_with_asked_frames_and_size(early_run):
    assert early_run.returncode == 0, early_run.stderr
    info = video_io.video_info(early_run.folder / "video.mp4")
    assert (info["width"], info["height"], info["frames"], info["fps"]) == (64, 48, 9, 25.0)
    assert "seed 7" in early_run.stderr


@pytest.mark.parametrize("change, message", [
    ({"--size": "60*48"}, "multiples of 16"),
    ({"--num-frames": "8"}, "num_frames"),
    ({"--guidance-scale": "11"}, "guidance_scale"),
])
def test_cli_bad_values_one_line_no_output(models, ref_png, tmp_path, change, message):
    out = tmp_path / "bad.mp4"
    code, err = _main(models, ref_png, out, **change)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_cli_missing_and_broken_files(models, ref_png, tmp_path):
    out = tmp_path / "x.mp4"
    code, err = _main(models, ref_png, out, **{"--vae": str(tmp_path / "nope")})
    assert code != 0 and "Traceback" not in err
    assert "nope" in err.strip().splitlines()[-1]
    broken = tmp_path / "broken.pt"
    broken.write_bytes(models.transformer.read_bytes()[:5000])
    code, err = _main(models, ref_png, out, **{"--transformer": str(broken)})
    assert code != 0 and "Traceback" not in err
    assert "broken.pt" in err.strip().splitlines()[-1]
    not_image = tmp_path / "notimage.png"
    not_image.write_text("hello")
    code, err = _main(models, not_image, out)
    assert code == 2 and "notimage.png" in err
    assert not out.exists()


def test_cli_never_overwrites(models, ref_png, tmp_path):
    out = tmp_path / "mine.mp4"
    out.write_bytes(b"precious")
    code, err = _main(models, ref_png, out)
    assert code == 2 and "already exists" in err
    assert out.read_bytes() == b"precious"


def test_cli_full_disk_exits_1_with_one_line_and_no_file(models, ref_png, tmp_path, monkeypatch):
    """ffmpeg's 'Error writing trailer' after the whole run: a script that trusts the exit code
    must see the failure, and no broken mp4 may stand at --output."""
    tools = tmp_path / "tools"
    tools.mkdir()
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", full_disk_ffmpeg(tools, 1024))
    out = tmp_path / "out" / "video.mp4"
    out.parent.mkdir()
    code, err = _main(models, ref_png, out, **{"--steps": "1"})
    assert code == 1, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: could not write video") and "File too large" in last, err
    assert "Traceback" not in err and err.count("error:") == 1
    assert list(out.parent.iterdir()) == []
    assert "sampling 1 step, seed 7," in err  # not "1 steps"


def test_same_seed_same_video_other_seed_other_video(models):
    gen = LocalGenerator(ModelFiles(str(models.transformer), str(models.vae), str(models.text_encoder),
                                    str(models.text_encoder_2)), RuntimeOptions(device="cpu", dtype="float32"))
    ref = torch.rand(1, 40, 30, 3, generator=torch.Generator().manual_seed(0))
    spec = PromptSpec.create("a cat", "", "cat", ref)
    params = {"size": "64*48", "num_frames": 5, "steps": 2}
    a = gen.generate(Job.from_params(spec, {**params, "seed": 1}))
    b = gen.generate(Job.from_params(spec, {**params, "seed": 1}))
    c = gen.generate(Job.from_params(spec, {**params, "seed": 2}))
    assert a.frames.shape == (5, 48, 64, 3)
    assert torch.equal(a.frames, b.frames)
    assert (a.frames - c.frames).abs().max() > 1e-3
    random_seed = gen.generate(Job.from_params(spec, {**params, "seed": -1}))
    assert 0 <= random_seed.seed <= 9_999_999_999
