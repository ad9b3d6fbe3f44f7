"""sd_notify through systemd-python; a no-op outside systemd (no NOTIFY_SOCKET) or without
the module. Also reads WATCHDOG_USEC/WATCHDOG_PID as sd_watchdog_enabled(3) does."""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

logger = logging.getLogger(__name__)


def watchdog_seconds(environ: Mapping[str, str], pid: int) -> float | None:
    """The watchdog interval systemd asks of this process, or None."""
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    owner = environ.get("WATCHDOG_PID")
    if usec <= 0 or (owner and owner.strip() != str(pid)):
        return None
    return usec / 1_000_000


class Notifier:
    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        self._send: Callable[[str], object] | None = None
        if environ.get("NOTIFY_SOCKET"):
            try:
                # systemd-python is imported only under systemd; it is a C extension. By
                # name, because the repository's own systemd/ folder (the units) would
                # otherwise shadow it for the type checker.
                daemon = importlib.import_module("systemd.daemon")
            except ImportError:
                logger.warning("NOTIFY_SOCKET is set but systemd-python is not installed; "
                               "systemd will not hear from subtitled")
            else:
                self._send = daemon.notify
        self.watchdog_seconds = watchdog_seconds(environ, os.getpid()) if self._send else None
        self._last_status = ""

    @property
    def enabled(self) -> bool:
        return self._send is not None

    def send(self, *fields: str) -> None:
        if self._send is not None:
            self._send("\n".join(fields))

    def status(self, text: str) -> None:
        if text != self._last_status:
            self._last_status = text
            self.send(f"STATUS={text}")

    def ready(self, status: str) -> None:
        self._last_status = status
        self.send("READY=1", f"STATUS={status}")

    def reloading(self) -> None:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading configuration")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def watchdog_trigger(self, reason: str) -> None:
        self.send("WATCHDOG=trigger", f"STATUS=fatal: {reason}")

    @contextmanager
    def extending_timeout(self, what: str, step_seconds: float = 30.0) -> Iterator[None]:
        """Keep asking systemd for more start-up time while something slow runs."""
        if self._send is None:
            yield
            return
        done = threading.Event()

        def extend() -> None:
            while True:
                self.send(f"EXTEND_TIMEOUT_USEC={int(step_seconds * 2 * 1_000_000)}",
                          f"STATUS={what}")
                if done.wait(step_seconds):
                    return

        thread = threading.Thread(target=extend, name="extend-timeout", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
