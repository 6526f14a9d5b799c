"""The one adapter to ComfyUI's runtime: progress, cancel, folders, memory.

Everything here is a no-op (or a plain-Python fallback) outside ComfyUI, so the nodes can be
called from tests and scripts. ComfyUI's modules are imported lazily, at call time, and only
by absolute name: inside ComfyUI `comfy`, `folder_paths` and `server` are its own modules.
"""

from __future__ import annotations

import importlib
import logging
import os
import tempfile
from typing import Any


def _comfy_module(name: str) -> Any | None:
    try:
        return importlib.import_module(name)
    except Exception:  # not running inside ComfyUI
        return None


def throw_if_cancelled() -> None:
    """Raise if the user pressed Cancel in ComfyUI; does nothing outside ComfyUI."""
    mm = _comfy_module("comfy.model_management")
    if mm is not None:
        mm.throw_exception_if_processing_interrupted()


def is_cancel(exc: BaseException) -> bool:
    """Whether `exc` is ComfyUI's Cancel (or Ctrl-C), not a failure."""
    if isinstance(exc, KeyboardInterrupt):
        return True
    mm = _comfy_module("comfy.model_management")
    interrupted = getattr(mm, "InterruptProcessingException", None)
    return isinstance(interrupted, type) and isinstance(exc, interrupted)


class Progress:
    """A progress bar (with optional preview image) plus a status line under the node."""

    def __init__(self, total: int, node_id: str | None = None):
        self.total = max(int(total), 1)
        self.node_id = node_id
        utils = _comfy_module("comfy.utils")
        self._bar = utils.ProgressBar(self.total) if utils is not None else None

    def update(self, value: int, preview: Any = None) -> None:
        if self._bar is not None:
            self._bar.update_absolute(int(value), self.total, preview)

    def text(self, message: str) -> None:
        show_text(message, self.node_id)


def show_text(message: str, node_id: str | None) -> None:
    """A status line under the node (nothing outside ComfyUI or without the node's id)."""
    server = _comfy_module("server")
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    send = getattr(instance, "send_progress_text", None)
    if send is not None and node_id is not None:
        send(for_client(message), str(node_id))


def note(message: str, node_id: str | None = None) -> None:
    """Something the user should know about a result (e.g. a clip cut to a limit): in ComfyUI's
    log and under the node."""
    logging.getLogger("hunyuan_custom").warning("HunyuanCustom: %s", message)
    show_text(message, node_id)


async def validate_prompt(prompt: dict, targets: list | None) -> tuple | None:
    """ComfyUI's own queue-time validation of an API prompt (valid, error, good outputs, node errors),
    on a copy (it converts values in place); None outside ComfyUI."""
    import copy
    import sys
    import uuid

    execution = sys.modules.get("execution")  # ComfyUI's, imported before any pack loads
    validate = getattr(execution, "validate_prompt", None)
    if validate is None:
        return None
    return await validate(str(uuid.uuid4()), copy.deepcopy(prompt), targets)


def folder_paths_of(folder: str) -> list[str]:
    """The directories of a model folder: ComfyUI's (extra_model_paths.yaml included), or
    $HYC_MODELS_DIR/<folder> outside ComfyUI (scripts, tests)."""
    fp = _comfy_module("folder_paths")
    if fp is None:
        base = os.environ.get("HYC_MODELS_DIR")
        return [os.path.join(base, folder)] if base else []
    try:
        return list(fp.get_folder_paths(folder))
    except Exception:
        return []


def folder_files(folder: str) -> list[str]:
    """Files in a model folder, relative names with '/' (ComfyUI's list inside ComfyUI)."""
    fp = _comfy_module("folder_paths")
    if fp is not None:
        try:
            return list(fp.get_filename_list(folder))
        except Exception:
            return []
    names: set[str] = set()
    for base in folder_paths_of(folder):
        for dirpath, _dirs, files in os.walk(base, followlinks=True):
            for f in files:
                names.add(os.path.relpath(os.path.join(dirpath, f), base).replace(os.sep, "/"))
    return sorted(names)


def folder_subdirs(folder: str, marker: str = "config.json") -> list[str]:
    """Sub-folders (any depth) of a model folder that contain `marker`, e.g. transformers model
    folders such as upstream's llava-llama-3-8b-v1_1/ (listed with a trailing '/')."""
    names: set[str] = set()
    for base in folder_paths_of(folder):
        for dirpath, _dirs, files in os.walk(base, followlinks=True):
            if marker in files and os.path.abspath(dirpath) != os.path.abspath(base):
                names.add(os.path.relpath(dirpath, base).replace(os.sep, "/") + "/")
    return sorted(names)


def resolve_model_path(folder: str, name: str) -> str:
    """Full path of a file or sub-folder picked from a model-folder list. Inside ComfyUI the name must
    stay inside the folder (a /prompt request names it, and could otherwise point the loader at any
    file on disk: no absolute paths, no '..'); outside it an existing absolute path is taken as it is
    (scripts, tests)."""
    inside_comfyui = _comfy_module("folder_paths") is not None
    parts = name.replace("\\", "/").split("/")
    if inside_comfyui and (os.path.isabs(name) or ".." in parts or (len(name) > 1 and name[1] == ":")):
        raise FileNotFoundError(f"{name!r}: pick a model from the {folder} list (a name inside models/{folder}, "
                                "not a path elsewhere on disk)")
    if os.path.isabs(name) and os.path.exists(name):
        return name
    for base in folder_paths_of(folder):
        candidate = os.path.join(base, name.rstrip("/"))
        if os.path.exists(candidate):
            return candidate
    searched = ", ".join(folder_paths_of(folder)) or "none configured"
    raise FileNotFoundError(f"{name!r} was not found in the {folder} model folder(s) ({searched})")


