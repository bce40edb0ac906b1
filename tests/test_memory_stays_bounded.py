"""Freed heap memory goes back to the OS between store batches (pipeline/memory.py)."""

import subprocess
import sys

import pytest

from lightocr_ingest.pipeline.memory import release_free_memory

# Big blocks freed between small live ones: what render threads and the embedder leave behind.
# malloc keeps those pages resident (only the top of a heap is trimmed on free); trimming
# must give them back.
FRAGMENTED_HEAP = r"""
import ctypes, json
from lightocr_ingest.pipeline.memory import release_free_memory

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
MB = 1 << 20

def rss_mb():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) // 1024

first = libc.malloc(8 * MB); ctypes.memset(first, 1, 8 * MB); libc.free(first)  # malloc now keeps 2 MB blocks in its heap
blocks, pins = [], []
for _ in range(100):
    block = libc.malloc(2 * MB)
    ctypes.memset(block, 1, 2 * MB)
    blocks.append(block)
    pins.append(libc.malloc(200_000))  # above the small-block caches: it lands right after the block
for block in blocks:
    libc.free(block)
freed = rss_mb()
release_free_memory()
print(json.dumps({"freed": freed, "trimmed": rss_mb()}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or not release_free_memory(), reason="glibc only")
def test_free_pages_left_inside_the_heap_are_given_back():
    out = subprocess.run([sys.executable, "-c", FRAGMENTED_HEAP], capture_output=True, text=True, check=True)
    rss = __import__("json").loads(out.stdout.strip().splitlines()[-1])
    assert rss["freed"] - rss["trimmed"] > 150, rss  # of the 200 MB freed


# A process holding 800 MB starts a child: the child's peak is its own, not its parent's
# (ru_maxrss would say at least 800 MB, which once inflated the benchmark's figure).
PARENT_OF_A_SMALL_CHILD = r"""
import subprocess, sys
held = bytearray(800 << 20)
for i in range(0, len(held), 4096):
    held[i] = 1
print(subprocess.run([sys.executable, "-c",
                      "from lightocr_ingest.pipeline.memory import peak_rss_mb; print(peak_rss_mb())"],
                     capture_output=True, text=True, check=True).stdout)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/status is Linux's")
def test_peak_rss_of_a_child_is_its_own():
    out = subprocess.run([sys.executable, "-c", PARENT_OF_A_SMALL_CHILD], capture_output=True, text=True, check=True)
    assert float(out.stdout.strip()) < 500
