"""The subtitle files beside one media file: their names, which of them are ours (written
for it before, unedited since) and which are someone else's and kept, and writing and
removing them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from subtitled.config import TranscribeSettings
from subtitled.cues import Cue
from subtitled.pipeline.tools import Previous, Write
from subtitled.subtitles import (
    SUBTITLE_SUFFIXES,
    existing_subtitle,
    in_formats,
    is_review,
    named_like,
    output_paths,
    review_path,
    under_review,
)

logger = logging.getLogger(__name__)


class Sidecars:
    """`previous` and `wrote`: as `Hooks` has them. `review_copies`: whether a review copy
    beside the file is this job's to remove (not another audio track's job's)."""

    def __init__(self, media: Path, settings: TranscribeSettings, write: Write,
                 previous: Callable[[Path], Previous] | None,
                 wrote: Callable[[Path], Previous] | None, *,
                 review_copies: bool = True) -> None:
        self.media, self.settings = media, settings
        self._write, self._previous = write, previous
        self._wrote = wrote or previous
        self._own_review_copies = review_copies

    def targets(self, label: str) -> list[Path]:
        """The subtitle in `label` in each of the output formats, the first format's
        first."""
        output = self.settings.output
        return output_paths(self.media, label, output.template, output.formats)

    def beside_targets(self, label: str) -> list[Path]:
        """A subtitle beside the tracked one, in each format but LRC (its name says no
        language: the transcript's alone)."""
        output = self.settings.output
        formats = [f for f in output.formats if f != "lrc"] or ["srt"]
        return output_paths(self.media, label, output.template, formats)

    def kept(self, label: str, targets: Sequence[Path]) -> tuple[Path, str] | None:
        """The subtitle in `label` beside the file that is kept, and why. Our own, from
        before the file changed, is not (it is replaced); one edited by hand since we wrote
        it is, whatever the settings."""
        target, *beside = targets
        existing = target if target.exists() else None
        previous = self._previous(target) if existing and self._previous else None
        if previous == "edited":  # a person's work
            return target, f"{target} was edited since it was written; kept"
        if self.settings.output.overwrite:
            return None
        if previous == "ours":
            existing = None
        if existing is None and self.settings.skip.existing_sidecar:
            # Ours is replaced, and the other formats we wrote beside it with it.
            ours = (target, *beside) if previous else ()
            existing = existing_subtitle(self.media, label, ignore=ours)
        return (existing, str(existing)) if existing is not None else None

    def ours(self, path: Path) -> bool:
        """The subtitle at `path` is one written for this file, unedited since (known on
        a forced redo too). Where nothing records what was written (the one-shot
        command), `output.overwrite` (`--force`) takes whatever is there for ours."""
        if self._wrote is None:
            return path.exists() and self.settings.output.overwrite
        return path.exists() and self._wrote(path) == "ours"

    def edited(self, path: Path) -> bool:
        """The subtitle at `path` was written for this file and edited since."""
        return path.exists() and self._wrote is not None and self._wrote(path) == "edited"

    def someone_elses(self, label: str, targets: Sequence[Path]) -> Path | None:
        """A subtitle in `label` that is not ours: at the first of `targets`, or (with
        `skip.existing_sidecar`) another sidecar in that language."""
        target = targets[0]
        if target.exists() and not self.ours(target):
            return target
        if self.settings.skip.existing_sidecar:
            return existing_subtitle(self.media, label, ignore=targets)
        return None

    def write_beside(self, path: Path, cues: list[Cue], replace: bool) -> None:
        """A subtitle beside the tracked one where the name is free or the subtitle there
        is ours, or whatever is there where `replace`."""
        if path.exists() and not replace and not self.ours(path):
            logger.info("%s: %s exists and is not ours; kept", self.media, path.name)
            return
        self._write(path, cues, "beside")

    def drop_ours(self, also: Sequence[Path] = (), keep: Collection[Path] = (),
                   extras: Sequence[Path] = ()) -> None:
        """Our subtitle from before that this outcome does not put back, with the other
        formats written beside it: a copy written for review (in whichever language), and
        `also` (the subtitle itself, where this one is held back or written for review),
        and the `extras` (a translation, a forced subtitle). Only what this job last
        wrote, unedited since, is ours; a forced redo (which knows no such thing) takes
        the review copy in this language."""
        for path in extras:  # each of their formats known by its own hash
            if self._wrote is not None and path.exists() and self._wrote(path) == "ours":
                path.unlink(missing_ok=True)
                logger.info("%s: %s, written before for this file, removed", self.media,
                            path.name)
        previous = self._previous
        if previous is None:
            if self.settings.output.overwrite and not also and keep:
                for path in keep:
                    review_path(path).unlink(missing_ok=True)
            return
        for path in [*also, *self._review_copies()]:
            if path not in keep and path.exists() and previous(path) == "ours":
                for stale in self._with_formats(path):
                    if stale not in keep:
                        stale.unlink(missing_ok=True)
                logger.info("%s: %s, written before for this file, removed", self.media,
                            path.name)
                break  # a job tracks one subtitle (and its formats)

    def _review_copies(self) -> list[Path]:
        if not self._own_review_copies:
            return []
        return sorted(p for p in named_like(self.media)
                      if p.suffix.lower() in SUBTITLE_SUFFIXES and is_review(p))

    def _with_formats(self, path: Path) -> list[Path]:
        """A subtitle of ours and the other formats of the settings beside it, named as
        they were written (`output_paths`, each for review where it is)."""
        formats = self.settings.output.formats
        if not is_review(path):
            return list(dict.fromkeys([path, *in_formats(self.media, path, formats)]))
        return list(dict.fromkeys([path, *map(review_path, in_formats(
            self.media, under_review(path), formats))]))
