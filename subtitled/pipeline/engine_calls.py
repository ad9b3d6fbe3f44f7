"""Engine calls run on a thread of their own while the worker watches them, so that the
heartbeat and a stop request never wait for a whole batch.

One batch of large-v3 on a CPU can take minutes inside torch or CTranslate2, which hand
control back to Python only when the call ends (CTranslate2 has no per-step callback).
The worker instead waits beside the call, every half second asking `alive` whether to
go on: the daemon beats its heartbeat when the engine used CPU time since the last look
(a call that is computing, not one that hangs), and raises to abandon the call when a
stop was asked for. The engine's CPU time is that of the calling thread and of the
threads Python does not know (torch's and CTranslate2's workers), read from
/proc/self/task: the daemon's own threads (heartbeat, observers, HTTP) use CPU while an
engine hangs, and must not make it look alive.

An abandoned call runs on until the process exits; `abandoned()` tells the command line
to end the process without waiting for it.

An engine's own exception comes back as an EnvironmentFault (EngineStuck for a sticky CUDA
error), except running out of memory, which the caller handles.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TypeVar

from subtitled import faults
from subtitled.engines.base import is_out_of_memory
from subtitled.errors import EnvironmentFault, SubtitledError

_A = TypeVar("_A")
_T = TypeVar("_T")

Alive = Callable[[bool], None]
"""Called while an engine call runs, with whether the process used CPU time since the last
call; raises (the daemon's Cancelled) to abandon the call."""

POLL_SECONDS = 0.5
_abandoned: list[threading.Thread] = []
_TASKS = Path("/proc/self/task")
_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def engine_cpu_seconds(engine: threading.Thread) -> float:
    """CPU seconds used by the engine's thread and by every thread Python did not start;
    the whole process's where /proc cannot tell (not Linux)."""
    ours = {t.native_id for t in threading.enumerate() if t is not engine}
    try:
        tasks = list(_TASKS.iterdir())
    except OSError:
        return time.process_time()
    ticks = 0
    for task in tasks:
        if int(task.name) in ours:
            continue
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the thread ended meanwhile
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / _TICKS_PER_SECOND


def no_watch(computing: bool) -> None:
    del computing


def call_watched(call: Callable[[], _T], alive: Alive = no_watch) -> _T:
    """`call()` on its own thread, with `alive` asked every POLL_SECONDS until it ends."""
    outcome: list[_T] = []
    failure: list[BaseException] = []
    finished = threading.Event()

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as err:  # noqa: BLE001 - raised again in the waiting thread
            failure.append(err)
        finally:
            finished.set()

    thread = threading.Thread(target=run, name="subtitled-engine", daemon=True)
    thread.start()
    cpu = engine_cpu_seconds(thread)
    try:
        while not finished.wait(POLL_SECONDS):
            now = engine_cpu_seconds(thread)
            alive(now > cpu)
            cpu = now
    except BaseException:
        _abandoned.append(thread)
        raise
    thread.join()
    if failure:
        err = failure[0]
        if isinstance(err, Exception) and not isinstance(err, SubtitledError) and \
                not is_out_of_memory(err):
            # Not ours and not memory (the decoder halves its batch for that): the engine's
            # state or its device, not the file (faults.from_engine_error).
            raise faults.from_engine_error(err, path=None) from err
        raise err
    return outcome[0]


def batch_or_each(call: Callable[[Sequence[_A]], list[_T]], items: Sequence[_A],
                  alive: Alive, release: Callable[[], None], *, what: str,
                  path: Path, stage: str) -> list[_T]:
    """`call` on all of `items` in one batch, watched; out of memory, the cache given back
    (`release`) and each item alone. One item alone that still runs out is the machine's
    fault, not the file's."""
    try:
        return call_watched(partial(call, items), alive)
    except Exception as err:
        if not is_out_of_memory(err):
            raise
        release()
        if len(items) < 2:
            raise EnvironmentFault(f"out of memory even on one {what}; use a smaller model "
                                   "or free the GPU", kind="memory", path=path,
                                   stage=stage) from err
    return [found for item in items for found in batch_or_each(
        call, [item], alive, release, what=what, path=path, stage=stage)]


def abandoned() -> int:
    """Engine calls given up on (for a stop) that are still running."""
    return sum(thread.is_alive() for thread in _abandoned)
