"""Notifications through Apprise (notifications.urls_file): a file given up on, a pause for
a fault of the environment and its end, and if asked each subtitle written. They are sent
from a thread of their own, in order: a service that is down, slow or refusing is logged
and never holds up or fails the work."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from subtitled.config import NotificationSettings
from subtitled.errors import ConfigError
from subtitled.web.access import secret_file

logger = logging.getLogger(__name__)

# The name to give the URL file in the unit's LoadCredential=.
CREDENTIAL_NAME = "subtitled-notify-urls"
# Messages waiting while a service is slow; past this, new ones are dropped (and logged).
_WAITING = 100


def read_urls(path: Path) -> list[str]:
    """The file's URLs, one a line (blank lines and # comments left out), each one that
    Apprise knows; a ConfigError names the line of one it does not (not the URL: it may
    hold a token)."""
    import apprise

    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read the notification URLs from {path}: "
                          f"{getattr(err, 'strerror', None) or err}",
                          stage="notifications") from err
    urls = []
    for number, line in enumerate(lines, 1):
        url = line.strip()
        if not url or url.startswith("#"):
            continue
        if not apprise.Apprise().add(url):
            scheme = url.split("://", 1)[0] if "://" in url else "no scheme"
            raise ConfigError(f"{path}, line {number}: Apprise does not understand this URL "
                              f"({scheme}://...); see its list of services",
                              stage="notifications")
        urls.append(url)
    return urls


class Notifications:
    def __init__(self, urls: Sequence[str], events: Iterable[str]) -> None:
        self.events = frozenset(events)
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue(maxsize=_WAITING)
        self._apprise: Any = None
        self._dropped = False
        if urls:
            import apprise

            self._apprise = apprise.Apprise()
            for url in urls:
                self._apprise.add(url)
            threading.Thread(target=self._run, name="notifications", daemon=True).start()

    @classmethod
    def of(cls, settings: NotificationSettings,
           environ: Mapping[str, str] = os.environ) -> Notifications:
        path = secret_file(settings.urls_file, CREDENTIAL_NAME, environ)
        return cls(read_urls(path) if path is not None else [], settings.events)

    def send(self, event: str, title: str, body: str) -> None:
        """Queue a message, if its event is one asked for; never blocks, never raises."""
        if self._apprise is None or event not in self.events:
            return
        try:
            self._queue.put_nowait((title, body))
        except queue.Full:
            if not self._dropped:
                logger.warning("notifications are not going out fast enough; %d wait, and "
                               "new ones are dropped until they do", _WAITING)
                self._dropped = True

    def close(self) -> None:
        """The thread ends after the messages already queued (it does not hold up the
        process's exit)."""
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)

    def _run(self) -> None:
        while (message := self._queue.get()) is not None:
            title, body = message
            try:
                delivered = bool(self._apprise.notify(title=title, body=body))
            except Exception as err:  # noqa: BLE001 - a notifier never stops the daemon
                logger.warning("notification %r failed: %s: %s", title, type(err).__name__,
                               err)
                continue
            if not delivered:
                logger.warning("notification %r did not reach every service (Apprise logs "
                               "why)", title)
            self._dropped = False
