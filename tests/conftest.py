"""Test setup: the pack under test is THIS checkout, importable as `hunyuan_custom`.

Registering the repository root under that name (the way `pip install -e .` maps it) keeps the
tests independent of whatever copy might be installed elsewhere.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import sys
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


def pytest_collection_finish(session) -> None:
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


@pytest.fixture
def pack_pythonpath(tmp_path_factory) -> str:
    """A PYTHONPATH under which `python -m hunyuan_custom` runs this checkout (for CLI tests)."""
    base = tmp_path_factory.mktemp("pypath")
    (base / PACKAGE).symlink_to(ROOT, target_is_directory=True)
    return os.pathsep.join([str(base), os.environ.get("PYTHONPATH", "")])


@pytest.fixture(scope="session")
def ref_png(tmp_path_factory) -> Path:
    """A small reference picture on disk: a red block on white (upstream's subject-on-white input)."""
    import numpy as np
    from PIL import Image

    arr = np.full((60, 40, 3), 255, np.uint8)
    arr[10:50, 8:32] = (200, 40, 40)
    path = tmp_path_factory.mktemp("img") / "ref.png"
    Image.fromarray(arr).save(path)
    return path
