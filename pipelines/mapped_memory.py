"""Give back the resident pages of a memory-mapped checkpoint tensor once it has been converted.

Why: when a tensor is converted at load (bf16 -> fp16/fp32, fp8 dequantisation), the file pages read
for it stay in the process's resident set until the whole mapping goes away, i.e. until loading
ends, so peak RSS becomes file + converted model. Those pages are clean copies of the file; telling
the kernel we no longer need them (madvise MADV_DONTNEED) drops them, and touching them again would
simply re-read the file. This is only done for ranges that /proc/self/maps shows to be a mapping of
the checkpoint file itself, never for anonymous memory, and only on Linux; elsewhere it is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
import sys
from pathlib import Path

import torch

_MADV_DONTNEED = 4  # Linux
_PAGE = mmap.PAGESIZE


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        return libc
    except (OSError, AttributeError):
        return None


class FileMappings:
    """Address ranges where files are mapped into this process (read once from /proc/self/maps)."""

    def __init__(self, files: list[Path]) -> None:
        self._libc = _libc()
        wanted = {os.path.realpath(f) for f in files}
        self.ranges: list[tuple[int, int]] = []
        if self._libc is None:
            return
        try:
            lines = Path("/proc/self/maps").read_text().splitlines()
        except OSError:
            return
        for line in lines:
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and parts[5].strip() in wanted:
                start, end = (int(x, 16) for x in parts[0].split("-"))
                self.ranges.append((start, end))

    def release(self, tensor: torch.Tensor) -> int:
        """Drop the resident pages lying wholly inside `tensor` and a mapping of the files; bytes dropped."""
        if not self.ranges or tensor.device.type != "cpu" or not tensor.is_contiguous():
            return 0
        start = tensor.data_ptr()
        end = start + tensor.numel() * tensor.element_size()
        dropped = 0
        for map_start, map_end in self.ranges:
            lo = -(-max(start, map_start) // _PAGE) * _PAGE  # round up: never touch a neighbour's page
            hi = min(end, map_end) // _PAGE * _PAGE
            if hi > lo and self._libc.madvise(ctypes.c_void_p(lo), hi - lo, _MADV_DONTNEED) == 0:
                dropped += hi - lo
        return dropped
