from __future__ import annotations

import pytest
import srt
from hypothesis import given, settings
from hypothesis import strategies as st

from subtitled.config import CueLimits
from subtitled.cues import (
    MAX_LAG_SECONDS,
    MAX_LEAD_IN_SECONDS,
    Cue,
    layout,
    segment_words,
    shape_cues,
    time_cues,
)
from subtitled.engines.base import Segment, Word
from subtitled.evaluation import readability_problems, reading_speed_share
from subtitled.subtitles import render_srt

LIMITS = CueLimits()


def words_at(text: str, start: float = 0.0, seconds_per_word: float = 0.3,
             pause: float = 0.05) -> list[Word]:
    words, t = [], start
    for token in text.split():
        words.append(Word(t, t + seconds_per_word, " " + token))
        t += seconds_per_word + pause
    return words


def test_short_sentence_is_one_single_line_cue() -> None:
    cues = shape_cues(words_at("Hello there."), LIMITS)
    assert [c.lines for c in cues] == [("Hello there.",)]


def test_sentences_start_new_cues() -> None:
    text = "We left at dawn and rode all day long. Nobody spoke until the river came in sight."
    cues = shape_cues(words_at(text), LIMITS)
    assert cues[0].text.replace("\n", " ") == "We left at dawn and rode all day long."
    assert cues[1].text.replace("\n", " ").startswith("Nobody")


def test_lines_break_at_punctuation_and_never_inside_words() -> None:
    text = "If you want to come with us tomorrow, bring a coat and some food for the road"
    (cue,) = shape_cues(words_at(text, seconds_per_word=0.2), LIMITS)
    assert cue.lines == ("If you want to come with us tomorrow,",
                         "bring a coat and some food for the road")


def test_a_long_pause_always_starts_a_new_cue() -> None:
    words = words_at("Who is there") + words_at("Nobody", start=10.0)
    cues = shape_cues(words, LIMITS)
    assert [c.text for c in cues] == ["Who is there", "Nobody"]
    assert cues[1].start_seconds == 10.0


def test_timing_is_extended_for_reading_but_never_overlaps() -> None:
    words = [Word(0.0, 0.5, " Extraordinary"), Word(0.5, 1.0, " circumstances."),
             Word(1.1, 1.3, " Yes.")]
    cues = shape_cues(words, LIMITS)
    assert cues[0].start_seconds == 0.0
    assert cues[0].end_seconds - cues[0].start_seconds >= LIMITS.min_duration_seconds
    assert cues[1].start_seconds >= cues[0].end_seconds + LIMITS.min_gap_seconds
    assert cues[1].start_seconds == 1.1  # the reading time gave way to the next cue
    assert readability_problems(cues, LIMITS) == []


def test_a_cue_too_fast_to_read_comes_up_a_little_early_into_the_pause_before_it() -> None:
    # 44 characters in 1.6 s (27.5 cps), the next line 0.1 s later: no room after it.
    fast = [Word(5.0 + 0.2 * i, 5.2 + 0.2 * i, f" {w}") for i, w in enumerate(
        ["They", "said", "the", "ferry", "leaves", "at", "seven", "sharp"])]
    after = [Word(6.7, 7.5, " Right."), Word(7.5, 8.5, " Fine.")]
    alone = time_cues([[Word(0.0, 1.0, " Well.")], fast, after], LIMITS)
    assert alone[1].text == "They said the ferry leaves at seven sharp"
    assert alone[1].start_seconds == pytest.approx(5.0 - MAX_LEAD_IN_SECONDS)
    # Never into the cue before it: right after it, with the gap.
    crowded = time_cues([[Word(4.0, 4.9, " Well.")], fast, after], LIMITS)
    assert crowded[1].start_seconds == pytest.approx(crowded[0].end_seconds
                                                     + LIMITS.min_gap_seconds)
    assert crowded[1].start_seconds > 5.0 - MAX_LEAD_IN_SECONDS
    # A cue readable at its words' own time keeps its start.
    slow = time_cues([[Word(0.0, 1.0, " Well.")], [Word(5.0, 6.0, " Fine.")]], LIMITS)
    assert slow[1].start_seconds == 5.0


