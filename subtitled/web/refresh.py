"""After a subtitle is written, each configured Jellyfin, Emby or Plex server is asked to
look at that video again, so that the subtitle shows without waiting for the next library
scan. The calls are those the servers document (../shared/integrations.md); a server
that is down never fails the job: the call is tried again with a backoff, the first
failure is logged, and every outcome is counted in /metrics."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from prometheus_client import Counter

from subtitled.config import MediaServer
from subtitled.paths import remote_path
from subtitled.web.access import read_token
from subtitled.web.media_servers import (
    ServerError,
    describe,
    json_of,
    media_updated,
    plex_partial_scan,
    plex_section_for,
    plex_sections,
    send,
)

logger = logging.getLogger(__name__)

_TIMEOUT_SECONDS = 15.0  # for the thread's last call to end at a stop
# The waits before the second, third and fourth tries; then the refresh is given up.
BACKOFF_SECONDS = (5.0, 30.0, 120.0)


def refresh(server: MediaServer, token: str, video: Path) -> None:
    path = remote_path(str(video), server.path_map)
    if server.kind != "plex":
        send(media_updated(server, token, path))
        return
    folder = str(PurePosixPath(path).parent)
    section = plex_section_for(json_of(plex_sections(server, token)), folder)
    if section is None:
        raise ServerError(f"no library section holds {folder} (check path_map)")
    send(plex_partial_scan(server, token, section, folder))


# --- in the background, with retries -------------------------------------------------------


@dataclass(order=True)
class _Due:
    at: float
    order: int
    video: Path = field(compare=False)
    server: MediaServer = field(compare=False)
    tries: int = field(compare=False, default=0)


class Refresher:
    """A thread that tells the servers of each written subtitle, in order, with retries."""

    def __init__(self, servers: tuple[MediaServer, ...], counter: Counter | None) -> None:
        self._servers = [(server, read_token(server.token_file)) for server in servers]
        self._counter = counter
        self._due: list[_Due] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._stop = False
        self._failing: set[str] = set()  # servers whose last refresh failed: logged once
        self._thread = threading.Thread(target=self._run, name="refresh", daemon=True)

    def start(self) -> None:
        if self._servers:
            self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=_TIMEOUT_SECONDS + 5)

    def written(self, video: Path) -> None:
        with self._wake:
            for server, _ in self._servers:
                heapq.heappush(self._due, _Due(time.monotonic(), next(self._order), video,
                                               server))
            self._wake.notify()

    def _run(self) -> None:
        tokens = {describe(server): token for server, token in self._servers}
        while True:
            with self._wake:
                while not self._stop and (not self._due or self._due[0].at > time.monotonic()):
                    self._wake.wait(self._due[0].at - time.monotonic() if self._due else None)
                if self._stop:
                    return
                due = heapq.heappop(self._due)
            self._attempt(due, tokens[describe(due.server)])

    def _attempt(self, due: _Due, token: str) -> None:
        name = describe(due.server)
        try:
            refresh(due.server, token, due.video)
        except Exception as err:  # noqa: BLE001 - whatever it was, the thread goes on
            if due.tries < len(BACKOFF_SECONDS):
                with self._wake:
                    heapq.heappush(self._due, _Due(
                        time.monotonic() + BACKOFF_SECONDS[due.tries], next(self._order),
                        due.video, due.server, due.tries + 1))
                return
            self._count(name, "failed")
            if name not in self._failing:
                self._failing.add(name)
                logger.warning("%s: %s did not refresh after %d tries: %s; the subtitle is "
                               "written, and later failures are only counted in /metrics "
                               "until it answers again", due.video, name, due.tries + 1, err)
            return
        self._count(name, "ok")
        if name in self._failing:
            self._failing.discard(name)
            logger.info("%s answers refreshes again", name)
        logger.debug("%s: %s refreshed", due.video, name)

    def _count(self, name: str, result: str) -> None:
        if self._counter is not None:
            self._counter.labels(name, result).inc()
