"""Run a command under a memory limit, as `MemoryMax=` in a unit imposes one: a child cgroup
of this process's own (v2 memory.max, or v1 memory.limit_in_bytes), or RLIMIT_AS where no
cgroup can be made (not root, or a v2 tree without the memory controller delegated)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

CGROUPS = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Limit:
    prefix: list[str]  # put before a command to run it under the limit
    kind: str  # "cgroup v1", "cgroup v2" or "RLIMIT_AS"
    folder: Path | None  # the cgroup (bench.memory reads its OOM count)


def _own_cgroup() -> tuple[str, Path] | None:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return "cgroup v1", CGROUPS / "memory" / path.lstrip("/")
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            base = CGROUPS / "unified" if (CGROUPS / "unified").is_dir() else CGROUPS
            folder = base / line[3:].lstrip("/")
            if "memory" in (folder / "cgroup.subtree_control").read_text(errors="ignore"):
                return "cgroup v2", folder
    return None


def _remove(cgroup: Path) -> None:
    """A cgroup goes with rmdir once its processes have ended: an ffmpeg whose reader the
    kernel killed may still be on its way out."""
    deadline = time.monotonic() + 30
    while True:
        for pid in (cgroup / "cgroup.procs").read_text().split():
            with suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        try:
            cgroup.rmdir()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextmanager
def memory_limit(limit_bytes: int) -> Iterator[Limit]:
    own = _own_cgroup() if os.geteuid() == 0 else None
    child = None
    if own is not None:
        kind, parent = own
        child = parent / f"subtitled-test-{os.getpid()}"
        try:
            child.mkdir()
            name = "memory.limit_in_bytes" if kind == "cgroup v1" else "memory.max"
            (child / name).write_text(str(limit_bytes))
        except OSError:
            child = None
    try:
        if child is None:
            yield Limit(["prlimit", f"--as={limit_bytes}"], "RLIMIT_AS", None)
        else:
            enter = f'echo $$ > {child / "cgroup.procs"} && exec "$@"'
            yield Limit(["sh", "-c", enter, "sh"], kind, child)
    finally:
        if child is not None:
            _remove(child)
