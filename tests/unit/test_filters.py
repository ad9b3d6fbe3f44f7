from __future__ import annotations

import pytest

from subtitled.config import FilterSettings
from subtitled.engines.base import Segment, Word
from subtitled.filters import is_loop, keep_speech

SETTINGS = FilterSettings()


def segment(text: str, *, no_speech: float = 0.0, logprob: float = -0.2,
            ratio: float = 1.2) -> Segment:
    return Segment(0.0, 1.0, text, (Word(0.0, 1.0, text),), logprob, no_speech, ratio)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Thank you. Thank you. Thank you. Thank you.", True),
        ("la la la la la la la la", True),
        ("I'm going to go to the store. I'm going to go to the store. I'm going to go to "
         "the store. I'm going to go to the store.", True),
        ("No, no, no, no! Get away from the door, now, before they see you here.", False),
        ("Ask not what your country can do for you, ask what you can do for your country.",
         False),
        ("", False),
    ],
)
def test_repetition_loops_are_recognised(text: str, expected: bool) -> None:
    assert is_loop(text, SETTINGS.min_loop_repeats) is expected


def test_drops_what_whisper_marks_as_no_speech_and_improbable() -> None:
    kept = keep_speech([
        segment("Thank you for watching.", no_speech=0.9, logprob=-1.3),
        segment("Quiet, but certainly speech.", no_speech=0.9, logprob=-0.3),
        segment("Improbable, but spoken.", no_speech=0.1, logprob=-1.5),
    ], SETTINGS)
    assert [s.text for s in kept] == ["Quiet, but certainly speech.", "Improbable, but spoken."]


def test_drops_high_compression_and_loops() -> None:
    kept = keep_speech([segment("a b c", ratio=3.1), segment("go go go go go go"),
                        segment("Fine.")], SETTINGS)
    assert [s.text for s in kept] == ["Fine."]


def test_a_segment_repeated_over_and_over_is_kept_twice() -> None:
    kept = keep_speech([segment("Subscribe to my channel.")] * 5 + [segment("Next.")], SETTINGS)
    assert [s.text for s in kept] == ["Subscribe to my channel."] * 2 + ["Next."]


def test_empty_and_punctuation_only_segments_are_dropped() -> None:
    empty = Segment(0, 1, " ", (), 0, 0, 1)
    dots = Segment(0, 1, " ...", (), 0, 0, 1)
    assert keep_speech([empty, dots], SETTINGS) == []
