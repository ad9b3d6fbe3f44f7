"""When a file is complete: not a copier's temporary name, and unchanged for a quiet period."""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from subtitled import faults
from subtitled.config import ScanSettings
from subtitled.store import Fingerprint

logger = logging.getLogger(__name__)

# Names that copiers, browsers and download clients write to before the final rename.
_TEMPORARY_SUFFIXES = (".part", ".tmp", ".!qb", ".crdownload", ".partial~", ".partial",
                       ".download", ".filepart", ".temp", ".~tmp~")


def is_temporary(path: Path) -> bool:
    """Hidden files (rsync writes `.name.XXXXXX`), and the usual temporary suffixes."""
    name = path.name.lower()
    return name.startswith(".") or name.endswith(_TEMPORARY_SUFFIXES) or ".~tmp~" in name \
        or any(part == ".~tmp~" for part in path.parts)


# Folders of a disc image copied as files: a DVD's VIDEO_TS, a Blu-ray's BDMV. Their
# segments (VTS_01_1.VOB, 00001.m2ts) are pieces of titles that no media server plays as
# files: one subtitle per segment would help nobody.
_DISC_FOLDERS = frozenset({"video_ts", "bdmv"})
_disc_logged: set[Path] = set()


def disc_folder(path: Path) -> Path | None:
    """The disc folder (VIDEO_TS, BDMV) that `path` lies in, if any."""
    for folder in path.parents:
        if folder.name.lower() in _DISC_FOLDERS:
            return folder
    return None


def is_candidate(path: Path, scan: ScanSettings) -> bool:
    """A media file by extension, not temporary, not ignored, not part of a disc folder
    (each of which is logged once)."""
    if path.suffix.lower() not in scan.include_extensions or is_temporary(path):
        return False
    disc = disc_folder(path)
    if disc is not None:
        if disc not in _disc_logged:
            _disc_logged.add(disc)
            logger.info("%s: a disc folder (DVD or Blu-ray structure); skipped, its segments "
                        "are not films", disc)
        return False
    text = str(path)
    return not any(fnmatch.fnmatch(text, pattern) for pattern in scan.ignore_globs)


@dataclass
class _Pending:
    fingerprint: Fingerprint | None
    quiet_since: float
    priority: int


Stat = Callable[[Path], Fingerprint]


class Settler:
    """Collects candidate paths; `due()` hands back those whose size, mtime and inode have
    not changed for `settle_seconds`. Thread-safe: the watcher notes, the worker asks."""

    def __init__(self, settle_seconds: float, *, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time,
                 stat: Stat = Fingerprint.of) -> None:
        self.settle_seconds = settle_seconds
        self._clock, self._wall_clock, self._stat = clock, wall_clock, stat
        self._pending: dict[Path, _Pending] = {}
        self._lock = threading.Lock()

    def note(self, path: Path, priority: int, *, trust_mtime: bool = False) -> None:
        """Something happened to `path` (or a scan found it). With `trust_mtime`, a file
        whose mtime is already older than the quiet period is taken as quiet since then."""
        now = self._clock()
        quiet_since = now
        fingerprint = None
        if trust_mtime:
            try:
                fingerprint = self._stat(path)
            except OSError as err:
                if faults.is_gone(err):
                    return
                # A share that does not answer: followed like an event, until it does.
            if fingerprint is not None:
                age = self._wall_clock() - fingerprint.mtime_ns / 1e9
                quiet_since = now - max(0.0, age)
        with self._lock:
            known = self._pending.get(path)
            if known is not None and trust_mtime:
                return  # an event already follows this file more closely
            priority = max(priority, known.priority) if known else priority
            self._pending[path] = _Pending(fingerprint, quiet_since, priority)

    def forget(self, path: Path) -> None:
        with self._lock:
            for pending in [p for p in self._pending if p == path or path in p.parents]:
                del self._pending[pending]

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    def due(self) -> list[tuple[Path, Fingerprint, int]]:
        """Paths that have been quiet long enough, with the fingerprint they settled at.
        The stats run outside the lock: on a share that hangs one can take minutes, and
        the observers must still be able to note their events meanwhile."""
        now = self._clock()
        with self._lock:
            paths = list(self._pending)
        stats: dict[Path, Fingerprint | OSError] = {}
        for path in paths:
            try:
                stats[path] = self._stat(path)
            except OSError as err:
                stats[path] = err
        ready = []
        with self._lock:
            for path in paths:
                pending = self._pending.get(path)
                if pending is None:  # forgotten meanwhile
                    continue
                current = stats[path]
                if isinstance(current, OSError):
                    if faults.is_gone(current):  # renamed at the end of a download, deleted
                        del self._pending[path]
                    else:  # a share that does not answer: quiet only once it answers again
                        pending.fingerprint, pending.quiet_since = None, now
                    continue
                if current != pending.fingerprint:
                    if pending.fingerprint is not None:
                        pending.quiet_since = now
                    pending.fingerprint = current
                    if now - pending.quiet_since < self.settle_seconds:
                        continue
                if now - pending.quiet_since >= self.settle_seconds:
                    ready.append((path, current, pending.priority))
                    del self._pending[path]
        return ready
