"""Named crash points for tests of crash safety; inert unless SUBTITLED_FAILPOINTS is set.

SUBTITLED_FAILPOINTS="after-claim:poison,before-write" kills the process with SIGKILL at
`after-claim` for files whose name contains "poison", and at every `before-write`;
"hang-in-engine" makes every transcription hang and "observer-dies:name" kills the folder
observer's thread on an event for that name (for the watchdog tests).
"""

from __future__ import annotations

import os
import signal
import threading

ENVIRONMENT = "SUBTITLED_FAILPOINTS"


def _armed(name: str, subject: str) -> bool:
    spec = os.environ.get(ENVIRONMENT)
    if not spec:
        return False
    for item in spec.split(","):
        point, _, match = item.strip().partition(":")
        if point == name and match in subject:
            return True
    return False


def hit(name: str, subject: str = "") -> None:
    """Die at `name` as a crash would: SIGKILL, no clean-up."""
    if _armed(name, subject):
        os.kill(os.getpid(), signal.SIGKILL)


def hang(name: str, subject: str = "") -> None:
    """Block forever at `name` (an engine or ffmpeg that never returns)."""
    if _armed(name, subject):
        threading.Event().wait()


def fail(name: str, subject: str = "") -> None:
    """Raise at `name`, as a bug would (kills a thread that does not catch it)."""
    if _armed(name, subject):
        raise RuntimeError(f"failpoint {name} hit for {subject!r}")
