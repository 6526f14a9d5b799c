"""A non-editable `pip install .` into a fresh venv carries every module and the data files the pack
serves (workflows, their thumbnails and API twins, the web extension, the example subject pictures).
Offline: the venv reuses this interpreter's packages (torch, setuptools, ...) and installs only the
pack, without build isolation."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import venv
from pathlib import Path

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


def test_a_plain_install_imports_every_module_and_ships_the_data_files(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=lambda _d, names: [n for n in names if n in NOT_SHIPPED
                                                            or n.endswith(".egg-info")])
    env = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env)
    python = env / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                              "--no-build-isolation", "--no-index", str(source)],
                             capture_output=True, text=True, cwd=tmp_path)
    assert install.returncode == 0, install.stderr[-2000:]
    run = subprocess.run([str(python), "-c", CHECK], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["home"].startswith(str(env))  # the installed copy, not this checkout

    expected_modules = set()
    for path in list((ROOT / "pipelines").rglob("*.py")) + list((ROOT / "nodes").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        expected_modules.add(".".join(("hunyuan_custom",) + (parts[:-1] if parts[-1] == "__init__" else parts)))
    assert expected_modules <= set(found["modules"])

    shipped = set(found["files"])
    for pattern in ("workflows/*.json", "workflows/*.jpg", "workflows/api/*.json", "web/*.js", "locales/*/*.json",
                    "assets/examples/*.png", "assets/examples/*.mp3", "assets/examples/*.mp4"):
        wanted = {str(p.relative_to(ROOT)) for p in ROOT.glob(pattern)}
        assert wanted and wanted <= shipped, pattern
