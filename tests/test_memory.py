"""Freed heap memory goes back to the OS when a round asks; malloc arenas stay capped however many threads run."""

import os
import subprocess
import sys
import threading

import pytest
import torch

from trainer.model.memory import _glibc, release_free_memory


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(_glibc() is None, reason="glibc only")
def test_released_memory_leaves_the_resident_set():
    def churn():
        for _ in range(2):  # the second pass lands on the heap: glibc raised its mmap threshold on the first's frees
            tensors = [torch.ones(256 * 1024) for _ in range(200)]  # 1 MiB each
            keep = tensors[-1]  # the heap's top stays in use: trimming only the top would give back nothing
            del tensors
        return keep

    result = []
    worker = threading.Thread(target=lambda: result.append(churn()))  # in a thread's arena, as rounds are
    worker.start()
    worker.join()
    before = _rss_mib()
    release_free_memory()
    assert _rss_mib() < before - 100, "about 200 MiB were free in the heap"


# Eight threads allocate at once; glibc's malloc_info then lists one <heap> per arena in use.
COUNT_ARENAS = """
import ctypes, sys, tempfile, threading
from trainer.model.memory import limit_arenas
cap = int(sys.argv[1])
accepted = limit_arenas(cap) if cap else None
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.fopen.restype = ctypes.c_void_p
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
barrier = threading.Barrier(8)
def allocate():
    libc.malloc(4096)
    barrier.wait()
threads = [threading.Thread(target=allocate) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
path = tempfile.mktemp()
stream = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, stream)
libc.fclose(stream)
print(accepted, open(path).read().count("<heap nr="))
"""


@pytest.mark.skipif(_glibc() is None, reason="glibc only")
def test_arena_cap_holds_for_many_threads():
    def arenas(cap: int) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", COUNT_ARENAS, str(cap)], capture_output=True, text=True,
                             timeout=120, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        assert out.returncode == 0, out.stderr[-2000:]
        accepted, count = out.stdout.split()
        return accepted, int(count)

    accepted, capped = arenas(2)
    assert accepted == "True" and capped <= 2, "glibc took the cap, and eight threads shared two arenas"
    assert arenas(0)[1] > 2, "uncapped, every new thread gets an arena of its own"
