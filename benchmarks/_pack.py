"""Import this checkout as the package `hunyuan_custom`, whatever its folder is called.

The benchmark scripts run as `python benchmarks/<script>.py` from a checkout (often named
ComfyUI-HunyuanCustom, not importable as is); they import our code through this package name.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def import_pack() -> None:
    if "hunyuan_custom" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location("hunyuan_custom", ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["hunyuan_custom"] = module
    spec.loader.exec_module(module)
