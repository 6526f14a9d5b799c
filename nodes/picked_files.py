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


def path_of(name: str, input_name: str, kind: str) -> str:
    """Path of a picked file. Names climbing out of the input folder are refused, because a node
    with VALIDATE_INPUTS skips ComfyUI's own 'value is in the list' check."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{input_name}: no file picked; upload {NOUNS[kind]} or pick one from ComfyUI's input folder.")
    plain = name.split(" [")[0] if name.endswith("]") else name  # 'x.png [input]' annotations
    if os.path.isabs(plain) or ".." in plain.replace("\\", "/").split("/"):
        raise ValueError(f"{input_name} = {name!r}: pick a file inside ComfyUI's input folder (no absolute paths "
                         "or '..').")
    return example_media.resolve(plain, comfy.annotated_filepath(name))


def missing(name: str, input_name: str) -> str:
    return f"{input_name}: file {name!r} not found in ComfyUI's input folder; upload it again or pick another."


def existing_path(name: str, input_name: str, kind: str) -> str:
    """path_of(), refused with `missing()` when there is no such file."""
    path = path_of(name, input_name, kind)
    if not os.path.isfile(path):
        raise ValueError(missing(name, input_name))
    return path


def validation(name: str | None, input_name: str, kind: str) -> bool | str:
    """A Load node's VALIDATE_INPUTS answer for its one file input: True, or the message (reported
    once, under that input). A linked input (None) is known only at run time and checked there."""
    if name is None:
        return True
    try:
        existing_path(name, input_name, kind)
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
