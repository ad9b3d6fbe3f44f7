"""The liveness model behind the watchdog heartbeat and STATUS=: is the worker making
progress, are the observers alive, can the database be written?"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Health:
    def __init__(self, stall_seconds: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_seconds = stall_seconds
        self._clock = clock
        self._last_beat = clock()
        self._lock = threading.Lock()
        self.activity = "starting"

    def beat(self, activity: str | None = None) -> None:
        """The worker is alive: called from its idle loop and on every bit of progress."""
        with self._lock:
            self._last_beat = self._clock()
            if activity is not None:
                self.activity = activity

    def problems(self, *, observers_alive: bool, database_writable: bool) -> list[str]:
        """Why the service is not healthy; empty when it is."""
        found = []
        with self._lock:
            silent = self._clock() - self._last_beat
        if silent > self.stall_seconds:
            found.append(f"no progress for {silent:.0f} s ({self.activity})")
        if not observers_alive:
            found.append("a folder observer thread died")
        if not database_writable:
            found.append("the job database cannot be written")
        return found
