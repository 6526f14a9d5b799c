"""What the command line says: its own words (no ComfyUI advice, no class names, no object reprs),
bad input as one `error:` line with exit code 2, and a warning for each option a backend ignores.
Run in-process (cli.main) against the fake WaveSpeed server; the local runs are in
test_generate_local.py."""

from __future__ import annotations

import pytest
import torch

import _fake_wavespeed as fw
from hunyuan_custom.pipelines import cli
from hunyuan_custom.pipelines.media import video_io

KEY = "ws-cli-test-key-3333cccc"


@pytest.fixture(scope="module")
def video_bytes(tmp_path_factory) -> bytes:
    frames = torch.linspace(0, 1, 5).view(5, 1, 1, 1).expand(5, 32, 48, 3).contiguous()
    return video_io.write_video(tmp_path_factory.mktemp("v") / "v.mp4", frames, fps=25).read_bytes()


@pytest.fixture
def fake(video_bytes, monkeypatch, tmp_path):
    with fw.FakeWaveSpeed(KEY, video_bytes) as server:
        fw.use_in_env(server, monkeypatch, KEY, tmp_path / "no-config.json")
        yield server


def remote(capsys, image, out, *extra: str) -> tuple[int, list[str]]:
    code = cli.main(["generate", "--backend", "remote", "--image", str(image), "--prompt", "a block dances",
                     "--size", "832*480", "--output", str(out), *extra])
    return code, capsys.readouterr().err.strip().splitlines()


def assert_one_error_line(lines: list[str]) -> str:
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    line = lines[0]
    for word in ("ComfyUI", "Error:", "object at 0x", "Traceback"):
        assert word not in line, line
    return line


def test_a_missing_image_is_named_with_its_flag(fake, capsys, tmp_path):
    code, lines = remote(capsys, tmp_path / "nope.png", tmp_path / "out.mp4")
    assert code == 2
    assert assert_one_error_line(lines) == f"error: --image: {tmp_path / 'nope.png'}: file not found."
    assert fake.requests == []


