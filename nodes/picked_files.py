"""Files picked in an upload combo (Load Reference Image, Load Audio, Load Video): the list the
combo offers, the path a picked name stands for, and the words for a missing or bad pick.

The list is the input folder's files of the node's kind, then the pack's examples of that kind
(example_media.py), which are read from the pack and never copied into the input folder.
"""

from __future__ import annotations

import hashlib
import os

from . import comfy, example_media

# what each kind is called in messages, and ComfyUI's content types its list shows (as core's
# LoadImage, LoadAudio and LoadVideo list them)
NOUNS = {"image": "an image", "audio": "a sound file", "video": "a video"}
CONTENT_TYPES = {"image": ["image"], "audio": ["audio", "video"], "video": ["video"]}
HASH_LIMIT = 64 << 20  # bigger files are told apart by size and time, not read whole on every queue


def choices(kind: str) -> list[str]:
    """The input folder's files of this kind, then the pack's examples (what the templates name)."""
    files = comfy.input_files(CONTENT_TYPES[kind])
    return files + [name for name in example_media.names(kind) if name not in files]


# ComfyUI's annotations, tried in folder_paths.annotated_filepath's order
ANNOTATIONS = (("[output]", "output"), ("[input]", "input"), ("[temp]", "temp"))


def split_annotation(name: str) -> tuple[str, str]:
    """(name inside the folder, folder) of a picked name, split exactly as ComfyUI's
    folder_paths.annotated_filepath splits it: only a LAST '[output]', '[input]' or '[temp]' is an
    annotation, and the character before it (the space) goes with it. Everything else, a ' [y]'
    in a folder name included, is part of the name; no annotation means the input folder."""
    for tag, folder in ANNOTATIONS:
        if name.endswith(tag):
            return name[: -len(tag) - 1], folder
    return name, "input"


def folder_directory(folder: str) -> str:
    return {"input": comfy.input_directory, "output": comfy.output_directory,
            "temp": comfy.temp_directory}[folder]()


def inside(path: str, directory: str) -> bool:
    """Whether `path`, symlinks resolved, lies inside `directory` (symlinks resolved too)."""
    real, base = os.path.realpath(path), os.path.realpath(directory)
    try:
        return os.path.commonpath([real, base]) == base and real != base
    except ValueError:  # different drives (Windows)
        return False


def path_of(name: str, input_name: str, kind: str) -> str:
    """Path of a picked file: a file inside the folder its annotation names (input, output or temp),
    symlinks resolved, or one of the pack's examples. Anything else, an absolute path, a '..' that
    climbs out, a symlink that points out, gets the same 'not found' message as a missing file, so
    that a /prompt request learns nothing about files outside ComfyUI's folders (a node with
    VALIDATE_INPUTS skips ComfyUI's own 'value is in the list' check)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{input_name}: no file picked; upload {NOUNS[kind]} or pick one from ComfyUI's input folder.")
    plain, folder = split_annotation(name)
    directory = folder_directory(folder)
    candidate = os.path.join(directory, plain)
    if "\x00" not in plain and inside(candidate, directory) and os.path.isfile(candidate):
        return os.path.realpath(candidate)
    example = example_media.path_of(name) if folder == "input" else None
    if example is not None:
        return example
    raise ValueError(missing(name, input_name))


def missing(name: str, input_name: str) -> str:
    folder = split_annotation(name)[1] if isinstance(name, str) else "input"
    return (f"{input_name}: file {name!r} not found in ComfyUI's {folder} folder; upload it again or pick "
            "another.")


def validation(name: str | None, input_name: str, kind: str) -> bool | str:
    """A Load node's VALIDATE_INPUTS answer for its one file input: True, or the message (reported
    once, under that input). A linked input (None) is known only at run time and checked there."""
    if name is None:
        return True
    try:
        path_of(name, input_name, kind)
    except ValueError as exc:
        return str(exc)
    return True


def fingerprint(name: str, input_name: str, kind: str) -> str:
    """What IS_CHANGED returns: the content's hash (size and modification time for big files), so
    ComfyUI reruns the node when the file changes; a problem is reported by VALIDATE_INPUTS instead."""
    try:
        path = path_of(name, input_name, kind)
        stat = os.stat(path)
        if stat.st_size > HASH_LIMIT:
            return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    except (OSError, ValueError):
        return f"missing:{name}"
