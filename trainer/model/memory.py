"""Handing freed heap memory back to the operating system between the phases of a round.

A round's phases (reference pass, steps, held-out scoring, the gate) each free hundreds of MiB of
tensors of their own sizes. glibc keeps freed memory in its arenas, where it counts in the
process's resident memory and is often too fragmented for the next phase's sizes: measured here,
a quarter of a round's peak RSS was such free memory. `malloc_trim` returns the free pages.
Elsewhere than glibc these are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # mallopt parameter numbers, from glibc's malloc.h


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc if libc is not None and hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:
        return None


def release_free_memory() -> None:
    """Return the heap's free pages to the OS (a few ms); call after a phase that freed much."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def limit_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas: every thread (each reply generates on its own) may otherwise get an arena
    of its own, and memory freed in one arena is never reused by another thread's. Whether glibc took it."""
    libc = _glibc()
    if libc is None:
        return False
    if not libc.mallopt(_M_ARENA_MAX, arenas):
        log.warning("mallopt(M_ARENA_MAX) refused")
        return False
    return True
