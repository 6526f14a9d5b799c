"""Test setup: the pack under test is THIS checkout, importable as `hunyuan_custom`.

Registering the repository root under that name (the way `pip install -e .` maps it) keeps the
tests independent of whatever copy might be installed elsewhere.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

# One torch thread (and the same for the CLI and benchmark subprocesses, through the environment;
# set OMP_NUM_THREADS to choose otherwise). The models here are tiny: a second intra-op thread
# saves little, and when the cores are busy with other work its spin-waits make runs many times
# slower (a test of 1 s took 54 s on a shared 2-core machine).
if "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
PACKAGE = "hunyuan_custom"


def _register_checkout() -> None:
    current = sys.modules.get(PACKAGE)
    if current is not None and Path(getattr(current, "__file__", "")).resolve().parent == ROOT:
        return
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[name]
    spec = importlib.util.spec_from_file_location(PACKAGE, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = module
    spec.loader.exec_module(module)


_register_checkout()


_early_queue: list = []  # early_run tests whose process has not started yet, in the order they run
_early_runs: dict = {}  # node id -> _early_run.Started


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "early_run(start=fn): the test's subprocess runs ahead, while other tests "
                                       "do; the early_run fixture gives its result (tests/_early_run.py)")


def _start_early(item):
    from _early_run import Started

    start = item.get_closest_marker("early_run").kwargs["start"]
    return Started(start, Path(tempfile.mkdtemp(prefix="hyc-early-")))


def _start_next_early() -> None:
    """One early run at a time, so that it has the core the tests leave free to itself."""
    if _early_queue and not any(started.running() for started in _early_runs.values()):
        item = _early_queue.pop(0)
        _early_runs[item.nodeid] = _start_early(item)


def pytest_collection_finish(session) -> None:
    _early_queue[:] = [item for item in session.items if item.get_closest_marker("early_run")]
    _start_next_early()
    _freeze_what_lives()


def pytest_runtest_setup(item) -> None:
    _start_next_early()


def pytest_sessionfinish(session) -> None:
    _early_queue.clear()
    for started in _early_runs.values():  # runs whose test did not run (stopped by -x, ...)
        started.stop()
        shutil.rmtree(started.folder, ignore_errors=True)


@pytest.fixture
def early_run(request):
    """This test's early_run subprocess, finished: an _early_run.EarlyRun (folder, returncode, stdout,
    stderr). Started now if it has not started yet."""
    started = _early_runs.pop(request.node.nodeid, None)
    if started is None:
        _early_queue[:] = [item for item in _early_queue if item.nodeid != request.node.nodeid]
        started = _start_early(request.node)
    request.addfinalizer(lambda: shutil.rmtree(started.folder, ignore_errors=True))
    return started.result()


def _freeze_what_lives() -> None:
    """Move everything alive after collection (torch, diffusers, transformers, the pack: hundreds of
    thousands of objects) out of the garbage collector's sight. Model freeing calls gc.collect()
    (text encoders, the benchmarks), and each call walked all of them: ~0.2 s a call, tens of
    seconds a suite. Those objects live for the whole run anyway; later garbage is collected as usual."""
    gc.collect()
    gc.freeze()


def reference_root() -> Path:
    """Upstream reference numbers: HYC_REFERENCE_DIR if set, else the copy in tests/fixtures.
    (A function too, for tests that parametrise over the files at collection time.)"""
    return Path(os.environ.get("HYC_REFERENCE_DIR") or FIXTURES / "reference")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    path = reference_root()
    if not path.is_dir():
        pytest.fail(f"HYC_REFERENCE_DIR={path} is not a folder of reference fixtures")
    return path


@pytest.fixture(scope="session")
def ref_png(tmp_path_factory) -> Path:
    """A small reference picture on disk: a red block on white (upstream's subject-on-white input)."""
    from _cli_run import write_reference_png

    return write_reference_png(tmp_path_factory.mktemp("img") / "ref.png")
