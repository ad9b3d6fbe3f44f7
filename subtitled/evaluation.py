"""Measures for tests and benchmarks: word error rate and the readability rules."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from subtitled.config import CueLimits
from subtitled.cues import Cue

_NOT_WORD = re.compile(r"[^\w\s']|_", re.UNICODE)


def normalize_text(text: str) -> list[str]:
    """Lower case, no punctuation, NFKC, split on whitespace ("Mr." → "mr")."""
    text = unicodedata.normalize("NFKC", text).lower().replace("-", " ")
    return _NOT_WORD.sub(" ", text).replace("'", "").split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, on normalised text."""
    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        current = [i]
        for j, hyp_word in enumerate(hyp, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ref_word != hyp_word)))
        previous = current
    return previous[-1] / len(ref)


def readability_problems(cues: Sequence[Cue], limits: CueLimits) -> list[str]:
    """Every broken hard rule (lines, duration, gaps); reading speed is reported apart."""
    problems = []
    slack = 1e-3  # millisecond rounding in SRT
    for number, cue in enumerate(cues, start=1):
        duration = cue.end_seconds - cue.start_seconds
        if len(cue.lines) > limits.max_lines:
            problems.append(f"cue {number}: {len(cue.lines)} lines")
        problems += [f"cue {number}: line of {len(line)} chars: {line!r}"
                     for line in cue.lines if len(line) > limits.max_line_chars]
        if not limits.min_duration_seconds - slack <= duration \
                <= limits.max_duration_seconds + slack:
            problems.append(f"cue {number}: {duration:.3f} s on screen")
        if number > 1:
            gap = cue.start_seconds - cues[number - 2].end_seconds
            if gap < limits.min_gap_seconds - slack:
                problems.append(f"cue {number}: {gap:.3f} s after the previous cue")
    return problems


def reading_speed_share(cues: Sequence[Cue], limits: CueLimits) -> float:
    """Share of cues within the reading-speed limit (1.0 for no cues)."""
    if not cues:
        return 1.0
    within = sum(1 for c in cues
                 if c.char_count / (c.end_seconds - c.start_seconds)
                 <= limits.max_chars_per_second + 1e-6)
    return within / len(cues)
