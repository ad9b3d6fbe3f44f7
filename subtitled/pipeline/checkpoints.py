"""Decoded words ↔ the text a checkpoint keeps (JSON), and back into a `Resume`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from subtitled.engines.base import Word
from subtitled.language import LanguageGuess
from subtitled.pipeline.tools import Resume


def encode(language: LanguageGuess, words: Sequence[Word],
           translated: Sequence[Word] | None = None,
           foreign: Sequence[tuple[float, float]] | None = None) -> str:
    """`translated`: the words of the translation decoded beside the transcript, when the
    job makes one; `foreign`: the stretches found in another language, when it makes a
    forced subtitle."""
    saved: dict[str, object] = {
        "language": [language.code, language.confidence, language.windows],
        "words": _listed(words)}
    if translated is not None:
        saved["translated"] = _listed(translated)
    if foreign is not None:
        saved["foreign"] = [list(span) for span in foreign]
    return json.dumps(saved, ensure_ascii=False, separators=(",", ":"))


def _listed(words: Sequence[Word]) -> list[list[Any]]:
    return [[w.start_seconds, w.end_seconds, w.text, w.probability] for w in words]


def _words(listed: list[list[Any]]) -> list[Word]:
    return [Word(float(start), float(end), str(text), float(probability))
            for start, end, text, probability in listed]


def decode(decoded_seconds: float, saved: Sequence[str]) -> Resume | None:
    """The checkpoints of one file, oldest first, as one Resume; None when there are none
    (or they cannot be read: the file is then simply decoded from the start). A
    translation is resumed only if every checkpoint has its words."""
    if not saved:
        return None
    try:
        parts = [json.loads(text) for text in saved]
        code, confidence, windows = parts[-1]["language"]
        words = tuple(w for part in parts for w in _words(part["words"]))
        translated = tuple(w for part in parts for w in _words(part["translated"])) \
            if all("translated" in part for part in parts) else None
        foreign = tuple((float(start), float(end)) for part in parts
                        for start, end in part["foreign"]) \
            if all("foreign" in part for part in parts) else None
    except (ValueError, KeyError, TypeError):
        return None
    return Resume(decoded_seconds, LanguageGuess(str(code), float(confidence), int(windows)),
                  words, translated, foreign)
