"""Subtitle files: Plex/Jellyfin naming, the text of each format (SRT via `srt`, WebVTT and
ASS via `pysubs2`, LRC), and the atomic write."""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Collection, Sequence
from pathlib import Path

import srt

from subtitled import failpoints, faults
from subtitled.cues import Cue
from subtitled.errors import ConfigError, EnvironmentFault, SubtitledError

# A subtitle needs little room; a folder with less than this free fails before decoding.
_MIN_FREE_BYTES = 1 << 20


class OutputError(SubtitledError):
    """The subtitle cannot be written where it belongs (read-only folder, permissions)."""


def output_paths(media: Path, language: str, template: str, formats: Sequence[str]
                 ) -> list[Path]:
    """The subtitle's file in each format, the first format's first: the template's name
    with the format's extension (`Movie.en.srt`, `Movie.en.vtt`, `Movie.en.ass`); LRC
    is `Movie.lrc`, the name music players and Jellyfin look for beside a song."""
    return in_formats(media, output_path(media, language, template), formats)


def in_formats(media: Path, name: Path, formats: Sequence[str]) -> list[Path]:
    """`name`, a subtitle of `media` as the template names it, in each format."""
    known = name.suffix.lower() in SUBTITLE_SUFFIXES
    stem = name.name[:-len(name.suffix)] if known else name.name

    def named(format_: str) -> Path:
        if format_ == "lrc":
            return media.with_name(f"{media.stem}.lrc")
        if name.suffix.lower() == f".{format_}" or (not known and format_ == "srt"):
            return name  # the template's own name, as written (`.SRT`, or no extension)
        return name.with_name(f"{stem}.{format_}")

    return [named(format_) for format_ in formats]


def renamed(subtitle: Path, media: Path, new: Path) -> Path | None:
    """A subtitle of `media` as it is named beside `new` (`Old.en.srt` → `New.en.srt`);
    None when it is not named after `media`."""
    if subtitle.parent != media.parent or not subtitle.name.startswith(f"{media.stem}."):
        return None
    return new.with_name(new.stem + subtitle.name[len(media.stem):])


def review_path(path: Path) -> Path:
    """Where a subtitle written for review goes (`quality.gate: review`):
    `Movie.en.review.srt`, not the name the daemon, Bazarr or a player looking for
    `Movie.en.srt` takes for the film's subtitle."""
    return path.with_name(f"{path.stem}.review{path.suffix}")


def is_review(path: Path) -> bool:
    return path.stem.endswith(".review")


def under_review(path: Path) -> Path:
    """The subtitle a copy for review stands for (`Movie.en.review.srt` → `Movie.en.srt`)."""
    return path.with_name(f"{path.stem.removesuffix('.review')}{path.suffix}")


def named_like(media: Path) -> list[Path]:
    """The files beside `media` whose names start with its stem and a dot (none where its
    folder cannot be read)."""
    prefix = media.stem + "."
    try:
        return [p for p in media.parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return []


SUBTITLE_SUFFIXES = (".srt", ".vtt", ".ass", ".lrc")  # of the formats the daemon writes


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


def existing_subtitle(media: Path, language: str, *, ignore: Collection[Path] = ()
                      ) -> Path | None:
    """A whole sidecar subtitle for `language` beside `media`: `Movie.en.srt`,
    `Movie.eng.ass`, `Movie.en.sdh.vtt`... other than those in `ignore`. A forced one
    (`Movie.en.forced.srt`: the foreign dialogue only) does not count."""
    from subtitled.languages import normalize

    prefix = media.stem + "."
    for path in named_like(media):
        if path.suffix.lower() not in _SIDECAR_SUFFIXES or path in ignore:
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


def render(target: Path, cues: Sequence[Cue]) -> str:
    """The cues as the text of the format `target`'s extension names (SRT otherwise)."""
    suffix = target.suffix.lower()
    if suffix in (".vtt", ".ass"):
        return _render_pysubs2(cues, suffix[1:])
    if suffix == ".lrc":
        return render_lrc(cues)
    return render_srt(cues)


def count_cues(target: Path, text: str) -> int:
    """The cues in a subtitle's text, in the format its extension names (ValueError when
    it does not parse)."""
    suffix = target.suffix.lower()
    if suffix == ".lrc":
        return sum(bool(line.partition("]")[2].strip()) for line in text.splitlines())
    if suffix in (".vtt", ".ass"):
        import pysubs2

        try:
            return len(pysubs2.SSAFile.from_string(text, format_=suffix[1:]))
        except Exception as err:  # pysubs2 raises its own and the parsers' errors
            raise ValueError(f"{target.name} does not parse: {err}") from err
    return len(list(srt.parse(text)))


def _render_pysubs2(cues: Sequence[Cue], format_: str) -> str:
    """WebVTT or ASS. The text is plain: braces would open an ASS override block (and
    pysubs2 drops them from WebVTT too), so they become parentheses; WebVTT's `&`, `<`
    and `>` are written as its character references."""
    import html

    import pysubs2

    document = pysubs2.SSAFile()
    for cue in cues:
        text = cue.text.replace("{", "(").replace("}", ")")
        if format_ == "vtt":
            text = html.escape(text, quote=False)
        document.append(pysubs2.SSAEvent(start=round(cue.start_seconds * 1000),
                                         end=round(cue.end_seconds * 1000),
                                         text=text.replace("\n", "\\N")))
    rendered: str = document.to_string(format_)
    return rendered


def render_lrc(cues: Sequence[Cue]) -> str:
    """Synced lyrics: each cue on one line at its start, and an empty line where it ends
    a pause (players clear the line there). Minutes count on past 59."""
    lines = []
    for cue, following in zip(cues, [*cues[1:], None], strict=True):
        lines.append(f"{_lrc_time(cue.start_seconds)}{' '.join(cue.text.split())}")
        if following is None or following.start_seconds - cue.end_seconds >= _LRC_PAUSE:
            lines.append(_lrc_time(cue.end_seconds))
    return "".join(line + "\n" for line in lines)


# A pause this long between two cues clears the line; shorter, the next replaces it.
_LRC_PAUSE = 1.0


def _lrc_time(seconds: float) -> str:
    hundredths = round(seconds * 100)
    minutes, rest = divmod(hundredths, 6000)
    return f"[{minutes:02d}:{rest // 100:02d}.{rest % 100:02d}]"


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
