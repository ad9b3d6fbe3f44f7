"""Files a request names (a webhook from Sonarr, Radarr, Emby, ...): checked against the
watched folders and handed to the settler ahead of the backfill, as a new arrival; a
rename takes our subtitle (and the done job) along with the file."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from subtitled.config import DaemonSettings, WatchRoot
from subtitled.settle import Settler, is_candidate
from subtitled.store import PRIORITY_NEW, Job, JobStore, file_sha256
from subtitled.subtitles import output_paths, renamed, review_path

logger = logging.getLogger(__name__)

_OUTSIDE = ("outside every watched folder (watch:); a path that another host or container "
            "names differently needs http.path_map")


def holding_root(path: Path, roots: tuple[WatchRoot, ...]) -> WatchRoot | None:
    """The watched folder `path` is in (directly, for a root that is not recursive)."""
    for root in roots:
        folder = root.path.resolve()
        if (folder in path.parents) if root.recursive else (path.parent == folder):
            return root
    return None


class Intake:
    def __init__(self, settings: Callable[[], DaemonSettings], settler: Settler,
                 store: Callable[[], JobStore | None]) -> None:
        self._settings, self._settler, self._store = settings, settler, store

    def offer(self, path: Path) -> str | None:
        """None when `path` is noted (queued once it has settled; a file already known
        with the same content stays as it is); else why not, in one line."""
        seen = self._seen(path)
        if isinstance(seen, str):
            return seen
        self._settler.note(seen, PRIORITY_NEW, trust_mtime=True)
        return None

    def moved(self, old: Path, new: Path) -> str | None:
        """`old` was renamed `new` (Sonarr's and Radarr's Rename): our subtitle follows it
        to the name the template gives, and the done job with it, so that nothing is
        transcribed again; without one, `new` is offered like any file."""
        seen, store = self._seen(new), self._store()
        if isinstance(seen, str):
            return seen
        before = self._named(old)
        if store is None or before is None:
            return self.offer(new)
        current = store.get(seen)
        if current is not None and current.state == "running":  # its own job has begun
            return self.offer(new)
        job = store.get(before)
        moves = self._follow(job, seen)
        if moves is None:
            return self.offer(new)
        subtitle = moves[0][1]
        if not store.moved(before, seen, subtitle, moves[1:]):  # a job for it began meanwhile
            _undo(moves)  # as it was
            return self.offer(new)
        logger.info("%s: renamed from %s; its subtitle is now %s", seen, before.name,
                    subtitle.name)
        return None

    def file(self, path: Path) -> Path | None:
        """`path` as the watcher names it, if it is a file the daemon subtitles."""
        seen = self._seen(path)
        return None if isinstance(seen, str) else seen

    def _named(self, path: Path) -> Path | None:
        """`path` as the watcher names it: under its root as configured (which may be a
        symlink), so that an event and a webhook for one file are one job."""
        if not path.is_absolute() or "\0" in str(path):
            return None
        resolved = path.parent.resolve() / path.name  # the folders, not a linked file
        root = holding_root(resolved, self._settings().watch)
        return None if root is None else root.path / resolved.relative_to(root.path.resolve())

    def _seen(self, path: Path) -> Path | str:
        """The name of a file to queue, or why it is not one."""
        if not path.is_absolute() or "\0" in str(path):
            return "not an absolute path"
        named = self._named(path)
        if named is None:
            return _OUTSIDE
        if not named.is_file():
            return "no such file here (check http.path_map)"
        if not is_candidate(named, self._settings().scan):
            return ("not a file the daemon subtitles (scan.include_extensions, "
                    "scan.ignore_globs)")
        return named

    def _follow(self, job: Job | None, new: Path) -> list[tuple[Path, Path]] | None:
        """Our subtitle of a done job, moved beside `new` under the name it gets there
        (or found there already, moved by the sender), and our other formats with it:
        the moves made, the tracked subtitle's first. None when there is none to move, its
        new name is taken, or the folder there wants another format first."""
        if job is None or job.state != "done" or job.written_path is None or \
                job.language is None:
            return None
        written = Path(job.written_path)
        output = self._settings().for_file(new).output
        target, *beside = output_paths(new, job.language, output.template, output.formats)
        if written.suffix.lower() != target.suffix.lower():
            return None  # transcribed again, in the new folder's format
        before = self._settings().for_file(job.path).output
        old_target, *old_beside = output_paths(job.path, job.language, before.template,
                                               before.formats)
        if written == review_path(old_target):  # written for review: it stays one
            target, beside = review_path(target), [review_path(p) for p in beside]
            old_beside = [review_path(p) for p in old_beside]
        olds = {path.suffix.lower(): path for path in old_beside}
        moves: list[tuple[Path, Path]] = []
        try:
            if written.exists() and not target.exists():
                written.replace(target)
                moves.append((written, target))
                for other in beside:  # the other formats both folders have
                    old = olds.get(other.suffix.lower())
                    if old is not None and old.exists() and not other.exists():
                        old.replace(other)
                        moves.append((old, other))
                for old, other in _renamed_beside(job, new, moves):  # a translation
                    old.replace(other)
                    moves.append((old, other))
                return moves
        except OSError as err:  # another file system: the file is transcribed again
            logger.warning("%s: cannot move its subtitle %s: %s", new, written,
                           err.strerror or err)
            _undo(moves)
            return None
        moved_by_sender = not written.exists() and target.exists() and \
            file_sha256(target) == job.written_sha256
        return [(written, target), *_moved_beside(job, new)] if moved_by_sender else None


def _renamed_beside(job: Job, new: Path, moved: list[tuple[Path, Path]]
                    ) -> list[tuple[Path, Path]]:
    """The other subtitles the job wrote beside its own (a translation), not moved yet,
    under the name `new` gives them: `Old.en.srt` → `New.en.srt`."""
    done = {old for old, _ in moved}
    found = []
    for name in sorted(job.beside):
        old = job.path.parent / name
        other = renamed(old, job.path, new)
        if old not in done and other is not None and old.exists() and not other.exists():
            found.append((old, other))
    return found


def _moved_beside(job: Job, new: Path) -> list[tuple[Path, Path]]:
    """The other subtitles the job wrote beside its own, moved by the sender with the file
    (Sonarr renames every sidecar): gone from the old name, at the new one as written."""
    found = []
    for name, hashes in sorted(job.beside.items()):
        old = job.path.parent / name
        other = renamed(old, job.path, new)
        if other is not None and not old.exists() and file_sha256(other) in hashes:
            found.append((old, other))
    return found


def _undo(moves: list[tuple[Path, Path]]) -> None:
    """Each file moved back where it was, where nothing took its place meanwhile."""
    for old, new in reversed(moves):
        try:
            if new.exists() and not old.exists():
                new.replace(old)
        except OSError as err:
            logger.warning("cannot move %s back to %s: %s", new, old, err.strerror or err)
