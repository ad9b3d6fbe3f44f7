from __future__ import annotations

import math
from pathlib import Path

import pytest

from subtitled.config import QualitySettings
from subtitled.engines.base import Word
from subtitled.quality import heard_share, judge, mean_log_probability
from subtitled.subtitles import review_path

SETTINGS = QualitySettings()


def spoken(seconds: float, probability: float = 0.9, every: float = 0.5) -> list[Word]:
    """Words back to back over `seconds`, each `every` long."""
    count = int(seconds / every)
    return [Word(i * every, (i + 1) * every, " word", probability) for i in range(count)]


def test_well_heard_speech_in_a_sure_language_is_not_flagged() -> None:
    assert judge(spoken(60), 80.0, 70.0, "en", 0.97, SETTINGS) is None


def test_text_the_model_did_not_believe_is_flagged_as_improbable() -> None:
    verdict = judge(spoken(60, probability=0.2), 80.0, 70.0, "en", None, SETTINGS)
    assert verdict is not None and verdict.flags == ("improbable",)
    assert "mean log-probability -1.61" in verdict.text


def test_text_improbable_at_the_first_decode_is_flagged_whatever_a_sample_kept() -> None:
    verdict = judge(spoken(60), 80.0, 70.0, "en", None, SETTINGS, first_look=-1.4)
    assert verdict is not None and verdict.flags == ("improbable",)
    assert "mean log-probability -1.40 at the first decode, -0.11 kept" in verdict.text
    assert judge(spoken(60), 80.0, 70.0, "en", None, SETTINGS, first_look=-0.2) is None


def test_speech_found_but_hardly_any_words_heard_is_music_or_noise() -> None:
    verdict = judge(spoken(10), 150.0, 120.0, "en", None, SETTINGS)
    assert verdict is not None and verdict.flags == ("music-or-noise",)
    assert "words over 8% of the 120 s" in verdict.text
    # Under one window of speech the share says nothing: a cough is not music.
    assert judge(spoken(1), 150.0, 12.0, "en", None, SETTINGS) is None


def test_a_file_of_a_minute_or_more_without_a_word_is_flagged_as_without_speech() -> None:
    music = judge([], 90.0, 0.0, None, None, SETTINGS)
    assert music is not None and music.flags == ("no-speech",)
    assert music.text.startswith("no words heard in its 90 s of audio: music only")
    singing = judge([], 90.0, 40.0, None, None, SETTINGS)
    assert singing is not None and "(40 s of it sounded like speech)" in singing.text
    # A jingle, a logo: too short to expect speech in.
    assert judge([], 12.0, 0.0, None, None, SETTINGS) is None


def test_an_unsure_detected_language_is_flagged_and_a_given_one_never() -> None:
    verdict = judge(spoken(60), 80.0, 70.0, "cy", 0.41, SETTINGS)
    assert verdict is not None and verdict.flags == ("unsure-language",)
    assert "cy at 41%" in verdict.text
    assert judge(spoken(60), 80.0, 70.0, "cy", None, SETTINGS) is None


def test_every_reason_is_given_together() -> None:
    verdict = judge(spoken(5, probability=0.1), 120.0, 100.0, "cy", 0.3, SETTINGS)
    assert verdict is not None
    assert verdict.flags == ("music-or-noise", "improbable", "unsure-language")
    assert verdict.text.count("; ") == 2


def test_the_thresholds_are_the_settings() -> None:
    strict = QualitySettings(min_log_probability=-0.05, min_heard_share=0.9,
                             min_language_confidence=0.99)
    verdict = judge(spoken(60), 80.0, 70.0, "en", 0.97, strict)
    assert verdict is not None
    assert verdict.flags == ("music-or-noise", "improbable", "unsure-language")


def test_the_log_probability_counts_a_word_by_its_length() -> None:
    words = [Word(0, 1, " a", 0.1), Word(1, 2, " extraordinarily", 0.9)]
    expected = (1 * math.log(0.1) + 15 * math.log(0.9)) / 16
    assert mean_log_probability(words) == pytest.approx(expected)
    # A word given no chance at all is floored, not minus infinity.
    assert math.isfinite(mean_log_probability([Word(0, 1, " x", 0.0)]))


def test_overlapping_words_are_not_counted_twice() -> None:
    words = [Word(0, 2, " a"), Word(1, 3, " b"), Word(5, 6, " c")]
    assert heard_share(words, 8.0) == pytest.approx(4 / 8)
    assert heard_share(words, 0.0) == 1.0


def test_a_subtitle_held_for_review_is_named_apart_from_the_subtitle() -> None:
    assert review_path(Path("/m/Film.en.srt")) == Path("/m/Film.en.review.srt")
    assert review_path(Path("/m/Song.lrc")) == Path("/m/Song.review.lrc")
