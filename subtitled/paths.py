"""Paths as another container or host names them, and as this host does (`path_map`):
webhooks and media servers in containers, and the shared job store's library paths."""

from __future__ import annotations

from subtitled.config import PathMapping


def local_path(path: str, mappings: tuple[PathMapping, ...]) -> str:
    """A path as the sender names it, as this host names it: the longest matching
    `remote` folder replaced by its `local` one, whole folder names only."""
    return _mapped(path, [(m.remote, m.local) for m in mappings])


def remote_path(path: str, mappings: tuple[PathMapping, ...]) -> str:
    """The other way: one of our paths as the other side names it."""
    return _mapped(path, [(m.local, m.remote) for m in mappings])


def _mapped(path: str, pairs: list[tuple[str, str]]) -> str:
    for source, target in sorted(pairs, key=lambda pair: len(pair[0]), reverse=True):
        if path == source or path.startswith(source.rstrip("/") + "/"):
            rest = path[len(source):].lstrip("/")
            return target.rstrip("/") + "/" + rest if rest else target
    return path
