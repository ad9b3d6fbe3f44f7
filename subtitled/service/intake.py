"""Files a request names (a webhook from Sonarr, Radarr, Emby, ...): checked against the
watched folders and handed to the settler ahead of the backfill, as a new arrival."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from subtitled.config import DaemonSettings, WatchRoot
from subtitled.jobs import PRIORITY_NEW
from subtitled.settle import Settler, is_candidate


def holding_root(path: Path, roots: tuple[WatchRoot, ...]) -> WatchRoot | None:
    """The watched folder `path` is in (directly, for a root that is not recursive)."""
    for root in roots:
        folder = root.path.resolve()
        if (folder in path.parents) if root.recursive else (path.parent == folder):
            return root
    return None


class Intake:
    def __init__(self, settings: Callable[[], DaemonSettings], settler: Settler) -> None:
        self._settings, self._settler = settings, settler

    def offer(self, path: Path) -> str | None:
        """None when `path` is noted (queued once it has settled; a file already known
        with the same content stays as it is); else why not, in one line."""
        settings = self._settings()
        if not path.is_absolute():
            return "not an absolute path"
        resolved = path.parent.resolve() / path.name  # the folders, not a linked file
        root = holding_root(resolved, settings.watch)
        if root is None:
            return ("outside every watched folder (watch:); a path that another host or "
                    "container names differently needs http.path_map")
        if not resolved.is_file():
            return "no such file here (check http.path_map)"
        if not is_candidate(resolved, settings.scan):
            return ("not a file the daemon subtitles (scan.include_extensions, "
                    "scan.ignore_globs)")
        # Named as the watcher names it (under the root as configured, which may be a
        # symlink), so that an event and a webhook for one file are one job.
        seen = root.path / resolved.relative_to(root.path.resolve())
        self._settler.note(seen, PRIORITY_NEW, trust_mtime=True)
        return None
