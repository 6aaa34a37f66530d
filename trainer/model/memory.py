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
import os

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # mallopt parameter numbers, from glibc's malloc.h

# Compiled oneDNN kernels (torch's CPU matmuls) kept, one per distinct shape (oneDNN's default: 1024). A round's
# rows, the gate's chunks and the decode loop's batches keep bringing new shapes, so the default cache fills and
# stays full: measured here, the resting RSS after rounds was ~250 MiB lower with a small cache (one round of 24
# votes: 1580 vs 1824-1839 MiB), and 100 shapes of training-like matmuls kept 263 MiB with the default against
# 142 MiB with 64, with no speed difference beyond this machine's noise. 64 holds one training step's shapes
# (about 20) and the decode loop's.
KERNEL_CACHE_CAPACITY = 64


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc if libc is not None and hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:
        return None


def bound_kernel_cache(capacity: int = KERNEL_CACHE_CAPACITY) -> None:
    """Cap oneDNN's kernel cache at `capacity` kernels unless ONEDNN_PRIMITIVE_CACHE_CAPACITY is set already.
    oneDNN reads it when it compiles its first kernel: call before the process's first matmul."""
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(capacity))


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
