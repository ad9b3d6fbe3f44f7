"""Finding work: watchdog's inotify observers on every local root, folder polling on
network and remote FUSE mounts, and a periodic rescan, feeding candidate paths to the
settler. Set up on a thread of its own; never blocks the worker."""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
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
from subtitled.mounts import MountChanges, filesystem_type, polled
from subtitled.polling import FolderPoller
from subtitled.settle import Settler, is_candidate
from subtitled.store import PRIORITY_BACKFILL, PRIORITY_NEW

logger = logging.getLogger(__name__)

# A folder count above the watches held is checked again after this long before polling.
_WATCHES_RECHECK_SECONDS = 2.0
# Overflows come in bursts, and a rescan that starves the inotify reader causes more of
# them: the rescans they ask for are one at a time, this far apart (from the end of one).
_RESCAN_GAP_SECONDS = 5.0
# How often the kernel is asked whether the mount table changed (then each root's watch
# is checked): a share unmounted and mounted again is a new filesystem, which the old
# watches do not see.
_MOUNT_CHECK_SECONDS = 30.0

# What a finished copy, download or move looks like. Opens and reads are left out: a media
# server scanning the library opens every file, and inotify would queue each one.
_EVENTS = (FileCreatedEvent, FileClosedEvent, FileMovedEvent, FileDeletedEvent,
           DirCreatedEvent, DirMovedEvent, DirDeletedEvent)


