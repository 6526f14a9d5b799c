"""The pack is imported exactly as ComfyUI imports a custom node folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

EXPECTED_NODES = {"HunyuanCustomLoadImage", "HunyuanCustomPrompt", "HunyuanCustomModelLoader", "HunyuanCustomSampler",
                  "HunyuanCustomWaveSpeed", "HunyuanCustomSaveVideo", "HunyuanCustomAudio", "HunyuanCustomEdit",
                  "HunyuanCustomLoadAudio", "HunyuanCustomLoadVideo", "HunyuanCustomLoRA"}

IMPORT_SCRIPT = textwrap.dedent(
    """
    import importlib.util, json, socket, sys, types

    def refuse(*a, **k):
        raise RuntimeError("network access during import")
    socket.socket = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse

    # ComfyUI's own top-level modules are already imported when packs load.
    sys.modules["nodes"] = types.ModuleType("nodes")
    sys.modules["utils"] = types.ModuleType("utils")

    path, name = sys.argv[1], sys.argv[2]
    spec = importlib.util.spec_from_file_location(name, path + "/__init__.py", submodule_search_locations=[path])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    heavy = sorted(m for m in ("diffusers", "transformers", "imageio_ffmpeg", "requests") if m in sys.modules)
    print(json.dumps({
        "nodes": sorted(module.NODE_CLASS_MAPPINGS),
        "display": sorted(module.NODE_DISPLAY_NAME_MAPPINGS),
        "web": module.WEB_DIRECTORY,
        "heavy": heavy,
    }))
    """
)


def _snapshot(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*") if "__pycache__" not in p.parts and ".git" not in p.parts}


def test_pack_imports_as_comfyui_does(tmp_path):
    custom_nodes = tmp_path / "custom_nodes"
    custom_nodes.mkdir()
    folder = custom_nodes / "ComfyUI-HunyuanCustom-main"
    folder.symlink_to(ROOT, target_is_directory=True)
    home = tmp_path / "home"
    home.mkdir()
    before = _snapshot(ROOT)
    env = {**os.environ, "HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": ""}
    env.pop("WAVESPEED_API_KEY", None)
    run = subprocess.run(
        [sys.executable, "-c", IMPORT_SCRIPT, str(folder), "ComfyUI-HunyuanCustom-main"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    info = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(info["nodes"]) == EXPECTED_NODES
    assert set(info["display"]) == set(info["nodes"])
    assert info["web"] == "./web" and (ROOT / "web").is_dir()
    # Heavy libraries are imported when a node runs, not when ComfyUI starts.
    assert info["heavy"] == []
    # Nothing written: not in the pack, not in the working directory, not in HOME.
    assert _snapshot(ROOT) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["custom_nodes", "home"]
    assert list(home.iterdir()) == []


def test_no_absolute_imports_of_our_own_packages():
    offenders = []
    for path in list(ROOT.glob("*.py")) + list(ROOT.glob("nodes/*.py")) + list(ROOT.glob("pipelines/**/*.py")):
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith(("import nodes", "from nodes", "import pipelines", "from pipelines",
                                    "import hunyuan_custom", "from hunyuan_custom")):
                offenders.append(f"{path.relative_to(ROOT)}:{lineno}: {stripped}")
    assert offenders == []


def test_pyproject_declares_comfy_metadata_and_no_torchvision():
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = data["project"]["dependencies"]
    assert "torch" in deps  # unpinned
    assert not any(d.startswith(("torchvision", "torchaudio")) for d in deps)
    comfy = data["tool"]["comfy"]
    assert comfy["PublisherId"] and comfy["DisplayName"] and comfy["requires-comfyui"]
    reqs = (ROOT / "requirements.txt").read_text()
    assert "torch" not in "".join(l for l in reqs.splitlines() if not l.startswith("#"))
