"""Finding work: watchdog observers on every root (polling on network and FUSE mounts) and
a full rescan, feeding candidate paths to the settler. Never blocks the worker."""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

from subtitled import failpoints
from subtitled.config import ScanSettings, WatchRoot
from subtitled.jobs import PRIORITY_BACKFILL, PRIORITY_NEW
from subtitled.settle import Settler, is_candidate

logger = logging.getLogger(__name__)

# A folder count above the watches held is checked again after this long before polling.
_WATCHES_RECHECK_SECONDS = 2.0
# Overflows come in bursts, and a rescan that starves the inotify reader causes more of
# them: the rescans they ask for are one at a time, this far apart (from the end of one).
_RESCAN_GAP_SECONDS = 5.0

# Where inotify sees nothing of changes made by other machines or by the FUSE daemon.
_REMOTE_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph",
                       "glusterfs", "lustre", "davfs", "virtiofs", "fuse", "fuseblk")


def filesystem_type(path: Path, mounts: str | None = None) -> str:
    """The type of the mount holding `path`, from /proc/self/mounts (longest prefix)."""
    if mounts is None:
        try:
            mounts = Path("/proc/self/mounts").read_text(encoding="utf-8")
        except OSError:
            return ""
    best, kind = "", ""
    target = str(path)
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def needs_polling(path: Path, mode: str, mounts: str | None = None) -> bool:
    if mode != "auto":
        return mode == "on"
    kind = filesystem_type(path, mounts)
    return kind.startswith("fuse.") or kind in _REMOTE_FILESYSTEMS


# What a finished copy, download or move looks like. Opens and reads are left out: a media
# server scanning the library opens every file, and inotify would queue each one.
_EVENTS = (FileCreatedEvent, FileClosedEvent, FileMovedEvent, FileDeletedEvent,
           DirCreatedEvent, DirMovedEvent, DirDeletedEvent)


class _Handler(FileSystemEventHandler):
    """watchdog events → settler notes; a moved or deleted path is forgotten."""

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def dispatch(self, event: FileSystemEvent) -> None:
        kind = event.event_type
        source = Path(os.fsdecode(event.src_path))
        failpoints.fail("observer-dies", source.name)
        if kind in ("deleted", "moved"):
            self.watcher.gone(source)
        if kind == "moved":
            source = Path(os.fsdecode(event.dest_path))
        if kind in ("opened", "closed_no_write", "deleted"):
            return
        if event.is_directory:
            if kind in ("created", "moved"):
                self.watcher.scan_folder(source, PRIORITY_NEW)
                self.watcher.folders_added()
            return
        self.watcher.offer(source, PRIORITY_NEW)


