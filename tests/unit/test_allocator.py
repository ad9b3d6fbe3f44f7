"""The allocator policy, measured in a fresh interpreter (it is process-wide): page faults
of a large block allocated, written and freed again and again, as an encoder pass does
from a thread of its own, and the memory handed back when released."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")

_SCRIPT = r"""
import ctypes, json, resource, sys, threading
from subtitled import allocator

def resident_thread():  # a thread that allocates and stays, as the daemon's HTTP server
    threading.Thread(target=lambda: [bytearray(4096) for _ in range(100)] and
                     threading.Event().wait(), daemon=True).start()

if sys.argv[1] == "late":
    resident_thread()
kept = allocator.keep_freed_memory() if sys.argv[1] != "plain" else None
if sys.argv[1] == "first":
    resident_thread()
libc = ctypes.CDLL(None)
libc.prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE: faults counted in 4 KiB pages everywhere
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
size = 96 << 20  # over glibc's largest mmap threshold and its 64 MB thread heaps
faults = []

def passes():
    for n in range(4):
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        block = libc.malloc(size)
        ctypes.memset(block, 1, size)
        libc.free(block)
        faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

for _ in range(1 if sys.argv[1] in ("plain", "keep") else 4):
    worker = threading.Thread(target=passes)  # each engine call has a thread of its own
    worker.start()
    worker.join()
held = rss_mib()
allocator.release_freed_memory()
print(json.dumps({"kept": kept, "faults": faults, "held": held, "released": rss_mib()}))
"""


def _run(mode: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", _SCRIPT, mode], capture_output=True,
                          text=True, check=True)
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_freed_blocks_are_reused_instead_of_faulted_in_again() -> None:
    plain, kept = _run("plain"), _run("keep")
    assert kept["kept"] is True
    plain_faults, kept_faults = plain["faults"], kept["faults"]
    assert isinstance(plain_faults, list) and isinstance(kept_faults, list)
    pages = (96 << 20) // 4096
    # The default: every pass maps the block afresh and the kernel zeroes every page.
    assert min(plain_faults[1:]) > pages // 2
    # The policy: the first pass faults the heap in, the next ones reuse it.
    assert max(kept_faults[1:]) < pages // 20


def test_the_memory_kept_goes_back_to_the_system_when_released() -> None:
    kept = _run("keep")
    held, released = kept["held"], kept["released"]
    assert isinstance(held, float) and isinstance(released, float)
    assert held - released > 64  # MiB of the 96 MiB block, kept until released


def test_the_policy_holds_only_if_taken_before_any_thread_allocates() -> None:
    """A thread that allocated before the policy keeps a heap of its own, and glibc hands
    it to later threads in turn: their passes fault every page in again. Taken first (as
    `subtitled run` and `transcribe` do, before their threads), every later thread
    shares the one heap."""
    pages = (96 << 20) // 4096
    late, first = _run("late"), _run("first")
    late_faults, first_faults = late["faults"], first["faults"]
    assert isinstance(late_faults, list) and isinstance(first_faults, list)
    assert max(late_faults[1:]) > pages // 2
    assert max(first_faults[1:]) < pages // 20
