"""Keep transformers' load reports and progress bars out of the console while our encoders load
(ComfyUI shows our own progress). Its own module: both loaders (folders and single files) use it."""

from __future__ import annotations

import contextlib
from typing import Iterator


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Keep transformers' per-key load reports (CLIPModel checkpoint into CLIPTextModel) and
    progress bars out of the console; ComfyUI shows our own progress."""
    from transformers.utils import logging as tlogging

    previous = tlogging.get_verbosity()
    bars = tlogging.is_progress_bar_enabled()
    tlogging.set_verbosity_error()
    tlogging.disable_progress_bar()
    try:
        yield
    finally:
        tlogging.set_verbosity(previous)
        if bars:
            tlogging.enable_progress_bar()