class Watcher:
    def __init__(self, roots: tuple[WatchRoot, ...], scan: ScanSettings, settler: Settler,
                 on_gone: Callable[[Path], None], *, backfill_since: float | None = None
                 ) -> None:
        self.roots, self.scan, self.settler, self.on_gone = roots, scan, settler, on_gone
        # scan.backfill none: scans pass over files not modified since this time.
        self.backfill_since = backfill_since
        self.scanned = threading.Event()  # the first scan of every root has been offered
        self.degraded: list[str] = []
        self._observers: list[Any] = []
        self._inotify: dict[WatchRoot, Any] = {}  # the roots inotify watches, and how
        self._stop = threading.Event()
        self._wake = threading.Event()  # for the rescan thread: see the flags below
        self._rescan_due = False
        self._watches_due = False
        self._rescan_thread: threading.Thread | None = None

    def offer(self, path: Path, priority: int, *, trust_mtime: bool = False) -> None:
        if is_candidate(path, self.scan):
            self.settler.note(path, priority, trust_mtime=trust_mtime)

    def gone(self, path: Path) -> None:
        self.settler.forget(path)
        self.on_gone(path)

    def start(self) -> None:
        from watchdog.observers import Observer

        _OverflowHook.install(self)
        for root in self.roots:
            polling = needs_polling(root.path, self.scan.polling)
            if polling:
                self.degraded.append(f"polling {root.path} (network or FUSE filesystem)")
                self._start_observer(root, self._polling_observer())
                continue
            folders = count_folders(root.path, root.recursive)
            held = watches_held()
            try:
                observer = self._start_observer(root, Observer(), raise_errors=True)
            except OSError as err:
                if err.errno not in (errno.ENOSPC, errno.EMFILE):
                    self._watch_failed(root.path, err)
                    continue
                self._poll_instead(root, err.strerror or str(err))
                continue
            # watchdog skips a subfolder it cannot watch without a word; the kernel's own
            # count of this process's watches shows whether every folder got one.
            added = watches_held() - held
            if held >= 0 and added < folders:
                self._observers.remove(observer)
                _discard(observer)
                self._poll_instead(root, f"inotify watch limit reached after {added} of "
                                         f"{folders} folders")
                continue
            self._inotify[root] = observer
        self._rescan_thread = threading.Thread(target=self._rescan_loop, name="rescan",
                                               daemon=True)
        self._rescan_thread.start()

    def _polling_observer(self) -> Any:
        from watchdog.observers.polling import PollingObserver

        return PollingObserver(timeout=self.scan.polling_interval_seconds)

    def _start_observer(self, root: WatchRoot, observer: Any, *,
                        raise_errors: bool = False) -> Any:
        try:
            observer.schedule(_Handler(self), str(root.path), recursive=root.recursive,
                              event_filter=list(_EVENTS))
            observer.start()
        except OSError as err:
            _discard(observer)
            if raise_errors:
                raise
            self._watch_failed(root.path, err)
            return None
        self._observers.append(observer)
        return observer

    def _poll_instead(self, root: WatchRoot, cause: str) -> None:
        """Out of inotify watches or instances: polling finds the same files, slower."""
        logger.error("cannot watch %s with inotify: %s; polling it every %g s instead. Raise "
                     "the limit with `sysctl fs.inotify.max_user_watches=1048576` (and "
                     "fs.inotify.max_user_instances)", root.path, cause,
                     self.scan.polling_interval_seconds)
        self.degraded.append(f"polling {root.path} (inotify limit reached: raise "
                             "fs.inotify.max_user_watches)")
        self._start_observer(root, self._polling_observer())

    def _watch_failed(self, path: Path, err: OSError) -> None:
        logger.error("cannot watch %s: %s; the periodic rescan covers it", path,
                     err.strerror or err)
        self.degraded.append(f"not watching {path}: {err.strerror or err}")

    def events_lost(self) -> None:
        """The kernel dropped events (inotify queue overflow): rescan soon."""
        if not self._rescan_due:
            logger.warning("inotify dropped events (queue overflow); rescanning the watched "
                           "folders. If this repeats, raise `sysctl fs.inotify."
                           "max_queued_events`")
            self._rescan_due = True
            self._wake.set()

    def folders_added(self) -> None:
        """New folders take new inotify watches, which can run out: check soon."""
        self._watches_due = True
        self._wake.set()

    def alive(self) -> bool:
        return all(o.is_alive() for o in self._observers)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        _OverflowHook.remove(self)
        if self._rescan_thread is not None:  # first: it may be switching observers
            self._rescan_thread.join(timeout=10)
        for observer in self._observers:
            observer.stop()
        for observer in self._observers:
            observer.join(timeout=10)
        self._observers = []
        self._inotify = {}

    def _rescan_loop(self) -> None:
        next_rescan = time.monotonic()
        soonest = 0.0  # an asked-for rescan waits until then
        short = False
        while not self._stop.is_set():
            self._wake.clear()  # before the flags are read, so no request is lost
            now = time.monotonic()
            if now >= next_rescan or (self._rescan_due and now >= soonest):
                self._rescan_due = False
                self.rescan()
                self.scanned.set()
                soonest = time.monotonic() + _RESCAN_GAP_SECONDS
                next_rescan = time.monotonic() + self.scan.rescan_interval_seconds
            wait = next_rescan - time.monotonic()
            if self._rescan_due:
                wait = min(wait, soonest - time.monotonic())
            if self._watches_due or short:
                self._watches_due = False
                short = self._check_watches(short)
                wait = min(wait, _WATCHES_RECHECK_SECONDS)
            self._wake.wait(max(0.0, wait))

    def _check_watches(self, short_before: bool) -> bool:
        """Does every folder under the inotify roots still have a watch? watchdog adds one
        for each new folder and says nothing when the kernel refuses. True when short for
        the first time (watchdog may still be catching up: look again); short twice, the
        roots are polled instead and rescanned for what arrived meanwhile."""
        roots = list(self._inotify)
        if not roots:
            return False
        needed = sum(count_folders(r.path, r.recursive) for r in roots)
        held = watches_held()
        if held < 0 or held >= needed:
            return False
        if not short_before:
            return True
        for root in roots:
            observer = self._inotify.pop(root)
            self._observers = [o for o in self._observers if o is not observer]
            _discard(observer)
            self._poll_instead(root, f"inotify watch limit reached ({held} watches for "
                                     f"{needed} folders)")
        self._rescan_due = True
        return False

    def rescan(self) -> None:
        for root in self.roots:
            self.scan_folder(root.path, PRIORITY_BACKFILL, recursive=root.recursive)

    def scan_folder(self, folder: Path, priority: int, *, recursive: bool = True) -> None:
        since = self.backfill_since if priority == PRIORITY_BACKFILL else None
        for path in walk(folder, recursive, self._stop):
            if since is not None and _older(path, since):
                continue
            self.offer(path, priority, trust_mtime=True)


