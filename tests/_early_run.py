"""Subprocess runs that start ahead of their test and are collected by it.

The few tests that must run a real process (the CLI entry point, the benchmark scripts as scripts,
a plain pip install) spend seconds in it, mostly importing torch, diffusers and transformers. The
tests themselves use one torch thread (conftest.py), so on a 2-core machine the other core is
free: the process of a test marked `@pytest.mark.early_run(start=fn)` runs there ahead of its test,
while other tests run (conftest.py starts the first when collection ends and the next, in test
order, once it has finished: one at a time, so they never take the tests' core); the test's
`early_run` fixture waits for its process and gives its result. The command, its inputs and what
the test asserts are the same as a run in the test.

`fn(folder)` prepares the inputs in an empty folder of its own and returns subprocess.Popen's
keyword arguments (`args`, and `cwd` / `env` where needed); stdout and stderr go to files there,
so a talkative process never blocks on a full pipe.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

Start = Callable[[Path], dict[str, Any]]
TIMEOUT_S = 600


@dataclass(frozen=True)
class EarlyRun:
    folder: Path
    returncode: int
    stdout: str
    stderr: str


class Started:
    def __init__(self, start: Start, folder: Path):
        self.folder = folder
        self._out, self._err = folder / "early_stdout.txt", folder / "early_stderr.txt"
        self.process: subprocess.Popen | None = None
        self.error: BaseException | None = None  # raised in the test, not at collection
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # progress bars of model writers, at collection
                kwargs = start(folder)
            with self._out.open("w") as out, self._err.open("w") as err:
                self.process = subprocess.Popen(stdout=out, stderr=err, stdin=subprocess.DEVNULL, text=True, **kwargs)
        except Exception as exc:
            self.error = exc

    def result(self) -> EarlyRun:
        if self.error is not None:
            raise self.error
        try:
            code = self.process.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        return EarlyRun(self.folder, code, self._out.read_text(), self._err.read_text())

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