def tokenizer_folders() -> tuple[str | None, str | None]:
    """(Llama-3 tokenizer folder, CLIP tokenizer folder) for ComfyUI's single-file text encoders,
    which hold no tokenizer: ComfyUI ships them as comfy/text_encoders/llama_tokenizer and
    comfy/sd1_tokenizer. $HYC_LLAVA_TOKENIZER / $HYC_CLIP_TOKENIZER override them (scripts, tests);
    None outside ComfyUI without the override."""
    package = _comfy_module("comfy")
    # ComfyUI's comfy/ has no __init__.py: a namespace package, located by __path__ (no __file__).
    locations = list(getattr(package, "__path__", None) or []) if package is not None else []
    if not locations and getattr(package, "__file__", None):
        locations = [os.path.dirname(package.__file__)]
    base = locations[0] if locations else ""
    llama = os.path.join(base, "text_encoders", "llama_tokenizer") if base else None
    clip = os.path.join(base, "sd1_tokenizer") if base else None
    return (os.environ.get("HYC_LLAVA_TOKENIZER") or llama, os.environ.get("HYC_CLIP_TOKENIZER") or clip)


def input_directory() -> str:
    fp = _comfy_module("folder_paths")
    return fp.get_input_directory() if fp is not None else os.environ.get("HYC_INPUT_DIR", os.getcwd())


def output_directory() -> str:
    fp = _comfy_module("folder_paths")
    return fp.get_output_directory() if fp is not None else os.environ.get("HYC_OUTPUT_DIR", os.path.join(os.getcwd(), "output"))


def temp_directory() -> str:
    fp = _comfy_module("folder_paths")
    return fp.get_temp_directory() if fp is not None else os.path.join(tempfile.gettempdir(), "hunyuan_custom")


def input_files(content_types: list[str] | None = None) -> list[str]:
    fp = _comfy_module("folder_paths")
    directory = input_directory()
    try:
        files = sorted(f for f in os.listdir(directory) if os.path.isfile(os.path.join(directory, f)))
    except OSError:
        return []
    if content_types:
        files = fp.filter_files_content_types(files, content_types) if fp is not None else \
            [f for f in files if _content_type(f) in content_types]
    return files


def _content_type(name: str) -> str | None:
    """'image', 'video', ... from the file name, as ComfyUI's filter_files_content_types decides it."""
    import mimetypes

    if name.lower().endswith(".webp"):  # not in every platform's mimetypes table
        return "image"
    mime, _ = mimetypes.guess_type(name, strict=False)
    return mime.split("/")[0] if mime else None


def torch_device() -> Any:
    import torch

    mm = _comfy_module("comfy.model_management")
    if mm is not None:
        return mm.get_torch_device()
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def free_comfy_models() -> None:
    """Unload ComfyUI's own models before we load 13 B parameters of ours."""
    mm = _comfy_module("comfy.model_management")
    if mm is not None:
        mm.unload_all_models()
        mm.soft_empty_cache()


def empty_cache() -> None:
    mm = _comfy_module("comfy.model_management")
    if mm is not None:
        mm.soft_empty_cache()
        return
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def metadata_disabled() -> bool:
    """ComfyUI's --disable-metadata flag (core savers then write no prompt/workflow)."""
    cli = _comfy_module("comfy.cli_args")
    return bool(getattr(getattr(cli, "args", None), "disable_metadata", False))


def for_client(text: str) -> str:
    """`text` with absolute server paths replaced by the ComfyUI folder they are in ('input/x.png',
    'diffusion_models/model.safetensors', '~/.config/...'): what a node says reaches whoever queued the
    prompt over HTTP, who has no business learning the server's directory layout."""
    import re

    labels: dict[str, str] = {}
    fp = _comfy_module("folder_paths")
    if fp is not None:
        for name, (paths, _extensions) in getattr(fp, "folder_names_and_paths", {}).items():
            for path in paths:
                labels.setdefault(path, name)
        base = getattr(fp, "base_path", None)
        if base:
            labels.setdefault(base, "ComfyUI")
    elif os.environ.get("HYC_MODELS_DIR"):
        labels[os.environ["HYC_MODELS_DIR"]] = "models"
    for path, label in ((os.path.expanduser("~"), "~"),
                        (os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "HunyuanCustom"),
                        (input_directory(), "input"), (output_directory(), "output"), (temp_directory(), "temp")):
        labels[path] = label  # the folders a user picks from win over a same-named other
    pairs: dict[str, str] = {}
    for path, label in labels.items():
        for spelling in {path, os.path.abspath(path), os.path.realpath(path)}:
            if len(spelling) > 1:
                pairs.setdefault(spelling.rstrip("/\\"), label)
    for path in sorted(pairs, key=len, reverse=True):
        text = re.sub(re.escape(path) + r"(?![\w.-])", lambda _m, label=pairs[path]: label, text)
    return text