class _Handler(FileSystemEventHandler):
    """watchdog events → settler notes; a moved or deleted path is forgotten. A root that
    is a symlink is watched at the folder it names (watchdog would watch the link itself,
    and hear nothing of the folder): its events are named under the root again."""

    def __init__(self, watcher: Watcher, root: Path, watched: Path) -> None:
        self.watcher, self.root, self.watched = watcher, root, watched

    def _named(self, raw: bytes | str) -> Path:
        path = Path(os.fsdecode(raw))
        if self.watched == self.root:
            return path
        try:
            return self.root / path.relative_to(self.watched)
        except ValueError:
            return path

    def dispatch(self, event: FileSystemEvent) -> None:
        kind = event.event_type
        source = self._named(event.src_path)
        failpoints.fail("observer-dies", source.name)
        if kind in ("deleted", "moved"):
            self.watcher.gone(source)
        if kind == "moved":
            source = self._named(event.dest_path)
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
        self.watching = threading.Event()  # every root is watched (or found unwatchable)
        self.scanned = threading.Event()  # the first scan of every root has been offered
        self._observers: dict[WatchRoot, Any] = {}  # watchdog observers and FolderPollers
        self._inotify: dict[WatchRoot, Any] = {}  # the roots inotify watches, and how
        # What each root was when its watch was set: its (major, minor, inode) as stat
        # says, and as the kernel's list of inotify watches says (None for a polled root;
        # they differ on btrfs, whose subvolumes stat with a device of their own).
        self._watched_as: dict[WatchRoot, tuple[_Identity | None, _Identity | None]] = {}
        self._mounts: MountChanges | None = None  # whether the mount table changed
        self._degraded: dict[WatchRoot, str] = {}
        self._why_polled: dict[WatchRoot, str] = {}  # polled by design, and why
        self._lock = threading.Lock()  # the observers and flags, between the threads
        self._stop = threading.Event()
        self._wake = threading.Event()  # for the rescan thread: see the flags below
        self._rescan_due: set[WatchRoot] = set()
        self._watches_due = False
        self._thread: threading.Thread | None = None

    @property
    def degraded(self) -> list[str]:
        """One line per root not watched with inotify: what watches it instead, or why
        nothing does."""
        with self._lock:
            return [self._degraded[r] for r in self.roots if r in self._degraded]

    def offer(self, path: Path, priority: int, *, trust_mtime: bool = False) -> None:
        if is_candidate(path, self.scan):
            self.settler.note(path, priority, trust_mtime=trust_mtime)

    def gone(self, path: Path) -> None:
        self.settler.forget(path)
        self.on_gone(path)

    def start(self) -> None:
        """Watches every root, then scans them, on a thread of its own: counting and
        watching the folders of a big library on a cold disk can outlast a service's start
        timeout. `watching` is set once every root is watched; `scanned` once the first
        scan has been offered. The watches come first, so that nothing that arrives while
        the scan runs is missed."""
        _OverflowHook.install(self)
        self._thread = threading.Thread(target=self._run, name="watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        failpoints.delay("slow-watch", 8.0)
        self._mounts = MountChanges()
        for root in self.roots:
            if self._stop.is_set():
                return
            self._watch(root)
        self.watching.set()
        logger.info("watching %s (set up in %.1f s)",
                    ", ".join(f"{r.path} ({self._how(r)})" for r in self.roots),
                    time.monotonic() - started)
        self._rescan_loop()

    def _how(self, root: WatchRoot) -> str:
        with self._lock:
            observer = self._observers.get(root)
        if observer is None:
            return "rescanned only"
        if isinstance(observer, FolderPoller):
            why = self._why_polled.get(root, "out of inotify watches")
            return f"folders polled every {self.scan.polling_interval_seconds:g} s: {why}"
        return "inotify"

    def _watch(self, root: WatchRoot) -> None:
        identity = _identity(root.path)
        self._watched_as[root] = (identity, None)
        kind = filesystem_type(root.path)
        if polled(kind, self.scan.polling):
            # Expected, not degraded: what the filesystem (or the configuration) needs.
            self._why_polled[root] = "scan.polling: on" if self.scan.polling == "on" else \
                kind or "a filesystem inotify does not see"
            self._poll(root, kind)
            return
        folders = count_folders(root.path, root.recursive, self._stop)
        before = _inotify_watches()
        try:
            observer = self._start_observer(root, raise_errors=True)
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EMFILE):
                self._watch_failed(root, err)
                return
            self._poll_instead(root, err.strerror or str(err), kind)
            return
        # watchdog skips a subfolder it cannot watch without a word; the kernel's own
        # list of this process's watches shows whether every folder got one.
        after = _inotify_watches()
        added = len(after or ()) - len(before or ())
        if before is not None and added < folders:
            self._unwatch(root)
            self._poll_instead(root, f"inotify watch limit reached after {added} of "
                                     f"{folders} folders", kind)
            return
        if observer is None:  # stopped meanwhile
            return
        # The root's own watch, as the kernel lists it: a new one with the root's inode.
        new = set(after or ()) - set(before or ())
        kernel = next((w for w in new if identity is not None and w[2] == identity[2]),
                      identity)
        self._watched_as[root] = (identity, kernel)
        self._inotify[root] = observer

    def _poll(self, root: WatchRoot, kind: str) -> None:
        poller = FolderPoller(root.path, root.recursive, self.scan.polling_interval_seconds,
                              on_file=lambda path: self.offer(path, PRIORITY_NEW),
                              on_folder=self._folder_appeared, on_gone=self.gone,
                              stop=self._stop, list_always=kind.startswith("fuse"))
        poller.start()
        self._register(root, poller)

    def _register(self, root: WatchRoot, observer: Any) -> bool:
        """Keep `observer` for `root`, unless the watcher was stopped meanwhile (a reload
        while a big library was being watched): then it is stopped here, not leaked."""
        with self._lock:
            if not self._stop.is_set():
                self._observers[root] = observer
                return True
        _discard(observer)
        return False

    def _folder_appeared(self, folder: Path, replaced: bool) -> None:
        """A new folder is scanned like watchdog's new folders are, its files' mtimes
        trusted (a show moved in settles at once, and 100,000 files do not each wait out
        the quiet period under a stat every half second); one that is another folder than
        it was (a share mounted again) holds the library, not new arrivals."""
        self.scan_folder(folder, PRIORITY_BACKFILL if replaced else PRIORITY_NEW)

    def _start_observer(self, root: WatchRoot, *, raise_errors: bool = False) -> Any:
        from watchdog.observers import Observer

        observer = Observer()
        watched = root.path.resolve()
        try:
            observer.schedule(_Handler(self, root.path, watched), str(watched),
                              recursive=root.recursive, event_filter=list(_EVENTS))
            observer.start()
        except OSError as err:
            _discard(observer)
            if raise_errors:
                raise
            self._watch_failed(root, err)
            return None
        return observer if self._register(root, observer) else None

    def _unwatch(self, root: WatchRoot) -> None:
        with self._lock:
            observer = self._observers.pop(root, None)
        self._inotify.pop(root, None)
        if observer is not None:
            _discard(observer)

    def _set_degraded(self, root: WatchRoot, why: str | None) -> None:
        with self._lock:
            if why is None:
                self._degraded.pop(root, None)
            else:
                self._degraded[root] = why

    def _poll_instead(self, root: WatchRoot, cause: str, kind: str) -> None:
        """Out of inotify watches or instances: polling finds the same files, slower."""
        logger.error("cannot watch %s with inotify: %s; polling it every %g s instead. Raise "
                     "the limit with `sysctl fs.inotify.max_user_watches=1048576` (and "
                     "fs.inotify.max_user_instances)", root.path, cause,
                     self.scan.polling_interval_seconds)
        self._set_degraded(root, f"polling {root.path} (inotify limit reached: raise "
                                 "fs.inotify.max_user_watches)")
        self._poll(root, kind)

    def _watch_failed(self, root: WatchRoot, err: OSError) -> None:
        logger.error("cannot watch %s: %s; the periodic rescan covers it", root.path,
                     err.strerror or err)
        self._set_degraded(root, f"not watching {root.path}: {err.strerror or err}")

    def events_lost(self) -> None:
        """The kernel dropped events (inotify queue overflow): rescan soon."""
        if self._rescan_soon(self.roots):
            logger.warning("inotify dropped events (queue overflow); rescanning the watched "
                           "folders. If this repeats, raise `sysctl fs.inotify."
                           "max_queued_events`")

    def _rescan_soon(self, roots: Iterable[WatchRoot]) -> bool:
        """True when that added a root to the rescan due."""
        with self._lock:
            added = set(roots) - self._rescan_due
            self._rescan_due |= added
        self._wake.set()
        return bool(added)

    def _rescans_due(self) -> set[WatchRoot]:
        with self._lock:
            due, self._rescan_due = self._rescan_due, set()
        return due

    def folders_added(self) -> None:
        """New folders take new inotify watches, which can run out: check soon."""
        self._watches_due = True
        self._wake.set()

    def alive(self) -> bool:
        with self._lock:
            observers = list(self._observers.values())
        thread_ok = self._thread is None or self._thread.is_alive() or self._stop.is_set()
        return thread_ok and all(o.is_alive() for o in observers)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        _OverflowHook.remove(self)
        if self._thread is not None:  # first: it may be switching observers
            self._thread.join(timeout=10)
        with self._lock:
            observers = list(self._observers.values())
            self._observers = {}
        for observer in observers:
            observer.stop()
        for observer in observers:
            observer.join(timeout=10)
        self._inotify = {}
        if self._mounts is not None and (self._thread is None or
                                         not self._thread.is_alive()):
            self._mounts.close()

    def _rescan_loop(self) -> None:
        next_rescan = time.monotonic()
        next_mount_check = time.monotonic() + _MOUNT_CHECK_SECONDS
        soonest = 0.0  # an asked-for rescan waits until then
        short = False
        while not self._stop.is_set():
            self._wake.clear()  # before the flags are read, so no request is lost
            now = time.monotonic()
            if now >= next_mount_check:
                self._check_mounts()
                next_mount_check = time.monotonic() + _MOUNT_CHECK_SECONDS
            if now >= next_rescan or (self._rescan_due and now >= soonest):
                due = self._rescans_due()
                roots = self.roots if now >= next_rescan else \
                    tuple(r for r in self.roots if r in due)
                self.rescan(roots)
                if now >= next_rescan:
                    self.scanned.set()
                    next_rescan = time.monotonic() + self.scan.rescan_interval_seconds
                soonest = time.monotonic() + _RESCAN_GAP_SECONDS
            wait = min(next_rescan, next_mount_check) - time.monotonic()
            if self._rescan_due:
                wait = min(wait, soonest - time.monotonic())
            if self._watches_due or short:
                self._watches_due = False
                short = self._check_watches(short)
                wait = min(wait, _WATCHES_RECHECK_SECONDS)
            self._wake.wait(max(0.0, wait))

    def _check_mounts(self) -> None:
        """When the mount table changed: a root whose watch no longer sees it is watched
        anew, as its filesystem now needs, and rescanned. An inotify root whose watch the
        kernel dropped (its disk or pool was unmounted, even if mounted again since) or
        whose folder is another now (a share mounted over it); a polled root on another
        device (a share mounted there, or gone from it). A polled share mounted again
        where it was is the poller's: it polls the path, and learns the tree anew."""
        if self._mounts is not None and not self._mounts.changed():
            return
        watched = inotify_watched()
        for root in self.roots:
            if self._stop.is_set():
                return
            identity = _identity(root.path)
            if identity is None:  # not there at all: the breaker pauses its files
                continue
            then, kernel = self._watched_as.get(root, (None, None))
            if root in self._inotify:
                lost = identity != then or (watched is not None and kernel not in watched)
            else:
                lost = then is None or identity[:2] != then[:2]
            if not lost:
                continue
            self._unwatch(root)
            self._set_degraded(root, None)
            self._why_polled.pop(root, None)
            self._watch(root)
            self._rescan_soon([root])
            logger.warning("%s: no longer the folder its watch was set on (unmounted, or "
                           "mounted again); watched anew (%s) and rescanned", root.path,
                           self._how(root))

    def _check_watches(self, short_before: bool) -> bool:
        """Does every folder under the inotify roots still have a watch? watchdog adds one
        for each new folder and says nothing when the kernel refuses. True when short for
        the first time (watchdog may still be catching up: look again); short twice, the
        roots are polled instead and rescanned for what arrived meanwhile."""
        roots = list(self._inotify)
        if not roots:
            return False
        needed = sum(count_folders(r.path, r.recursive, self._stop) for r in roots)
        held = watches_held()
        if held < 0 or held >= needed:
            return False
        if not short_before:
            return True
        for root in roots:
            self._unwatch(root)
            self._poll_instead(root, f"inotify watch limit reached ({held} watches for "
                                     f"{needed} folders)", filesystem_type(root.path))
        self._rescan_soon(roots)
        return False

    def rescan(self, roots: tuple[WatchRoot, ...] | None = None) -> None:
        for root in self.roots if roots is None else roots:
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