def test_a_cue_still_too_fast_stays_up_a_little_into_a_slower_next_cue() -> None:
    # The fast line right after another (no lead-in), then a short reply with time to spare.
    fast = [Word(5.0 + 0.2 * i, 5.2 + 0.2 * i, f" {w}") for i, w in enumerate(
        ["They", "said", "the", "ferry", "leaves", "at", "seven", "sharp"])]
    before = [Word(3.5, 4.9, " Well.")]
    reply = [Word(6.7, 7.0, " Right."), Word(7.0, 8.5, " Fine.")]
    cues = time_cues([before, fast, reply], LIMITS)
    assert cues[1].end_seconds == pytest.approx(6.7 - LIMITS.min_gap_seconds + MAX_LAG_SECONDS)
    assert cues[2].start_seconds == pytest.approx(6.7 + MAX_LAG_SECONDS)
    assert cues[2].start_seconds - cues[1].end_seconds == pytest.approx(LIMITS.min_gap_seconds)
    assert reading_speed_share(cues[2:], LIMITS) == 1.0  # the reply is still readable
    # A next cue that needs all its own time gives none.
    busy = [Word(6.7 + 0.1 * i, 6.8 + 0.1 * i, f" {w}") for i, w in enumerate(
        ["Right", "then", "we", "had", "better", "hurry", "along", "to", "the", "pier"])]
    cues = time_cues([before, fast, busy], LIMITS)
    assert cues[1].end_seconds == pytest.approx(6.7 - LIMITS.min_gap_seconds)
    assert cues[2].start_seconds == pytest.approx(6.7)


def test_one_word_longer_than_a_line_is_split_as_a_last_resort() -> None:
    url = "https://example.org/" + "a" * 60
    cues = shape_cues([Word(0.0, 2.0, " " + url)], LIMITS)
    assert readability_problems(cues, LIMITS) == []
    assert "".join("".join(c.lines) for c in cues) == url


def test_layout_prefers_balanced_lines() -> None:
    words = words_at("one two three four five six seven eight nine ten eleven twelve")
    assert layout(words, LIMITS) == ("one two three four five six seven",
                                     "eight nine ten eleven twelve")


def test_segments_without_word_timings_share_their_time_by_length() -> None:
    words = segment_words(Segment(10.0, 12.0, " ab abcd ab", ()))
    assert [(w.text, round(w.start_seconds, 2)) for w in words] == [
        (" ab", 10.0), (" abcd", 10.5), (" ab", 11.5)]


word_text = st.text(alphabet="abcdefghijklmnopqrstuvwxyzäé", min_size=1, max_size=14).map(
    lambda s: s + "") | st.sampled_from(["yes.", "no,", "well;", "right?", "Ok!"])


@st.composite
def word_streams(draw: st.DrawFn) -> list[Word]:
    texts = draw(st.lists(word_text, min_size=1, max_size=80))
    words, t = [], draw(st.floats(0, 100))
    for text in texts:
        t += draw(st.floats(0.0, 3.0))
        length = draw(st.floats(0.05, 1.5))
        words.append(Word(t, t + length, " " + text))
        t += length
    return words


@settings(max_examples=150, deadline=None)
@given(word_streams())
def test_every_cue_holds_the_hard_limits_and_round_trips_through_srt(words: list[Word]) -> None:
    cues = shape_cues(words, LIMITS)
    assert readability_problems(cues, LIMITS) == []
    assert " ".join(" ".join(c.lines) for c in cues).split() == \
        " ".join(w.text for w in words).split()
    parsed = list(srt.parse(render_srt(cues)))
    assert [(p.start.total_seconds(), p.end.total_seconds(), p.content) for p in parsed] == [
        (c.start_seconds, c.end_seconds, c.text) for c in cues]


def test_reading_speed_share_counts_fast_cues() -> None:
    slow = Cue(0.0, 2.0, ("twenty characters!!!",))
    fast = Cue(3.0, 4.0, ("forty characters in one second, too fast",))
    assert reading_speed_share([slow, fast], LIMITS) == 0.5
