"""Decoded words ↔ the text a checkpoint keeps (JSON), and back into a `Resume`."""

from __future__ import annotations

import json
from collections.abc import Sequence

from subtitled.engines.base import Word
from subtitled.language import LanguageGuess
from subtitled.pipeline.tools import Resume


def encode(language: LanguageGuess, words: Sequence[Word]) -> str:
    return json.dumps({
        "language": [language.code, language.confidence, language.windows],
        "words": [[w.start_seconds, w.end_seconds, w.text, w.probability] for w in words],
    }, ensure_ascii=False, separators=(",", ":"))


def decode(decoded_seconds: float, saved: Sequence[str]) -> Resume | None:
    """The checkpoints of one file, oldest first, as one Resume; None when there are none
    (or they cannot be read: the file is then simply decoded from the start)."""
    if not saved:
        return None
    try:
        parts = [json.loads(text) for text in saved]
        code, confidence, windows = parts[-1]["language"]
        words = tuple(Word(float(start), float(end), str(text), float(probability))
                      for part in parts for start, end, text, probability in part["words"])
    except (ValueError, KeyError, TypeError):
        return None
    return Resume(decoded_seconds, LanguageGuess(str(code), float(confidence), int(windows)),
                  words)
