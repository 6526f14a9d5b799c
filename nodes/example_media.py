"""The pack's example media (assets/examples/): two subject pictures (tools/draw_example_subjects.py),
a sung melody and a short video with its mask (tools/make_example_media.py), so that every template
opens without a "missing media" mark and runs once the models are in place.

Our loader nodes list them beside the input folder's files as "hunyuan_custom_examples/<file>" and
read them from the pack's folder: nothing is written into ComfyUI's input folder. A file the user
puts at the same place in the input folder wins. The frontend previews a picked file through
GET /view?type=input&subfolder=hunyuan_custom_examples, which routes.py answers from here when the
input folder has no such file.
"""

from __future__ import annotations

import os
from pathlib import Path

FOLDER = "hunyuan_custom_examples"  # the sub-folder name the examples are listed under
ASSETS = Path(__file__).resolve().parents[1] / "assets" / "examples"
SUFFIXES = {
    "image": (".png", ".jpg", ".jpeg", ".webp"),
    "audio": (".mp3", ".wav", ".flac", ".m4a", ".ogg", ".opus"),
    "video": (".mp4", ".webm", ".mov", ".mkv"),
}


def names(kind: str | None = None) -> list[str]:
    """The list entries of one kind ("image", "audio", "video") or of all, e.g.
    ["hunyuan_custom_examples/dog.png", ...]; empty when the assets folder is missing (a trimmed
    install), so the nodes still load."""
    suffixes = SUFFIXES[kind] if kind else tuple(s for group in SUFFIXES.values() for s in group)
    try:
        files = sorted(p.name for p in ASSETS.iterdir() if p.suffix.lower() in suffixes and p.is_file())
    except OSError:
        return []
    return [f"{FOLDER}/{name}" for name in files]


def path_of(name: str) -> str | None:
    """The pack's file for a list entry (a ' [input]' annotation allowed), or None when `name`
    is not exactly one of ours (so no other name can reach a file through here)."""
    if not isinstance(name, str):
        return None
    plain = name[: -len(" [input]")] if name.endswith(" [input]") else name
    if plain not in names():
        return None
    return str(ASSETS / plain.split("/", 1)[1])


def for_view(query: dict, input_dir: str) -> str | None:
    """The example file a GET /view request asks for, when the input folder does not hold it
    (then ComfyUI's own handler answers)."""
    if query.get("type", "output") != "input":
        return None
    filename = str(query.get("filename", ""))
    subfolder = str(query.get("subfolder", "")).strip("/")
    name = f"{subfolder}/{filename}" if subfolder else filename
    path = path_of(name)
    if path is None or os.path.isfile(os.path.join(input_dir, subfolder, filename)):
        return None
    return path
