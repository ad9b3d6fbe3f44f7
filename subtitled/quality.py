"""Whether a file's subtitle is likely bad, judged from what Whisper says of its own words:
whether there are any, how probable they are, how much of the speech found gave any, and
how sure the language was. Each reason is one a viewer would see (no subtitle, music or
noise heard as words, text the model did not believe, the wrong language);
`quality.gate` decides what happens then."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from subtitled.config import QualitySettings
from subtitled.engines.base import Word

# A word's probability is the mean of its tokens' (both engines); a floor keeps one word
# the model gave no chance from outweighing a film.
_FLOOR = 1e-4


@dataclass
class LogProbability:
    """Words' log-probability per character of text, summed as they come: a long word
    counts as the tokens it is made of."""

    total: float = 0.0
    characters: int = 0

    def add(self, words: Sequence[Word]) -> None:
        for word in words:
            weight = len(word.text.strip()) or 1
            self.total += weight * math.log(max(word.probability, _FLOOR))
            self.characters += weight

    @property
    def mean(self) -> float | None:
        return self.total / self.characters if self.characters else None


def mean_log_probability(words: Sequence[Word]) -> float:
    """The words' log-probability, per character of text."""
    summed = LogProbability()
    summed.add(words)
    assert summed.mean is not None, "no words"
    return summed.mean


def heard_share(words: Sequence[Word], speech_seconds: float) -> float:
    """The share of the speech found whose time the words cover."""
    if speech_seconds <= 0:
        return 1.0
    covered, end = 0.0, -math.inf
    for word in sorted(words, key=lambda w: w.start_seconds):
        start = max(word.start_seconds, end)
        if word.end_seconds > start:
            covered += word.end_seconds - start
            end = word.end_seconds
    return min(covered / speech_seconds, 1.0)


# Below one window (of audio, of speech) these shares say little: a jingle, a cough.
_MIN_SECONDS = 30.0

Flag = Literal["no-speech", "music-or-noise", "improbable", "unsure-language"]


@dataclass(frozen=True)
class Verdict:
    """What says a subtitle is likely bad: each flag (for /metrics) with its reason."""

    flags: tuple[Flag, ...]
    reasons: tuple[str, ...]

    @property
    def text(self) -> str:
        return "; ".join(self.reasons)


def judge(words: Sequence[Word], audio_seconds: float, speech_seconds: float,
          language: str | None, language_confidence: float | None,
          settings: QualitySettings, first_look: float | None = None) -> Verdict | None:
    """Why the subtitle of these words is likely bad; None when nothing says so.
    `language_confidence` is None where the language was given, not detected.
    `first_look` is the mean log-probability of what the first decode kept, before
    Whisper's fallback decoded improbable windows again by sampling: a sample may come out
    sure of itself by chance (a crowd heard as confident Yiddish), so text is improbable
    when either look says so, and a verdict does not hang on a draw."""
    if not words:
        if audio_seconds < _MIN_SECONDS:
            return None
        some = f" ({speech_seconds:.0f} s of it sounded like speech)" \
            if speech_seconds >= 1 else ""
        return Verdict(("no-speech",), (f"no words heard in its {audio_seconds:.0f} s of "
                                        f"audio{some}: music only, or a silent or wrong "
                                        "audio track?",))
    found: list[tuple[Flag, str]] = []
    heard = heard_share(words, speech_seconds)
    if speech_seconds >= _MIN_SECONDS and heard < settings.min_heard_share:
        found.append(("music-or-noise", f"music or noise? words over {heard:.0%} of the "
                      f"{speech_seconds:.0f} s that sounded like speech (below "
                      f"{settings.min_heard_share:.0%})"))
    logprob = mean_log_probability(words)
    first = f"{first_look:.2f} at the first decode, {logprob:.2f} kept" \
        if first_look is not None and first_look < logprob else f"{logprob:.2f}"
    if min(logprob, first_look if first_look is not None else 0.0) < \
            settings.min_log_probability:
        found.append(("improbable", f"improbable text (mean log-probability {first} "
                      f"of its words, below {settings.min_log_probability:g})"))
    if language_confidence is not None and \
            language_confidence < settings.min_language_confidence:
        found.append(("unsure-language", f"unsure language ({language} at "
                      f"{language_confidence:.0%}, below "
                      f"{settings.min_language_confidence:.0%})"))
    if not found:
        return None
    return Verdict(tuple(flag for flag, _ in found), tuple(reason for _, reason in found))
