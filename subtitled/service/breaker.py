"""The circuit breaker: when the environment fails, the daemon pauses instead of burning
through its queue, probes the cause on a backoff, and resumes by itself.

A pause has a scope. A share that stopped answering or a full disk pauses the watched
root it lies in, and the other roots keep working; a folder that cannot be written (read
only, or no access) pauses that folder alone; a fault of the engine, a tool, memory or the
state directory pauses everything. A full disk, an unwritable folder and a failing state
directory pause at the first fault, since no other file could do better; a share's I/O
errors, a killed tool and an engine error pause once they come from two different files
within ten minutes (one file's could still be that file's), and the first file waits a
backoff. A file whose faults keep coming back while other files are done is the file's
problem after all (`blames_file`): it fails like a bad file.

While paused, `due` hands the daemon the pauses to probe: a folder fault is probed in the
folder (`faults.probe`); a fault with nothing to probe is let through to a new try (the
breaker half opens), and a new fault closes it again with a doubled backoff.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from subtitled import faults
from subtitled.errors import EnvironmentFault, shown

logger = logging.getLogger(__name__)

FIRST_BACKOFF_SECONDS = 15.0
MAX_BACKOFF_SECONDS = 300.0
WINDOW_SECONDS = 600.0
# Kinds that pause at their first fault: no other file would fare better.
_AT_ONCE = frozenset({"space", "read-only", "access", "state", "config"})
# A fault that keeps coming back on one file while other files are done is the file's:
# after this many, it fails as a bad file would.
FAULTS_PER_FILE = 3
# A probe that does not answer in this time (a hard-mounted share that hangs) has failed.
PROBE_SECONDS = 20.0
NO_ANSWER = f"no answer in {PROBE_SECONDS:g} s"
# What the status file keeps of a cause.
_CAUSE_CHARS = 300


@dataclass
class Pause:
    scope: str  # a watched root, or "all"
    kind: str
    cause: str  # one line
    since: float
    next_probe: float
    backoff: float

    def describe(self, now: float) -> str:
        where = "" if self.scope == "all" else f" {shown(self.scope)}"
        wait = max(0.0, self.next_probe - now)
        return f"paused{where}: {self.cause}; next check in {wait:.0f} s"


@dataclass
class _Seen:
    path: Path | None
    at: float


class Breaker:
    def __init__(self, roots: Sequence[Path], *, status_file: Path | None = None,
                 clock: Callable[[], float] = time.time,
                 first_backoff: float = FIRST_BACKOFF_SECONDS,
                 max_backoff: float = MAX_BACKOFF_SECONDS) -> None:
        self.roots = list(roots)
        self.status_file = status_file
        self._clock = clock
        self.first_backoff, self.max_backoff = first_backoff, max_backoff
        self._lock = threading.Lock()
        self._pauses: dict[str, tuple[Pause, EnvironmentFault]] = {}
        self._seen: dict[tuple[str, str], list[_Seen]] = {}
        self._backoff: dict[tuple[str, str], tuple[float, float]] = {}  # → (backoff, at)
        self._file_faults: dict[Path, tuple[int, int]] = {}  # → (faults, successes before)
        self._successes = 0
        self._devices: dict[Path, int] = {}
        # Told of each pause as it opens ("paused") and ends ("resumed"): notifications.
        self.listener: Callable[[str, Pause], None] = lambda event, pause: None

    def set_roots(self, roots: Sequence[Path]) -> None:
        """The watched roots changed (a reload): pauses of folders no longer watched go,
        and each root's device is noted, so that an unmounted share is recognised."""
        with self._lock:
            self.roots = list(roots)
            for scope in [s for s in self._pauses if s != "all"]:
                if self.root_of(Path(scope)) is None:
                    del self._pauses[scope]
            self._devices = {}
            for root in self.roots:
                try:
                    self._devices[root] = root.stat().st_dev
                except OSError:
                    continue
        self._write_status()

    def root_lost(self, path: Path) -> str | None:
        """Why the watched root holding `path` is not the library it was at start (gone,
        or another file system: the share under it unmounted), or None. An empty root is
        not evidence: the last file of a folder can be deleted."""
        root = self.root_of(path)
        if root is None:
            return None
        try:
            device = root.stat().st_dev
        except OSError as err:
            return f"the watched folder {shown(root)} cannot be read: {err.strerror or err}"
        if self._devices.get(root, device) != device:
            return f"the watched folder {shown(root)} is not the file system it was at " \
                   "start: an unmounted share?"
        return None

    def root_of(self, path: Path) -> Path | None:
        for root in sorted(self.roots, key=lambda r: len(r.parts), reverse=True):
            if path == root or root in path.parents:
                return root
        return None

    # --- what the worker reports ----------------------------------------------------------

    def fault(self, err: EnvironmentFault, *, at_once: bool = False) -> Pause | None:
        """Note a fault; returns the pause it opened, if it opened one. `at_once` pauses
        whatever the kind (a root found unusable at start)."""
        now = self._clock()
        scope = self.scope_of(err)
        key = (scope, err.kind)
        with self._lock:
            if err.path is not None:
                count, before = self._file_faults.get(err.path, (0, self._successes))
                self._file_faults[err.path] = (count + 1, before)
            if scope in self._pauses:
                return None
            seen = [s for s in self._seen.get(key, []) if now - s.at < WINDOW_SECONDS]
            seen.append(_Seen(err.path, now))
            self._seen[key] = seen
            if not at_once and err.kind not in _AT_ONCE and len({s.path for s in seen}) < 2:
                return None
            backoff, at = self._backoff.get(key, (0.0, 0.0))
            backoff = min(self.max_backoff, backoff * 2) if now - at < WINDOW_SECONDS \
                else self.first_backoff
            self._backoff[key] = (backoff, now)
            pause = Pause(scope, err.kind, _cause(err), now, now + backoff, backoff)
            self._pauses[scope] = (pause, err)
            self._seen.pop(key, None)
        self._write_status()
        self.listener("paused", pause)
        return pause

    def succeeded(self, path: Path) -> None:
        """A file was transcribed and written: the world works, at least for it."""
        with self._lock:
            self._file_faults.pop(path, None)
            self._successes += 1

    def blames_file(self, path: Path) -> bool:
        """True when faults keep coming back on this file while other files are done."""
        with self._lock:
            count, before = self._file_faults.get(path, (0, self._successes))
            return count >= FAULTS_PER_FILE and self._successes > before

    def retry_at(self, err: EnvironmentFault) -> float:
        """When a file that met this fault should be tried again."""
        with self._lock:
            held = self._pauses.get(self.scope_of(err))
        return held[0].next_probe if held else self._clock() + self.first_backoff

    # --- what the daemon asks -------------------------------------------------------------

    def scope_of(self, err: EnvironmentFault) -> str:
        if err.kind in ("engine", "tool", "memory", "state", "config") or err.where is None:
            return "all"
        root = self.root_of(err.where)
        if root is None:
            return "all"
        if err.kind in ("read-only", "access"):
            return str(err.where)  # that folder: a subfolder's permissions are its own
        return str(root)

    def lift(self, kind: str) -> bool:
        """End the pauses of this kind now (a reload fixed the configuration); True when
        there were any."""
        with self._lock:
            lifted = [pause for pause, _ in self._pauses.values() if pause.kind == kind]
            for pause in lifted:
                del self._pauses[pause.scope]
        if lifted:
            self._write_status()
        for pause in lifted:
            self.listener("resumed", pause)
        return bool(lifted)

    def pauses(self) -> list[Pause]:
        with self._lock:
            return [pause for pause, _ in self._pauses.values()]

    def paused_everything(self) -> bool:
        with self._lock:
            return "all" in self._pauses

    def paused_folders(self) -> list[Path]:
        with self._lock:
            return [Path(scope) for scope in self._pauses if scope != "all"]

    def describe(self) -> str:
        now = self._clock()
        return "; ".join(p.describe(now) for p in self.pauses())

    def probe_due(self) -> list[Pause]:
        """Probe the pauses whose time has come; returns those that cleared (and closes
        them). A pause that does not clear waits twice as long for its next probe."""
        now = self._clock()
        with self._lock:
            due = [(p, e) for p, e in self._pauses.values() if p.next_probe <= now]
        cleared = []
        for pause, err in due:
            still = faults.within(PROBE_SECONDS, partial(faults.probe, err), NO_ANSWER)
            if still is None and err.where in self.roots:  # an unmounted share lists fine
                still = faults.within(PROBE_SECONDS, partial(self.root_lost, err.where),
                                      NO_ANSWER)
            with self._lock:
                if still is None:
                    self._pauses.pop(pause.scope, None)
                    cleared.append(pause)
                    continue
                pause.cause = f"{_cause(err)} (still: {still})"
                pause.backoff = min(self.max_backoff, pause.backoff * 2)
                pause.next_probe = now + pause.backoff
        if due:
            self._write_status()
        for pause in cleared:
            self.listener("resumed", pause)
        return cleared

    def _write_status(self) -> None:
        """The pauses, for `subtitled status` in another process: a file of fixed size,
        padded, rewritten in place, so that it can still be updated on a full disk."""
        if self.status_file is None:
            return
        held = [{**asdict(p), "cause": p.cause[:_CAUSE_CHARS]} for p in self.pauses()]
        while True:  # as many pauses as fit (hundreds of folders could not)
            data = json.dumps({"pid": os.getpid(), "pauses": held}).encode()
            if len(data) <= STATUS_FILE_BYTES or not held:
                break
            held.pop()
        data = data.ljust(STATUS_FILE_BYTES)
        try:
            descriptor = os.open(self.status_file, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.pwrite(descriptor, data, 0)
            finally:
                os.close(descriptor)
        except OSError as err:
            logger.debug("cannot update %s: %s", self.status_file, err)


STATUS_FILE_BYTES = 8192


def read_status(path: Path) -> list[Pause]:
    """The pauses a running daemon wrote to its status file ([] when none, or when the
    daemon that wrote it is gone)."""
    try:
        document = json.loads(path.read_bytes().decode("utf-8", "replace").strip() or "{}")
        os.kill(int(document["pid"]), 0)
    except ProcessLookupError:
        return []
    except PermissionError:
        pass  # alive, under another user
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [Pause(**p) for p in document.get("pauses", [])]


def _cause(err: EnvironmentFault) -> str:
    where = f"{shown(err.where)}: " if err.where is not None else ""
    stage = f"{err.stage}: " if err.stage else ""
    return f"{where}{stage}{' '.join(shown(err.message).split())}"