def _older(path: Path, since: float) -> bool:
    """Neither modified nor changed (moved or copied in with its old mtime kept, which
    sets the ctime) since `since`; a file that cannot be looked at is left to `offer`."""
    try:
        found = path.stat()
        return max(found.st_mtime, found.st_ctime) < since
    except OSError:
        return False


class _OverflowHook(logging.Handler):
    """watchdog tells nobody but its log when the inotify queue overflows; its warning is
    the only signal, so a handler on its logger turns it into a rescan."""

    _LOGGER = "watchdog.observers"

    def __init__(self, watcher: Watcher) -> None:
        super().__init__(logging.WARNING)
        self.watcher = watcher

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.watcher.events_lost()

    @classmethod
    def install(cls, watcher: Watcher) -> None:
        source = logging.getLogger(cls._LOGGER)
        if source.getEffectiveLevel() > logging.WARNING:
            source.setLevel(logging.WARNING)
        source.addHandler(cls(watcher))

    @classmethod
    def remove(cls, watcher: Watcher) -> None:
        source = logging.getLogger(cls._LOGGER)
        for handler in [h for h in source.handlers
                        if isinstance(h, cls) and h.watcher is watcher]:
            source.removeHandler(handler)


def _discard(observer: Any) -> None:
    """Stop an observer that failed to start, with any thread it had already begun."""
    observer.stop()
    if observer.is_alive():
        observer.join(timeout=10)


def watches_held() -> int:
    """inotify watches this process holds, from the kernel (-1 without /proc)."""
    count = 0
    try:
        for info in Path("/proc/self/fdinfo").iterdir():
            try:
                with open(info, "rb") as handle:
                    count += handle.read().count(b"inotify wd:")
            except OSError:
                continue
    except OSError:
        return -1
    return count


def count_folders(folder: Path, recursive: bool) -> int:
    """`folder` and, if recursive, every readable folder below it that is not a symlink."""
    count, pending = 0, [folder]
    while pending:
        current = pending.pop()
        if not os.access(current, os.R_OK | os.X_OK):
            continue  # inotify cannot watch it either
        count += 1
        if not recursive:
            break
        try:
            with os.scandir(current) as entries:
                pending.extend(Path(e.path) for e in entries if _is_folder(e))
        except OSError:
            continue
    return count


def _is_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def walk(folder: Path, recursive: bool, stop: threading.Event) -> Iterator[Path]:
    """Regular files under `folder`; unreadable folders are logged and skipped, symlinked
    folders are not followed (a loop or a link to / must not run forever)."""
    pending = [folder]
    while pending and not stop.is_set():
        current = pending.pop()
        try:
            with os.scandir(current) as entries:
                found = list(entries)
        except OSError as err:
            logger.warning("cannot read folder %s: %s", current, err.strerror or err)
            continue
        for entry in found:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if recursive:
                        pending.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=True):
                    yield Path(entry.path)
            except OSError as err:  # a symlink loop: skip this entry, not the folder
                logger.warning("skipping %s: %s", Path(entry.path), err.strerror or err)
