"""Subtitle files: Plex/Jellyfin naming, SRT text via `srt`, and the atomic write."""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Sequence
from pathlib import Path

import srt

from subtitled import failpoints, faults
from subtitled.cues import Cue
from subtitled.errors import ConfigError, EnvironmentFault, SubtitledError

# A subtitle needs little room; a folder with less than this free fails before decoding.
_MIN_FREE_BYTES = 1 << 20


class OutputError(SubtitledError):
    """The subtitle cannot be written where it belongs (read-only folder, permissions)."""


def output_path(media: Path, language: str, template: str) -> Path:
    """`Movie.mkv` + `en` → `Movie.en.srt` beside it (template fields: stem, lang, name)."""
    try:
        name = template.format(stem=media.stem, lang=language, name=media.name)
    except (KeyError, IndexError, ValueError) as err:
        raise ConfigError(f"bad output template {template!r}: {err}", stage="config") from err
    if not name or "/" in name or name in (".", ".."):
        raise ConfigError(f"output template {template!r} must give a plain file name",
                          stage="config")
    return media.parent / name


_SIDECAR_SUFFIXES = (".srt", ".ass", ".ssa", ".vtt")
_SIDECAR_FLAGS = {"sdh", "hi", "cc", "default"}  # not "forced": foreign parts only


def existing_subtitle(media: Path, language: str, *, ignore: Path | None = None
                      ) -> Path | None:
    """A whole sidecar subtitle for `language` beside `media`: `Movie.en.srt`,
    `Movie.eng.ass`, `Movie.en.sdh.vtt`... other than `ignore`. A forced one
    (`Movie.en.forced.srt`: the foreign dialogue only) does not count."""
    from subtitled.languages import normalize

    prefix = media.stem + "."
    try:
        names = [p for p in media.parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return None
    for path in names:
        if path.suffix.lower() not in _SIDECAR_SUFFIXES or path == ignore:
            continue
        parts = path.name[len(prefix):-len(path.suffix)].lower().split(".")
        if normalize(parts[0]) == language and set(parts[1:]) <= _SIDECAR_FLAGS:
            return path
    return None


def render_srt(cues: Sequence[Cue]) -> str:
    subtitles = [
        srt.Subtitle(
            index=number,
            start=datetime.timedelta(seconds=cue.start_seconds),
            end=datetime.timedelta(seconds=cue.end_seconds),
            content=cue.text,
        )
        for number, cue in enumerate(cues, start=1)
    ]
    text: str = srt.compose(subtitles, reindex=False)
    return text


def check_output_folder(media: Path) -> None:
    """The folder beside `media` takes new files: not read-only, not full. A folder the
    daemon may not write (a read-only mount, a sandbox without ReadWritePaths=, a share
    mounted read-only) is the environment's fault, like a full disk: the file waits."""
    folder = media.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        read_only = _read_only_mount(folder)
        reason = "read-only filesystem" if read_only else "permission denied"
        raise EnvironmentFault(f"cannot write subtitles into {folder} ({reason})",
                               kind="read-only" if read_only else "access", path=media,
                               stage="write", where=folder)
    try:
        info = os.statvfs(folder)
    except OSError as err:
        raise faults.from_os_error(err, path=media, stage="write") from err
    if info.f_bavail * info.f_frsize < _MIN_FREE_BYTES:
        raise EnvironmentFault(f"no space left in {folder}", kind="space", path=media,
                               stage="write", where=folder)


def _read_only_mount(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def write_atomic(target: Path, text: str) -> None:
    """Write `target.tmp` beside it, fsync, rename over `target`, fsync the folder: a media
    server scanning the folder sees the old file or the whole new one, never a part."""
    partial = target.with_name(target.name + ".tmp")
    data = text.encode("utf-8")
    try:
        failpoints.os_error("write", target.name)
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view):]
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        failpoints.hit("after-temp-write", target.name)
        partial.replace(target)
        _fsync_dir(target.parent)
    except OSError as err:
        _remove_quietly(partial)
        found = faults.from_os_error(err, path=target, stage="write")
        if isinstance(found, EnvironmentFault):
            found.message = f"cannot write {target.name}: {found.message}"
            raise found from err
        raise OutputError(f"cannot write {target.name}: {err.strerror or err}", path=target,
                          stage="write") from err


def _remove_quietly(path: Path) -> None:
    """Best effort: the write already failed, and that error is the one to report."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
