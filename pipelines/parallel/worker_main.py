"""Entry point of one worker process (run by path: `python worker_main.py`), started by workers.py.

Run by path rather than as `-m <package>...`, because inside ComfyUI the pack is imported under its
folder's name (custom_nodes/<any name>), which a new Python cannot import. The pack's folder is
registered here under a private package name; pipelines/ only imports itself relatively.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

PACKAGE = "hyc_worker_pack"


def main() -> None:
    root = Path(__file__).resolve().parents[2]
    package = types.ModuleType(PACKAGE)
    package.__path__ = [str(root)]  # the pack's root __init__ (ComfyUI's nodes) is not run
    sys.modules[PACKAGE] = package
    from hyc_worker_pack.pipelines.parallel.worker_loop import serve

    serve()


if __name__ == "__main__":
    main()
