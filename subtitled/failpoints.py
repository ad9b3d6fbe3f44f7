"""Named crash points for tests of crash safety; inert unless SUBTITLED_FAILPOINTS is set.

SUBTITLED_FAILPOINTS="after-claim:poison,before-write" kills the process with SIGKILL at
`after-claim` for files whose name contains "poison", and at every `before-write`.

Crash points (SIGKILL), in the order a job meets them: after-claim, mid-extraction (after a
block of audio, ffmpeg still running), mid-transcription (after a chunk is decoded),
after-temp-write (the .srt.tmp written and synced, not renamed), after-write (renamed, the
database not yet told), during-commit (inside the transaction that records the result).
Others: "hang-in-engine" makes a transcription hang, "observer-dies:name" kills the folder
observer's thread on an event for that name, "oom-in-engine" makes the engine's first call
for a file fail as a GPU out of memory does, "slow-load" makes loading the model take 5 s
longer (a cold disk or a large model), "slow-watch" makes setting up the watches take 8 s
longer (a big library on a cold disk), "engine-error" and "sticky-engine-error" make every
engine call for a file raise (the second as a GPU in a sticky CUDA error state).

Faults of the environment: "<ERRNO>-at-<step>:name" raises OSError(<ERRNO>) for files whose
name contains "name" at one of the steps stat (the file's fingerprint), probe (before
ffprobe), read (each block of extracted audio) and write (the subtitle), as a share that
dropped out does: "ENOTCONN-at-read:Movie".

SUBTITLED_FAILPOINTS="@/path/file" reads the list from that file at every check, so a test
can clear a fault while the daemon runs.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
import time
from pathlib import Path

_FIRED: set[tuple[str, str]] = set()

ENVIRONMENT = "SUBTITLED_FAILPOINTS"


def _points() -> list[tuple[str, str]]:
    """The armed points as (point, name to match)."""
    spec = os.environ.get(ENVIRONMENT, "")
    if spec.startswith("@"):
        try:
            spec = Path(spec[1:]).read_text()
        except OSError:
            spec = ""
    found = []
    for item in spec.replace("\n", ",").split(","):
        point, _, match = item.strip().partition(":")
        if point:
            found.append((point, match))
    return found


def _armed(name: str, subject: str) -> bool:
    return any(point == name and match in subject for point, match in _points())


def os_error(step: str, subject: str = "") -> None:
    """Raise OSError at `step` where "<ERRNO>-at-<step>" is armed for `subject`."""
    for point, match in _points():
        code_name, _, at = point.partition("-at-")
        code = getattr(errno, code_name, None)
        if at == step and isinstance(code, int) and match in subject:
            raise OSError(code, os.strerror(code), subject)


def raise_error(name: str, subject: str, message: str) -> None:
    """Raise RuntimeError(message) every time `name` is met for `subject`."""
    if _armed(name, subject):
        raise RuntimeError(message)


def hit(name: str, subject: str = "") -> None:
    """Die at `name` as a crash would: SIGKILL, no clean-up."""
    if _armed(name, subject):
        os.kill(os.getpid(), signal.SIGKILL)


def hang(name: str, subject: str = "") -> None:
    """Block forever at `name` (an engine or ffmpeg that never returns)."""
    if _armed(name, subject):
        threading.Event().wait()


def delay(name: str, seconds: float, subject: str = "") -> None:
    """Sleep at `name` for `seconds` (a slow disk or a slow device)."""
    if _armed(name, subject):
        time.sleep(seconds)


def fail(name: str, subject: str = "") -> None:
    """Raise at `name`, as a bug would (kills a thread that does not catch it)."""
    if _armed(name, subject):
        raise RuntimeError(f"failpoint {name} hit for {subject!r}")


def fail_once(name: str, subject: str, message: str) -> None:
    """Raise RuntimeError(message) the first time `name` is met for `subject`."""
    if _armed(name, subject) and (name, subject) not in _FIRED:
        _FIRED.add((name, subject))
        raise RuntimeError(message)
