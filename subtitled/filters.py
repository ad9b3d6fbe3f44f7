"""Drops segments that Whisper itself marks as unlikely speech or as a decoding loop."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from subtitled.config import FilterSettings
from subtitled.engines.base import Segment

logger = logging.getLogger(__name__)

_TOKEN = re.compile(r"\w+", re.UNICODE)
_MAX_PHRASE_WORDS = 8


def is_non_speech(segment: Segment, settings: FilterSettings) -> bool:
    """Whisper's own rule: a likely no-speech window whose text is also improbable."""
    return (segment.no_speech_prob > settings.no_speech_threshold
            and segment.avg_logprob < settings.logprob_threshold)


def is_loop(text: str, min_repeats: int) -> bool:
    """True when one phrase of 1-8 words repeats back to back `min_repeats` times or more
    and fills most of the text ("thank you thank you thank you thank you")."""
    tokens = [t.lower() for t in _TOKEN.findall(text)]
    for size in range(1, min(_MAX_PHRASE_WORDS, len(tokens) // min_repeats) + 1):
        for start in range(len(tokens) - size * min_repeats + 1):
            phrase = tokens[start : start + size]
            repeats = 1
            while tokens[start + repeats * size : start + (repeats + 1) * size] == phrase:
                repeats += 1
            if repeats >= min_repeats and repeats * size * 2 >= len(tokens):
                return True
    return False


def needs_fallback(segments: Sequence[Segment], settings: FilterSettings) -> bool:
    """A chunk decoded once (batched, greedy temperature) that Whisper would have decoded
    again at a higher temperature: its text compresses like a loop, or it is improbable
    while not being likely non-speech."""
    return any(s.compression_ratio > settings.compression_ratio_threshold
               or (s.avg_logprob < settings.logprob_threshold
                   and s.no_speech_prob <= settings.no_speech_threshold)
               for s in segments)


# Whisper's own list (whisper.transcribe), the full-width marks written as escapes.
_PUNCTUATION = "\"'\u201c\u00bf([{-\"'.\u3002,\uff0c!\uff01?\uff1f:\uff1a\u201d)]}\u3001"


def is_anomaly(segment: Segment) -> bool:
    """Whisper's own sign of a hallucination (whisper.transcribe, with word timestamps):
    among its first eight words, improbable ones (under 0.15), and ones too short (under
    0.133 s) or too long (over 2 s) to be spoken, add up to three, or to nearly all."""
    if not segment.words:  # no word timings to judge by (as Whisper's own rule)
        return False
    # Words that are punctuation alone ("." four times over a chord) are nearly all.
    words = [w for w in segment.words if w.text.strip() not in _PUNCTUATION][:8]
    score = 0.0
    for word in words:
        duration = word.end_seconds - word.start_seconds
        score += (word.probability < 0.15) + max(0.0, 0.133 - duration) * 15 + \
            max(0.0, duration - 2.0)
    return score >= 3 or score + 0.01 >= len(words)


def keep_speech(segments: Sequence[Segment], settings: FilterSettings) -> list[Segment]:
    """The segments worth showing, in order; a segment repeating its predecessor's text
    (a loop spread over segments) is dropped after it has appeared twice in a row."""
    kept: list[Segment] = []
    run = 0
    for segment in segments:
        text = segment.text.strip()
        if not text or (not segment.words and not _TOKEN.search(text)):
            continue
        if is_non_speech(segment, settings):
            logger.debug("dropped likely non-speech: %r", text)
            continue
        if segment.compression_ratio > settings.compression_ratio_threshold or is_loop(
            text, settings.min_loop_repeats
        ):
            logger.debug("dropped repetition loop: %r", text)
            continue
        same = bool(kept) and _normal(kept[-1].text) == _normal(text)
        run = run + 1 if same else 1
        if run > 2:
            logger.debug("dropped repeated segment: %r", text)
            continue
        kept.append(segment)
    return kept


def _normal(text: str) -> str:
    return " ".join(_TOKEN.findall(text.lower()))
