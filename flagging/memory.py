"""Giving memory back after large messages: glibc malloc tuning, through ctypes.

A 15 MiB message passes through a few buffers of its size (the frame, its decoded text, the
pickle to the writer process, the row's bytes). glibc serves such blocks with mmap and returns
them on free, but each free of an mmapped block raises its threshold for the next ones (up to
32 MiB), after which they come from the heap, where freed memory stays: four 15 MiB messages
left the writer process holding 302 MB. A fixed threshold keeps large blocks in mmap, and a
trim after a large message gives back what the heap kept. Elsewhere than glibc both do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time

# mallopt parameters (glibc malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1024 * 1024  # blocks this large are mmapped, and unmapped when freed
# A message at least this large is followed by a trim (a trim costs about a millisecond, a
# tenth of what storing such a message costs).
LARGE = 1024 * 1024

# Between messages of any size, a trim at most this often: the heap of a long-running
# listener otherwise keeps the high-water mark of every thread's arena (a 100,000-input fuzz
# run: +66 MiB without, a few MiB with).
TRIM_INTERVAL = 10.0

_libc: ctypes.CDLL | None = None
_last_trim = 0.0


def _glibc() -> ctypes.CDLL | None:
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name or "libc.so.6")
            libc.malloc_trim.argtypes = [ctypes.c_size_t]
            libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        except (OSError, AttributeError):
            return None
        _libc = libc
    return _libc


def tune() -> None:
    """Fix the mmap threshold (so large blocks always go back to the system when freed) and
    trim the heap when its free top exceeds the same amount. Called once per process."""
    libc = _glibc()
    if libc is None:
        return
    libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    libc.mallopt(_M_TRIM_THRESHOLD, MMAP_THRESHOLD)


def trim() -> None:
    """Return the heap's free memory to the system now."""
    global _last_trim
    libc = _glibc()
    if libc is not None:
        _last_trim = time.monotonic()
        libc.malloc_trim(0)


def after(size: int) -> None:
    """Call once a message of `size` bytes is done with: trims after a large one, and
    otherwise every `TRIM_INTERVAL` seconds (a lost race between threads costs one extra
    trim, nothing more)."""
    if size >= LARGE or time.monotonic() - _last_trim >= TRIM_INTERVAL:
        trim()
