"""The layout rules of README's Development section, checked on the source (every import statement,
at module level or inside functions): pipelines/ never reaches ComfyUI or nodes/, has no import cycle,
and keeps at its top only the modules several parts share."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIPELINES = ROOT / "pipelines"
COMFYUI_MODULES = {"comfy", "comfy_api", "comfy_extras", "comfy_execution", "folder_paths", "server", "execution",
                   "nodes", "latent_preview", "node_helpers"}
SHARED_TOP_LEVEL = {"__init__", "cli", "generate", "job", "mapped_memory", "offload_policy", "sampling", "scheduler",
                    "schema", "weights_io", "windows"}
SUB_PACKAGES = {"audio_encoders", "conditioning", "diffusion_models", "media", "parallel", "text_encoders", "vae",
                "wavespeed"}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[int, str, int]]:
    """(line, module, level) of every import in the file; `from . import x` gives '<pkg>.x' candidates."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level and not node.module:
                found += [(node.lineno, alias.name, node.level) for alias in node.names]
            else:
                found.append((node.lineno, base, node.level))
                found += [(node.lineno, f"{base}.{alias.name}", node.level) for alias in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value, 0))
    return found


def resolve(path: Path, module: str, level: int, root: Path = ROOT) -> str:
    """An import's absolute name inside the repository ('pipelines.vae.model'), or as written."""
    if not level:
        return module
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    package = package[:len(package) - (level - 1)]
    return ".".join(package + ([module] if module else []))


def pipeline_files(root: Path = ROOT) -> list[Path]:
    return sorted(p for p in (root / "pipelines").rglob("*.py") if "__pycache__" not in p.parts)


def import_cycles(root: Path = ROOT) -> list[str]:
    """Every cycle in the import graph of root/pipelines (module-level and function-level imports)."""
    modules = {module_name(p, root): p for p in pipeline_files(root)}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for _line, module, level in imports_of(path):
            target = resolve(path, module, level, root)
            while target and target not in modules:  # `from .x import name` -> module x
                target = target.rpartition(".")[0]
            if target and target != name:
                deps.add(target)
        graph[name] = deps
    cycles: list[str] = []
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_the_layout_is_what_the_readme_says():
    top = {p.stem for p in PIPELINES.glob("*.py")}
    packages = {p.name for p in PIPELINES.iterdir() if (p / "__init__.py").is_file()}
    assert top == SHARED_TOP_LEVEL, "a module at pipelines/'s top that is not shared belongs in a sub-package"
    assert packages == SUB_PACKAGES
    assert len(pipeline_files()) > 40  # the checks below see every sub-folder


def test_pipelines_never_import_comfyui_or_nodes():
    offenders = []
    for path in pipeline_files():
        for line, module, level in imports_of(path):
            name = resolve(path, module, level)
            first = name.split(".")[0]
            if (not level and first in COMFYUI_MODULES) or name.startswith("nodes") or ".nodes" in f".{name}":
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {module}")
    assert offenders == []


def test_no_import_cycle_under_pipelines():
    assert import_cycles() == []


def test_the_cycle_check_sees_an_import_inside_a_function(tmp_path):
    package = tmp_path / "pipelines" / "pkg"
    package.mkdir(parents=True)
    for init in (tmp_path / "pipelines" / "__init__.py", package / "__init__.py"):
        init.write_text("")
    (package / "a.py").write_text("from .b import x\n")
    (package / "b.py").write_text("x = 1\n\n\ndef late():\n    from . import a\n    return a\n")
    assert import_cycles(tmp_path) == ["pipelines.pkg.a -> pipelines.pkg.b -> pipelines.pkg.a"]
    (package / "b.py").write_text("x = 1\n")
    assert import_cycles(tmp_path) == []
