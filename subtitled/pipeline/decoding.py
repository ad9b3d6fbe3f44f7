"""A file's chunks decoded into its transcript and, when one is wanted, the English
translation beside it (Whisper's translate task, from the same chunks): kept in step, so
that a checkpoint saves both up to one line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from subtitled.engines.base import Word
from subtitled.pipeline.decoder import BatchDecoder, Work


@dataclass
class _Track:
    decoder: BatchDecoder
    words: list[Word]  # before the last checkpoint's line
    unsaved: list[Word] = field(default_factory=list)  # decoded, but after that line


class Decoding:
    """`decoders`: the transcript's first, then the translation's if one is made;
    `resumed`: the words each has from checkpoints, before `line` (programme time)."""

    def __init__(self, decoders: Sequence[BatchDecoder], resumed: Sequence[Sequence[Word]],
                 line: float) -> None:
        self._tracks = [_Track(decoder, list(words))
                        for decoder, words in zip(decoders, resumed, strict=True)]
        # A chunk that straddles the resume point is decoded whole, as before the stop;
        # its words before the point are in the checkpoint already.
        self._line = line

    @property
    def windows_decoded(self) -> int:
        return sum(track.decoder.windows_decoded for track in self._tracks)

    @property
    def first_look(self) -> float | None:
        """The transcript's first decodes' mean log-probability (quality.judge)."""
        return self._tracks[0].decoder.first_look.mean

    def add(self, work: list[Work]) -> None:
        """One chunk's work, for each track."""
        for track in self._tracks:
            track.unsaved += self._after_resume(track.decoder.add(work))

    def decoded_through(self) -> float:
        """Source time before which every track has decoded every chunk taken in."""
        return min(track.decoder.decoded_through() for track in self._tracks)

    def take(self, line: float) -> list[list[Word]]:
        """Each track's words before `line` (programme time) not taken before: what a
        checkpoint there adds. The others wait for a later line."""
        taken = []
        for track in self._tracks:
            ready = [w for w in track.unsaved if w.start_seconds < line]
            track.words += ready
            track.unsaved = [w for w in track.unsaved if w.start_seconds >= line]
            taken.append(ready)
        return taken

    def finish(self) -> list[list[Word]]:
        """Every track's words, in order (per-chunk languages are decoded language by
        language)."""
        for track in self._tracks:
            track.words += track.unsaved + self._after_resume(track.decoder.finish())
            track.unsaved = []
        return [sorted(track.words, key=lambda w: w.start_seconds) for track in self._tracks]

    def _after_resume(self, found: list[Word]) -> list[Word]:
        return [w for w in found if w.start_seconds >= self._line]
