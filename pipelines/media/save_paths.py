"""Numbered output file names like ComfyUI's savers: <prefix>_00001_.mp4, _00002_, ...

Our own equivalent of ComfyUI's folder_paths.get_save_image_path (pipelines/ never imports
ComfyUI): same prefix variables, same subfolder rule, same counter, so our files sort and
number together with the core savers' files in the same folder.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass


class SavePathError(ValueError):
    """The filename prefix points outside the output folder or is empty."""


@dataclass(frozen=True)
class SaveTarget:
    folder: str  # absolute folder the file goes into
    filename: str  # base name without counter
    counter: int
    subfolder: str  # relative to the output folder ("" for the top level); what the UI's /view wants

    def file_name(self, counter: int | None = None, extension: str = "mp4") -> str:
        return f"{self.filename}_{self.counter if counter is None else counter:05}_.{extension}"


def expand_prefix(prefix: str, width: int = 0, height: int = 0, now: time.struct_time | None = None) -> str:
    """%width%, %height%, %year%, %month%, %day%, %hour%, %minute%, %second% as core does."""
    if "%" not in prefix:
        return prefix
    now = now or time.localtime()
    values = {
        "width": str(width), "height": str(height), "year": str(now.tm_year),
        "month": f"{now.tm_mon:02}", "day": f"{now.tm_mday:02}", "hour": f"{now.tm_hour:02}",
        "minute": f"{now.tm_min:02}", "second": f"{now.tm_sec:02}",
    }
    for name, value in values.items():
        prefix = prefix.replace(f"%{name}%", value)
    return prefix


def _counter_of(name: str, base: str) -> int | None:
    """The number in '<base>_00012_...' (core's rule: digits up to the next '_'), else None."""
    if os.path.normcase(name[: len(base)]) != os.path.normcase(base) or name[len(base): len(base) + 1] != "_":
        return None
    digits = name[len(base) + 1:].split("_")[0]
    return int(digits) if digits.isdigit() else 0


def next_save_target(prefix: str, output_dir: str, width: int = 0, height: int = 0) -> SaveTarget:
    """Folder, base name and the next free counter for `prefix` under `output_dir`.

    The counter is one above the highest existing '<name>_NNNNN_' file. This is not race-safe on
    its own; the writer must still refuse to replace a file (write_video does) and try the next
    counter.
    """
    output_dir = os.path.abspath(output_dir)
    expanded = expand_prefix(prefix, width, height)
    normalised = os.path.normpath(expanded)
    subfolder = os.path.dirname(normalised)
    filename = os.path.basename(normalised)
    if not filename or filename in (".", ".."):
        raise SavePathError(f"filename_prefix {prefix!r} has no file name part; use e.g. 'HunyuanCustom/video'")
    folder = os.path.abspath(os.path.join(output_dir, subfolder))
    if os.path.isabs(expanded) or os.path.commonpath((output_dir, folder)) != output_dir:
        raise SavePathError(
            f"filename_prefix {prefix!r} points outside the output folder {output_dir}; "
            "use a relative prefix such as 'HunyuanCustom/video'"
        )
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        names = []
    numbers = [n for n in (_counter_of(name, filename) for name in names) if n is not None]
    return SaveTarget(folder=folder, filename=filename, counter=max(numbers, default=0) + 1,
                      subfolder=os.path.relpath(folder, output_dir) if folder != output_dir else "")
