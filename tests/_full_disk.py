"""A full disk for ffmpeg, without root or a real small filesystem.

`full_disk_ffmpeg` writes a wrapper that runs imageio-ffmpeg's own ffmpeg with a file size limit
(RLIMIT_FSIZE) and SIGXFSZ ignored: a write past the limit then fails with EFBIG ("File too
large"), the way a full disk fails one with ENOSPC, and ffmpeg reports it as it would a full disk
("Error writing trailer: ..."). Point IMAGEIO_FFMPEG_EXE at it (imageio-ffmpeg reads that variable
on every call) and every ffmpeg the pack starts meets the full disk.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import imageio_ffmpeg

_WRAPPER = '''#!{python}
import os, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write (EFBIG) instead of killing ffmpeg
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
os.execv({ffmpeg!r}, [{ffmpeg!r}, *sys.argv[1:]])
'''


def full_disk_ffmpeg(folder: Path, limit_bytes: int = 1024) -> str:
    """The path of an ffmpeg whose output files cannot grow past `limit_bytes`."""
    real = imageio_ffmpeg.get_ffmpeg_exe()
    wrapper = Path(folder) / "ffmpeg-full-disk"
    wrapper.write_text(_WRAPPER.format(python=sys.executable, limit=int(limit_bytes), ffmpeg=real))
    os.chmod(wrapper, 0o755)
    return str(wrapper)
