"""Process memory the server gives back: glibc's allocator is told to return large buffers and trimmed when idle.

Without this a burst of image-sized requests leaves the process far above its working set (see
docs/reliability.md); elsewhere than glibc these are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

_libc: Any = None
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter numbers (malloc.h)
MMAP_THRESHOLD_BYTES = 1 << 20


def _glibc() -> Any:
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        _libc = ctypes.CDLL(name) if name else False
    return _libc if _libc and hasattr(_libc, "malloc_trim") and hasattr(_libc, "mallopt") else None


def return_large_buffers() -> None:
    """Serve every allocation of 1 MiB or more with its own mapping, unmapped when freed (glibc only).

    glibc raises this threshold by itself after large frees, and image-sized tensors then come from per-thread
    heaps that keep their freed memory; decoding and encoding run on many worker threads, so a burst would leave
    the process far above its working set.
    """
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


def trim_heap() -> None:
    """Give freed heap memory back to the OS (glibc keeps it in its arenas otherwise); a no-op elsewhere."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
