"""sd_notify(3): through systemd-python where it is installed, and otherwise by speaking its
datagram protocol directly (one `sendto` on `$NOTIFY_SOCKET`), so that systemd always hears
READY=1 under a Type=notify unit. A no-op outside systemd (no NOTIFY_SOCKET). Also reads
WATCHDOG_USEC/WATCHDOG_PID as sd_watchdog_enabled(3) does."""

from __future__ import annotations

import importlib
import logging
import os
import socket
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


def library_sender() -> Callable[[str], object] | None:
    """systemd-python's sd_notify, or None where it is not installed. It is a C extension
    that needs a compiler and libsystemd to build, so a plain install often lacks it."""
    try:
        # By name, because the repository's own systemd/ folder (the units) would otherwise
        # shadow it for the type checker.
        daemon = importlib.import_module("systemd.daemon")
    except ImportError:
        return None
    send: Callable[[str], object] = daemon.notify
    return send


def datagram_sender(address: str) -> Callable[[str], object]:
    """sd_notify's protocol itself: each message one datagram to the socket systemd named,
    a path or, after `@`, a name in the abstract namespace. Errors are dropped, as
    sd_notify drops them: the next message tries again."""
    target = "\0" + address[1:] if address.startswith("@") else address
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    failed: list[str] = []

    def send(message: str) -> bool:
        try:
            sock.sendto(message.encode(), target)
        except OSError as err:
            if not failed:  # once: a watchdog ping every few seconds must not flood the log
                failed.append(str(err))
                logger.warning("cannot notify systemd on %s: %s", address, err.strerror)
            return False
        return True

    return send


class Notifier:
    def __init__(self, environ: Mapping[str, str] = os.environ,
                 library: Callable[[], Callable[[str], object] | None] = library_sender
                 ) -> None:
        self._send: Callable[[str], object] | None = None
        address = environ.get("NOTIFY_SOCKET", "")
        if address.startswith(("/", "@")):
            self._send = library()
            if self._send is None:
                logger.info("systemd-python is not installed; notifying systemd over %s "
                            "directly", address)
                self._send = datagram_sender(address)
        elif address:  # vsock: and the like, which only libsystemd speaks
            self._send = library()
            if self._send is None:
                logger.error("NOTIFY_SOCKET=%s needs systemd-python (pip install "
                             "systemd-python); systemd will not hear that subtitled is "
                             "ready", address)
        self.watchdog_seconds = watchdog_seconds(environ, os.getpid()) if self._send else None
        self._last_status = ""

    @property
    def enabled(self) -> bool:
        return self._send is not None

    def send(self, *fields: str) -> None:
        """Each field on one line, as valid UTF-8: a file name in STATUS= may hold a newline
        (which would start a field of its own) or bytes that are not UTF-8."""
        if self._send is not None:
            clean = (f.replace("\n", " ").encode("utf-8", "replace").decode() for f in fields)
            self._send("\n".join(clean))

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