def _fdinfo() -> list[bytes] | None:
    """What the kernel says of each of this process's open files (None without /proc)."""
    found = []
    try:
        for info in Path("/proc/self/fdinfo").iterdir():
            try:
                found.append(info.read_bytes())
            except OSError:  # closed meanwhile
                continue
    except OSError:
        return None
    return found


def watches_held() -> int:
    """inotify watches this process holds, from the kernel (-1 without /proc)."""
    texts = _fdinfo()
    return -1 if texts is None else sum(text.count(b"inotify wd:") for text in texts)


_Identity = tuple[int, int, int]  # major, minor, inode


def _identity(path: Path) -> _Identity | None:
    """(major, minor, inode) of a folder, as inotify_watched lists them."""
    try:
        found = path.stat()
    except OSError:
        return None
    return os.major(found.st_dev), os.minor(found.st_dev), found.st_ino


def _inotify_watches() -> list[_Identity] | None:
    """(major, minor, inode) of the folder of each inotify watch this process holds, from
    the kernel (None without /proc)."""
    texts = _fdinfo()
    if texts is None:
        return None
    watches = []
    for text in texts:
        for line in text.decode("ascii", "replace").splitlines():
            if not line.startswith("inotify wd:"):
                continue
            fields = dict(f.split(":", 1) for f in line.split()[1:] if ":" in f)
            device, inode = int(fields["sdev"], 16), int(fields["ino"], 16)
            # The kernel's own dev_t: 12 bits of major above 20 of minor.
            watches.append((device >> 20, device & 0xFFFFF, inode))
    return watches


def inotify_watched() -> set[_Identity] | None:
    """The folders this process's inotify watches hold. An unmount drops the watches on
    that filesystem without a word to watchdog; this is how the watcher finds out."""
    watches = _inotify_watches()
    return None if watches is None else set(watches)


def count_folders(folder: Path, recursive: bool, stop: threading.Event | None = None) -> int:
    """`folder` and, if recursive, every readable folder below it that is not a symlink."""
    count, pending = 0, [folder]
    while pending and not (stop is not None and stop.is_set()):
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
