"""The command line, run in this process: `cli.main(argv)` as `python -m hunyuan_custom` runs it.

A separate `python -m hunyuan_custom` costs seconds per run before it reads its first option
(Python, torch, diffusers and transformers imports), so the CLI tests call `cli.main` here and
keep one real subprocess run (test_generate_local.py) that proves the entry point itself works.

`run_cli` gives what the subprocess gave: the exit code and the text on stdout and stderr. Python
warnings (under Python's default filters, as a plain `python` shows them) and WARNING log records
land in stderr as they would in a terminal, so "exactly one `error:` line" still means one line.
What a run could leave behind for the next test is put back: the text-encoding cache (a fresh
process starts empty), torch's default dtype and thread count, the working directory and the
environment.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from hunyuan_custom.pipelines import cli
from hunyuan_custom.pipelines.text_encoders import cache as text_cache

# Loggers that write to stderr themselves and do not pass records on to the root logger.
_OWN_HANDLER_LOGGERS = ("transformers", "diffusers")


@dataclass(frozen=True)
class CliRun:
    returncode: int
    stdout: str
    stderr: str


class _ToStream(logging.Handler):
    def __init__(self, stream: io.StringIO):
        super().__init__(logging.WARNING)
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        self.stream.write(record.getMessage() + "\n")


def _python_default_warning_filters() -> None:
    """The filters of a plain `python` (no -W, no PYTHONWARNINGS), not pytest's."""
    warnings.resetwarnings()
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter("ignore", category)
    warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")
    warnings.simplefilter("default", append=True)


def run_cli(argv: list[str]) -> CliRun:
    out, err = io.StringIO(), io.StringIO()
    handler = _ToStream(err)
    loggers = [logging.getLogger(), *map(logging.getLogger, _OWN_HANDLER_LOGGERS)]
    cwd, env = os.getcwd(), dict(os.environ)
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    text_cache.DEFAULT_CACHE.clear()
    for logger in loggers:
        logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            _python_default_warning_filters()
            try:
                code = cli.main([str(a) for a in argv])
            except SystemExit as exc:  # argparse's own refusals (usage + message, exit 2)
                code = exc.code if isinstance(exc.code, int) else 1
        for w in caught:
            err.write(warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line))
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        text_cache.DEFAULT_CACHE.clear()
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        torch.set_default_dtype(dtype)
        torch.set_num_threads(threads)
    return CliRun(code, out.getvalue(), err.getvalue())


def local_argv(models, image: Path, output: Path, *extra, transformer: Path | None = None,
               prompt: str = "a red block dances", subject: str = "block") -> list[str]:
    """`generate --backend local` with the four model paths of a tiny model set on the CPU in float32
    (`models`: a _tiny_model_set.TinyModelSet), then `extra`."""
    return ["generate", "--backend", "local", "--image", str(image), "--prompt", prompt, "--subject", subject,
            "--transformer", str(transformer or models.transformer), "--vae", str(models.vae),
            "--text-encoder", str(models.text_encoder), "--text-encoder-2", str(models.text_encoder_2),
            "--device", "cpu", "--dtype", "float32", "--output", str(output), *map(str, extra)]


def write_reference_png(path: Path) -> Path:
    """A small reference picture: a red block on white (upstream's subject-on-white input)."""
    import numpy as np
    from PIL import Image

    arr = np.full((60, 40, 3), 255, np.uint8)
    arr[10:50, 8:32] = (200, 40, 40)
    Image.fromarray(arr).save(path)
    return path


def subprocess_pythonpath(folder: Path) -> str:
    """A PYTHONPATH under which `python -m hunyuan_custom` runs this checkout: a `hunyuan_custom` link
    to it in `folder`, as `pip install -e .` would map it."""
    root = Path(__file__).resolve().parents[1]
    (folder / "hunyuan_custom").symlink_to(root, target_is_directory=True)
    return os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])


def error_line(run: CliRun) -> str:
    """Bad input: exit code 2 and exactly one line on stderr, `error: ...`; returns that line."""
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:"), (run.returncode, run.stderr)
    return lines[0]
