"""Freed heap memory goes back to the OS when a round asks."""

import os
import threading

import pytest
import torch

from trainer.memory import _glibc, limit_arenas, release_free_memory


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
    limit_arenas(2)  # accepted by glibc (no warning path), and later threads still allocate
    assert torch.ones(10).sum() == 10
