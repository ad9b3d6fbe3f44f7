"""Where a film leaves its own language, for forced subtitles (`language.forced_subtitles`):
each chunk of speech is heard whole (in the encoder pass that decoded it, where the
decoder gives that; else in a window of its own); one whose language is not clear is
heard again in halves, cut between its pieces, and those halves again, all the halves of
a round in one batch (one encoder pass over their windows). The windows are held to a
budget of two per 30 s of speech (and four more), pooled over the file: past it, a chunk
is not heard again in halves but taken for the film's language (its words are not lost
to a translation), and a chunk that would need a window of its own takes the language of
the chunk before it. A stretch is foreign only where its detection gives
another language at least `SURE` of the vote; a short stretch in the film's language
between two foreign ones is taken as foreign too, so that one scene is decoded, and
subtitled, as one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from subtitled.language import label_runs, restrict, runs_of
from subtitled.speech import Chunk

DetectMany = Callable[[Sequence[np.ndarray]], list[dict[str, float]]]

# A stretch whose language has this share of the vote is not heard again in halves.
CLEAR = 0.9
# A stretch is foreign only where another language has at least this share: a mumbled
# second that Whisper half takes for Welsh stays in the film's language.
SURE = 0.5
# Detection windows per 30 s of speech, pooled over the file (the chunk's own first window
# included), and a few more to start with, so that a switch in the first minute is placed
# as well as a later one: the language work costs at most about twice the decoding's
# encoder passes.
WINDOWS_PER_30_SECONDS = 2.0
WINDOWS_AT_START = 4
# Stretches with less speech than this are not cut in halves (each half too short to judge).
MIN_SPLIT_SECONDS = 4.0
# Speech in the film's language this short between two stretches of one foreign language
# is part of them (a name, a "yes" in the middle of a Russian scene).
MERGE_SECONDS = 2.0

Span = tuple[int, int]  # pieces [first, end) of a chunk


@dataclass
class ForeignFinder:
    """Labels each chunk's pieces with their language: `main`, the film's, or a foreign
    one, and keeps where the foreign ones lie on the programme's timeline (`spans`).
    `windows` counts the detection windows spent (each one 30 s of encoder input)."""

    main: str
    allowed: tuple[str, ...]
    detect: DetectMany
    offset_seconds: float = 0.0  # the audio track's start on the programme's timeline
    spans: list[tuple[float, float]] = field(default_factory=list)
    windows: int = 0
    speech_seconds: float = 0.0
    _last: str = ""

    def label(self, chunk: Chunk, heard: dict[str, float] | None = None
              ) -> list[tuple[str, Chunk]]:
        """The chunk as runs of pieces in one language each, in order (the chunk itself,
        whole, where it is all one). `heard`: the chunk's language as its decode heard
        it, which costs no window."""
        count = len(chunk.pieces)
        self.speech_seconds += _speech(chunk, (0, count))
        # No budget left: as the chunk before.
        labels = self._labels(chunk, heard) if heard is not None or self._budget() >= 1 \
            else [self._last or self.main] * count
        labels = _merged(labels, chunk, self.main)
        self._last = labels[-1]
        runs = runs_of(chunk, labels)
        found = [(p.source_start_seconds + self.offset_seconds,
                  p.source_start_seconds + p.duration_seconds + self.offset_seconds)
                 for label, part in runs if label != self.main for p in part.pieces]
        # (A chunk decoded again after a resume may hold stretches a checkpoint kept.)
        self.spans += [span for span in found if span not in self.spans[-len(found):]]
        return runs

    def _labels(self, chunk: Chunk, heard_whole: dict[str, float] | None) -> list[str]:
        labels = [""] * len(chunk.pieces)
        spans: list[Span] = [(0, len(chunk.pieces))]
        heard = [self._allowed(heard_whole)] if heard_whole is not None else \
            self._heard(chunk, spans)
        while spans:
            split: list[Span] = []
            for span, probabilities in zip(spans, heard, strict=True):
                clear = max(probabilities.values(), default=0.0) >= CLEAR
                if clear or not self._cuttable(chunk, span):
                    code = self._code(probabilities)
                elif self._budget() >= len(split) + 2:
                    split += _halves(chunk, span)
                    continue
                else:  # unclear, and no budget to find where: the film's own language
                    code = self.main  # (its words are not lost to a translation)
                labels[span[0]:span[1]] = [code] * (span[1] - span[0])
            spans = split
            heard = self._heard(chunk, spans) if spans else []
        return labels

    @staticmethod
    def _cuttable(chunk: Chunk, span: Span) -> bool:
        """Long enough to be heard again in halves (each half long enough to judge)."""
        return span[1] - span[0] >= 2 and _speech(chunk, span) >= MIN_SPLIT_SECONDS

    def _heard(self, chunk: Chunk, spans: list[Span]) -> list[dict[str, float]]:
        """One batched detection over the spans, each heard alone."""
        self.windows += len(spans)
        return [self._allowed(p) for p in self.detect([chunk.sub(*span).audio
                                                        for span in spans])]

    def _allowed(self, probabilities: dict[str, float]) -> dict[str, float]:
        return restrict(probabilities, (self.main, *self.allowed)) if self.allowed \
            else probabilities

    def _code(self, probabilities: dict[str, float]) -> str:
        total = sum(probabilities.values()) or 1.0
        code, share = max(probabilities.items(), key=lambda item: item[1],
                          default=(self.main, 1.0))
        return code if code != self.main and share / total >= SURE else self.main

    def _budget(self) -> float:
        return WINDOWS_AT_START + WINDOWS_PER_30_SECONDS * self.speech_seconds / 30.0 - \
            self.windows


def _speech(chunk: Chunk, span: Span) -> float:
    return sum(p.duration_seconds for p in chunk.pieces[span[0]:span[1]])


def _halves(chunk: Chunk, span: Span) -> list[Span]:
    """The span cut between two pieces, where the speech before the cut is nearest half."""
    first, end = span
    half = _speech(chunk, span) / 2
    cut = min(range(first + 1, end), key=lambda i: abs(_speech(chunk, (first, i)) - half))
    return [(first, cut), (cut, end)]


def _merged(labels: list[str], chunk: Chunk, main: str) -> list[str]:
    """Short runs in the film's language between two runs of one foreign language joined
    to them."""
    runs = label_runs(labels)
    merged = list(labels)
    for (before, _), (label, span), (after, _) in zip(runs, runs[1:], runs[2:], strict=False):
        if label == main and before == after != main and _speech(chunk, span) < MERGE_SECONDS:
            merged[span[0]:span[1]] = [before] * (span[1] - span[0])
    return merged
