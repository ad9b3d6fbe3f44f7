"""Watching a library where inotify sees nothing (NFS, SMB, remote FUSE) by polling its
folders, not its files: a folder's ctime (and mtime) changes when an entry is added,
removed or renamed in it, so a poll of a library of 100,000 files in 2,000 folders is 2,000 stats,
and a folder is listed only when it changed. A file rewritten in place under the same name
changes no folder; the periodic rescan finds it."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from subtitled import faults

logger = logging.getLogger(__name__)

# A folder modified this close to its listing is listed again at the next poll: with a
# coarse mtime (a second, or two on some servers), an entry added just after the listing
# may leave the mtime as it was.
_RACY_SECONDS = 2.0


@dataclass(frozen=True)
class _Folder:
    changed_ns: int  # st_ctime_ns: moves with the mtime, and with its permissions
    inode: int
    files: dict[str, int]  # name → inode: a file replaced under its name is a new one
    folders: frozenset[str]
    recheck: bool = False  # listed too soon after a change to trust its ctime
    unreadable: bool = False


_UNREADABLE = _Folder(-1, -1, {}, frozenset(), unreadable=True)


class FolderPoller:
    """Polls one root every `interval` seconds on a thread of its own. `on_file` hears of
    each file that appeared in a folder it knew (or was replaced there under its name),
    `on_folder` of each folder that appeared (False) or is another folder than it was
    (True: a share mounted again, the root back after it went), for its files to be
    scanned; `on_gone` of each file or folder that went. `list_always` lists every folder
    every round: remote FUSE filesystems (rclone, s3fs) often keep no times for folders,
    and their inode numbers are not stable."""

    def __init__(self, root: Path, recursive: bool, interval: float, *,
                 on_file: Callable[[Path], None], on_folder: Callable[[Path, bool], None],
                 on_gone: Callable[[Path], None], stop: threading.Event | None = None,
                 list_always: bool = False) -> None:
        self.root, self.recursive, self.interval = root, recursive, interval
        self.on_file, self.on_folder, self.on_gone = on_file, on_folder, on_gone
        self.list_always = list_always
        self.stats = 0  # stat and listing calls, for the benchmark and its metric
        self._folders: dict[Path, _Folder] = {}
        self._root_gone = False
        self._stop = threading.Event()
        self._everything_stops = stop  # the watcher's: ends the first listing too
        self._thread = threading.Thread(target=self._run, name=f"poll {root}", daemon=True)

    def start(self) -> None:
        """Lists the whole tree first (what is there now is the scans' to offer), then
        polls from a thread."""
        self._list_tree(self.root)
        if not self._stopping():
            self._thread.start()

    def _stopping(self) -> bool:
        return self._stop.is_set() or (self._everything_stops is not None and
                                       self._everything_stops.is_set())

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:  # a bug here must not leave the root unwatched for good
                logger.exception("polling %s failed; trying again in %g s", self.root,
                                 self.interval)

    def poll(self) -> None:
        """One round: every known folder stat'ed, the changed ones listed again."""
        root = self._root()
        if root is None:
            return
        for folder in list(self._folders):
            if self._stopping():
                return
            known = self._folders.get(folder)
            if known is None:  # went with a parent earlier in this round
                continue
            if folder == self.root:
                if isinstance(root, OSError):  # a share that does not answer: next round
                    continue
                found = root
            else:
                try:
                    self.stats += 1
                    found = folder.stat()
                except OSError as err:
                    if faults.is_gone(err):
                        self._gone_folder(folder)
                    continue  # a share that does not answer: the next round asks again
            if (found.st_ctime_ns, found.st_ino) == (known.changed_ns, known.inode) and \
                    not known.recheck and not self.list_always:
                continue
            self._relist(folder, known)

    def _root(self) -> os.stat_result | OSError | None:
        """The root's stat, or why there is none; None when there is nothing to poll this
        round. The root gone (a share unmounted above it), nothing is polled; back, it is
        another tree, learnt anew and scanned whole."""
        try:
            self.stats += 1
            found = self.root.stat()
        except OSError as err:
            if not faults.is_gone(err):
                return err  # a share that hangs: each folder is tried, and says so
            if not self._root_gone:
                self._root_gone = True
                self._folders = {}
                self._call(self.on_gone, self.root)
            return None
        if self._root_gone:
            self._root_gone = False
            self._list_tree(self.root)
            self._call(self.on_folder, self.root, True)
            return None
        return found

    def _gone_folder(self, folder: Path) -> None:
        """Gone before its parent was listed again: the parent is, at the next round, so
        that a folder of that name back by then is found."""
        self._forget(folder)
        parent = self._folders.get(folder.parent)
        if parent is not None:
            self._folders[folder.parent] = replace(
                parent, folders=parent.folders - {folder.name}, recheck=True)
        self._call(self.on_gone, folder)

    def _relist(self, folder: Path, known: _Folder) -> None:
        listed = self._list(folder)
        if listed is None:  # gone: its parent's listing says so
            return
        if listed.unreadable:  # not a deletion: what it held is still known
            self._folders[folder] = replace(listed, files=known.files, folders=known.folders)
            return
        stable = not self.list_always and not known.unreadable
        self._folders[folder] = listed
        for name in sorted(known.files.keys() - listed.files.keys()):
            self._call(self.on_gone, folder / name)
        for name in sorted(known.folders - listed.folders):
            self._forget(folder / name)
            self._call(self.on_gone, folder / name)
        if stable and listed.inode != known.inode:  # another tree now: learnt anew
            self._forget(folder)
            self._list_tree(folder)
            self._call(self.on_folder, folder, True)
            return
        for name in sorted(listed.files):
            if name not in known.files or \
                    (stable and listed.files[name] != known.files[name]):
                self._call(self.on_file, folder / name)
        for name in sorted(listed.folders):
            if folder / name not in self._folders:
                self._list_tree(folder / name)
                self._call(self.on_folder, folder / name, False)

    def _call(self, callback: Callable[..., None], *args: object) -> None:
        """One listener failing (a job store that cannot be written) must not cost the
        other changes of the round."""
        try:
            callback(*args)
        except Exception:
            logger.exception("polling %s: passing on a change to %s failed", self.root,
                             args[0])

    def _list_tree(self, top: Path) -> None:
        """Records `top` and (when recursive) every folder under it."""
        pending = [top]
        while pending and not self._stopping():
            folder = pending.pop()
            listed = self._list(folder)
            if listed is None:
                continue
            self._folders[folder] = listed
            if self.recursive:
                pending.extend(folder / name for name in listed.folders)

    def _list(self, folder: Path) -> _Folder | None:
        """The folder's entries, with its ctime taken before them (an entry added while it
        is listed then shows as a change at the next poll); None if it is gone."""
        try:
            self.stats += 1
            before = folder.stat()
        except OSError as err:
            if faults.is_gone(err):
                return None
            logger.warning("cannot look at folder %s: %s", folder, err.strerror or err)
            return _UNREADABLE
        listed_at = time.time()
        files: dict[str, int] = {}
        folders = []
        try:
            self.stats += 1
            with os.scandir(folder) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            # Symlinked folders are not followed (a loop, a link to /).
                            folders.append(entry.name)
                        elif entry.is_file(follow_symlinks=True):
                            files[entry.name] = entry.inode()  # from the listing itself
                    except OSError:  # a symlink loop: skip the entry, not the folder
                        continue
        except OSError as err:
            if faults.is_gone(err):
                return None
            known = self._folders.get(folder)
            if known is None or not known.unreadable:
                logger.warning("cannot read folder %s: %s", folder, err.strerror or err)
            # Listed again once its ctime moves: an entry added, or its permissions changed.
            return replace(_UNREADABLE, changed_ns=before.st_ctime_ns, inode=before.st_ino)
        racy = before.st_ctime_ns / 1e9 > listed_at - _RACY_SECONDS
        return _Folder(before.st_ctime_ns, before.st_ino, files, frozenset(folders),
                       recheck=racy)

    def _forget(self, folder: Path) -> None:
        """`folder` and the folders under it, through what each held."""
        pending = [folder]
        while pending:
            current = pending.pop()
            known = self._folders.pop(current, None)
            if known is not None:
                pending.extend(current / name for name in known.folders)
