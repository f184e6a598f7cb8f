"""Keep the C heap from holding on to freed memory (glibc only; elsewhere a no-op).

GDAL/OpenJPEG and torch allocate and free many multi-MB buffers from several threads. glibc
gives each thread its own arena and raises its mmap threshold after the first large frees,
so freed decode buffers stay resident: a full Sentinel-2 tile decoded on two threads held
~2.3 GB of RSS for ~0.8 GB of live data. Fewer arenas and a trim after each finished strip
bring the peak back to the live data at a few per cent of decode time (benchmarks/README.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

_M_ARENA_MAX = -8


@functools.cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018 - musl has no malloc_trim
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def limit_arenas(n: int = 2) -> None:
    """At most ``n`` malloc arenas from now on (threads share them)."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(_M_ARENA_MAX, n)


def release() -> None:
    """Return the free pages of every arena to the system."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
