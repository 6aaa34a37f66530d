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


# bf16 matmuls of 200 row counts: oneDNN compiles (and by default keeps) a kernel for each.
MANY_SHAPES = """
import sys, torch
from trainer.model.memory import bound_kernel_cache, release_free_memory
if sys.argv[1] != "default":
    bound_kernel_cache(int(sys.argv[1]))
torch.set_num_threads(1)
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
weight = torch.randn(256, 512, dtype=torch.bfloat16)
before = rss()
for rows in range(1, 401, 2):
    torch.randn(rows, 256, dtype=torch.bfloat16) @ weight
release_free_memory()
print(rss() - before)
"""


@pytest.mark.skipif(_glibc() is None or torch.backends.cpu.get_cpu_capability() not in ("AVX512", "AMX"),
                    reason="glibc, and bf16 matmuls through oneDNN (AVX-512 CPUs)")
def test_a_bounded_kernel_cache_keeps_less_memory_across_many_shapes():
    def growth(capacity: str) -> float:
        env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
        done = subprocess.run([sys.executable, "-c", MANY_SHAPES, capacity], env=env, capture_output=True, text=True,
                              timeout=120, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        assert done.returncode == 0, done.stderr[-2000:]
        return float(done.stdout.split()[-1])

    default, bounded = growth("default"), growth("8")
    assert bounded < default - 30, f"oneDNN kept {default:.0f} MiB by default, {bounded:.0f} MiB with 8 kernels"


def test_loading_a_base_bounds_the_kernel_cache_unless_already_set(monkeypatch, tiny_model_dir):
    from trainer.config import ModelSettings
    from trainer.model.base import load_base
    from trainer.model.memory import KERNEL_CACHE_CAPACITY

    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    load_base(ModelSettings(model_id=str(tiny_model_dir), device="cpu"))
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == str(KERNEL_CACHE_CAPACITY)
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "512")  # an operator's own choice stands
    load_base(ModelSettings(model_id=str(tiny_model_dir), device="cpu"))
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "512"