def test_a_file_that_is_no_image_shows_no_python_internals(fake, capsys, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("hello, not a picture")
    code, lines = remote(capsys, text, tmp_path / "out.mp4")
    assert code == 2 and "notes.png: not an image" in assert_one_error_line(lines)


def test_a_missing_key_is_bad_input(fake, capsys, tmp_path, ref_png, monkeypatch):
    monkeypatch.delenv("WAVESPEED_API_KEY")
    code, lines = remote(capsys, ref_png, tmp_path / "out.mp4")
    assert code == 2
    line = assert_one_error_line(lines)
    assert "WAVESPEED_API_KEY" in line and "no-config.json" in line
    assert fake.requests == [] and not (tmp_path / "out.mp4").exists()


def test_a_bad_wavespeed_variable_is_bad_input(fake, capsys, tmp_path, ref_png, monkeypatch):
    monkeypatch.setenv("WAVESPEED_TIMEOUT_S", "soon")
    code, lines = remote(capsys, ref_png, tmp_path / "out.mp4")
    assert code == 2 and "WAVESPEED_TIMEOUT_S" in assert_one_error_line(lines)
    assert fake.requests == []


def test_a_failed_job_is_one_line_without_the_class_name(fake, capsys, tmp_path, ref_png):
    fake.faults.submit_failures = [(402, "application/json", '{"code": 402, "message": "Insufficient credits"}')]
    code, lines = remote(capsys, ref_png, tmp_path / "out.mp4")
    assert code == 1
    assert lines[-1].startswith("error: WaveSpeed refused submitting the job: the account has insufficient credits")
    assert "WaveSpeedError" not in lines[-1] and "ComfyUI" not in "\n".join(lines)


def test_remote_names_each_option_it_ignores(fake, capsys, tmp_path, ref_png):
    out = tmp_path / "out.mp4"
    code, lines = remote(capsys, ref_png, out, "--num-frames", "65", "--steps", "20", "--subject", "block",
                         "--offload", "group")
    assert code == 0 and out.is_file()
    warnings = [line for line in lines if line.startswith("warning: ")]
    assert warnings == [
        "warning: the remote backend ignores --num-frames, --steps: WaveSpeed chooses the length and the steps "
        "itself (129 frames at 25 fps)",
        "warning: the remote backend ignores --subject: WaveSpeed's request has no subject word; name the subject "
        "in --prompt instead",
        "warning: the remote backend ignores --offload: they are options of the local backend",
    ]
    assert "subject" not in fake.submits()[0].json


def test_remote_with_defaults_warns_about_nothing(fake, capsys, tmp_path, ref_png):
    code, lines = remote(capsys, ref_png, tmp_path / "out.mp4")
    assert code == 0 and not [line for line in lines if line.startswith("warning")]


def test_local_names_the_remote_option_it_ignores():
    args = cli.build_parser().parse_args(["generate", "--image", "x.png", "--prompt", "p", "--output", "o.mp4",
                                          "--disable-safety-checker", "--steps", "4"])
    assert cli.ignored_options(args) == [
        "the local backend ignores --disable-safety-checker: it is an option of the remote backend (WaveSpeed)"]


def test_an_unexpected_failure_keeps_its_type_and_says_how_to_see_more():
    assert cli._failure_line(KeyError("frames")) == (
        "unexpected failure (KeyError: 'frames'); set HYC_DEBUG=1 for the details")
    assert cli._failure_line(FileNotFoundError(2, "No such file", "/x.mp4")) == "[Errno 2] No such file: '/x.mp4'"


def test_help_shows_every_sampler_default_from_the_schema_and_explains_fp8_mode():
    import argparse

    from hunyuan_custom.pipelines import schema

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["generate"]
    text = " ".join(sub.format_help().split())  # argparse wraps lines anywhere
    for name in ("size", "num_frames", "steps", "guidance_scale", "flow_shift", "subject"):
        assert f"default {schema.FIELDS[name].default}" in text, name
    assert "--fp8-mode {dequantize,keep} for fp8 checkpoints only: keep = store the weights in fp8" in text
    assert "dequantize (default)" in text and "auto (default)" in text
    assert "(default local)" in text and "(reported; default -1)" in text
    assert "--negative-prompt NEGATIVE_PROMPT what to avoid (default: empty" in text


def test_a_refused_connection_fails_fast_and_says_each_retry_once(tmp_path, ref_png, monkeypatch):
    """Nothing listens at WAVESPEED_BASE_URL (a typo, no network): one quick retry, then one error line;
    not a minute of backoff and every retry printed twice."""
    import socket
    import time

    from _cli_run import run_cli

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("WAVESPEED_API_KEY", KEY)
    monkeypatch.setenv("WAVESPEED_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("WAVESPEED_CONFIG_FILE", str(tmp_path / "no-config.json"))
    out = tmp_path / "out.mp4"
    started = time.monotonic()
    run = run_cli(["generate", "--backend", "remote", "--image", ref_png, "--prompt", "a block dances",
                   "--output", out])
    took = time.monotonic() - started
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1, run.stderr
    assert lines[-1].startswith(f"error: Could not reach 127.0.0.1:{port} while uploading the reference image: "
                                "the connection was refused"), lines
    retries = [line for line in lines if "retrying" in line]
    assert len(retries) == 1 and len(lines) <= 4, lines  # uploading..., the retry, the error
    assert took < 10, took
    assert not out.exists()


@pytest.mark.parametrize("size", [(1, 1), (31, 200)])
def test_a_tiny_reference_picture_is_refused_with_its_flag(fake, capsys, tmp_path, size):
    from PIL import Image

    tiny = tmp_path / "dot.png"
    Image.new("RGB", size, (200, 10, 10)).save(tiny)
    code, lines = remote(capsys, tiny, tmp_path / "out.mp4")
    line = assert_one_error_line(lines)
    assert code == 2 and line.startswith(f"error: --image {tiny}: the picture is {size[0]}x{size[1]} pixels; "
                                         "a reference needs at least 32 pixels on each side"), line
    assert fake.calls("api") == []  # refused before anything was sent


def test_ctrl_c_while_torch_is_imported_is_one_line(tmp_path):
    """Ctrl-C in the first second, while the CLI imports torch: one line and exit code 130, no
    traceback. (The interrupt is raised by an import hook when `torch` is imported, as Ctrl-C would.)"""
    import os
    import subprocess
    import sys

    from _cli_run import subprocess_pythonpath

    script = (
        "import sys\n"
        "class CtrlC:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, CtrlC())\n"
        "import runpy\n"
        "sys.argv = ['hunyuan_custom', 'generate', '--image', 'x.png', '--prompt', 'a cat', '--output', 'o.mp4']\n"
        "runpy.run_module('hunyuan_custom', run_name='__main__', alter_sys=True)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=60,
                         env={**os.environ, "PYTHONPATH": subprocess_pythonpath(tmp_path)})
    assert run.returncode == 130, run.stderr
    assert run.stderr.strip().splitlines() == ["error: cancelled; no output was written"], run.stderr
