"""Language identification: a probability-weighted vote over speech windows spread over the
whole file, and per-piece labels for files that switch language."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from subtitled import languages
from subtitled.speech import Chunk

Detect = Callable[[np.ndarray], Mapping[str, float]]

# Below this much speech a window's vote is too noisy to count (Whisper needs a few words).
MIN_VOTE_SPEECH_SECONDS = 1.0


@dataclass(frozen=True)
class LanguageGuess:
    code: str  # Whisper's code
    confidence: float  # share of the weighted vote, 0..1
    windows: int  # how many windows voted

    @property
    def iso_code(self) -> str:
        return languages.from_whisper(self.code)


def restrict(probabilities: Mapping[str, float], allowed: Iterable[str]) -> dict[str, float]:
    """Keep only allowed languages (Whisper codes) and renormalise; all if none allowed."""
    allowed = set(allowed)
    kept = {k: v for k, v in probabilities.items() if not allowed or k in allowed}
    total = sum(kept.values())
    if total <= 0:
        return {k: 1.0 / len(allowed) for k in allowed} if allowed else {}
    return {k: v / total for k, v in kept.items()}


def vote(
    observations: Sequence[tuple[Mapping[str, float], float]], allowed: Iterable[str] = ()
) -> LanguageGuess | None:
    """Sum each window's probabilities weighted by its seconds of speech; None if no votes."""
    allowed = tuple(allowed)
    totals: dict[str, float] = {}
    weight_sum = 0.0
    for probabilities, speech_seconds in observations:
        for code, p in restrict(probabilities, allowed).items():
            totals[code] = totals.get(code, 0.0) + p * speech_seconds
        weight_sum += speech_seconds
    if not totals or weight_sum <= 0:
        return None
    code = max(totals, key=lambda k: totals[k])
    return LanguageGuess(code, totals[code] / weight_sum, len(observations))


def window_starts(duration_seconds: float | None, count: int, window_seconds: float) -> list[float]:
    """Start times of `count` windows spread evenly over the file (fewer for short files;
    none that would start too near the end to hold a vote's speech)."""
    if duration_seconds is None or duration_seconds <= window_seconds * count:
        if duration_seconds is None:
            return [0.0]
        fitting = max(1, int(np.ceil((duration_seconds - MIN_VOTE_SPEECH_SECONDS)
                                     / window_seconds)))
        return [i * window_seconds for i in range(min(fitting, count))]
    span = duration_seconds - window_seconds
    return [span * (i + 0.5) / count for i in range(count)]


def label_pieces(
    chunk: Chunk, detect: Detect, allowed: Iterable[str], fallback: str
) -> list[tuple[str, Chunk]]:
    """Split a chunk into runs of pieces that share a language, detecting each piece that is
    long enough to judge; short pieces join the language before them."""
    allowed = tuple(allowed)
    labels: list[str] = []
    for index, piece in enumerate(chunk.pieces):
        if piece.duration_seconds < MIN_VOTE_SPEECH_SECONDS:
            labels.append(labels[-1] if labels else "")
            continue
        guess = vote([(detect(chunk.sub(index, index + 1).audio), 1.0)], allowed)
        labels.append(guess.code if guess else fallback)
    return runs_of(chunk, _fill_leading_blanks(labels, fallback))


def label_runs(labels: list[str]) -> list[tuple[str, tuple[int, int]]]:
    """Runs of equal labels, each as (label, (first index, end index))."""
    runs: list[tuple[str, tuple[int, int]]] = []
    start = 0
    for index in range(1, len(labels) + 1):
        if index == len(labels) or labels[index] != labels[start]:
            runs.append((labels[start], (start, index)))
            start = index
    return runs


def runs_of(chunk: Chunk, labels: list[str]) -> list[tuple[str, Chunk]]:
    """The chunk as runs of pieces that share a label (one label a piece); the chunk
    itself where all share one (kept as it is, with what surrounds its speech)."""
    runs = label_runs(labels)
    if len(runs) == 1:
        return [(runs[0][0], chunk)]
    return [(label, chunk.sub(*span)) for label, span in runs]


def _fill_leading_blanks(labels: list[str], fallback: str) -> list[str]:
    first = next((label for label in labels if label), fallback)
    return [label or first for label in labels]
