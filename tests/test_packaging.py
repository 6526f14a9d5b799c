"""A non-editable `pip install .` into a fresh venv carries every module and the data files the pack
serves (workflows, their thumbnails and API twins, the web extension, the example subject pictures).
Offline: the venv reuses this interpreter's packages (torch, setuptools, ...) and installs only the
pack, without build isolation; this works whether the tests run in a venv or not."""

from __future__ import annotations

import json
import shutil
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOT_SHIPPED = {".git", "tests", "benchmarks", "tools", "__pycache__", "build", "dist", ".venv", ".pytest_cache"}

CHECK = r"""
import importlib, json, pkgutil, sys
from pathlib import Path
import hunyuan_custom
home = Path(hunyuan_custom.__file__).parent
names = [m.name for m in pkgutil.walk_packages(hunyuan_custom.__path__, "hunyuan_custom.")
         if not m.name.endswith("__main__")]
for name in names:
    importlib.import_module(name)
files = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
print(json.dumps({"home": str(home), "modules": names, "files": files}))
"""


# Installs the copy into the venv, then runs CHECK with the venv's Python; exits with the first failure.
INSTALL_AND_CHECK = r"""
import subprocess, sys
python, source, check = sys.argv[1:]
install = [sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", "--no-build-isolation",
           "--no-index", source]
code = subprocess.run(install).returncode
sys.exit(f"pip install failed (exit {code})" if code else subprocess.run([python, "-c", check]).returncode)
"""


def _site_packages(env: Path) -> Path:
    if sys.platform == "win32":
        return env / "Lib" / "site-packages"
    return env / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def _see_this_interpreters_packages(env: Path) -> None:
    """Give the new venv the package folders this interpreter sees (torch, setuptools, ...), after its own.

    Why not `system_site_packages=True`: a venv made from inside a venv is built on the BASE
    interpreter, so it would see the base's packages and not the outer venv's, where a user who set
    up the pack in a venv has them. Plain folder lines in a .pth are only added to sys.path (the
    .pth files inside them are not run), so an editable install of this checkout there stays out
    and the pack comes from the new venv's own site-packages."""
    folders = [p for p in dict.fromkeys(sys.path) if p and Path(p).name in ("site-packages", "dist-packages")
               and Path(p).is_dir()]
    (_site_packages(env) / "_outer_packages.pth").write_text("".join(f"{p}\n" for p in folders), encoding="utf-8")


def _start_install(folder: Path) -> dict:
    source = folder / "src"
    shutil.copytree(ROOT, source, ignore=lambda _d, names: [n for n in names if n in NOT_SHIPPED
                                                            or n.endswith(".egg-info")])
    env = folder / "venv"
    venv.EnvBuilder(with_pip=False).create(env)
    _see_this_interpreters_packages(env)
    python = env / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    return {"args": [sys.executable, "-c", INSTALL_AND_CHECK, str(python), str(source), CHECK], "cwd": folder}


@pytest.mark.early_run(start=_start_install)  # pip and the check run while other tests do (tests/_early_run.py)
def test_a_plain_install_imports_every_module_and_ships_the_data_files(early_run):
    run, env = early_run, early_run.folder / "venv"
    assert run.returncode == 0, run.stderr[-2000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["home"].startswith(str(env))  # the installed copy, not this checkout

    expected_modules = set()
    for path in list((ROOT / "pipelines").rglob("*.py")) + list((ROOT / "nodes").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        expected_modules.add(".".join(("hunyuan_custom",) + (parts[:-1] if parts[-1] == "__init__" else parts)))
    assert expected_modules <= set(found["modules"])

    shipped = set(found["files"])
    for pattern in ("workflows/*.json", "workflows/*.jpg", "workflows/api/*.json", "web/*.js", "web/*.json", "locales/*/*.json",
                    "assets/examples/*.png", "assets/examples/*.mp3", "assets/examples/*.mp4"):
        wanted = {str(p.relative_to(ROOT)) for p in ROOT.glob(pattern)}
        assert wanted and wanted <= shipped, pattern
