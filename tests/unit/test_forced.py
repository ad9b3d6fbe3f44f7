"""Forced subtitles (`language.forced_subtitles`): the foreign stretches of an English film
found by batched language detection within a budget, translated, and written alone as
`Movie.en.forced.srt` beside the full subtitle."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from subtitled.pipeline import Hooks, process_media_file
from subtitled.pipeline.foreign import ForeignFinder
from subtitled.pipeline.tools import Previous
from subtitled.speech import Chunk, Piece
from tests.unit.fakes import RATE, FakeMedia, FakeTranscriber, silence, tone
from tests.unit.test_pipeline import Mumbling, with_language
from tests.unit.test_resume import stopped

FORCED = with_language(language="en", forced_subtitles=True)
GERMAN, ENGLISH = 0.9, 0.5  # the fakes' languages, by loudness


def heard(audio: np.ndarray) -> dict[str, float]:
    """German in proportion to the loud share of the speech, as Whisper hears a window
    with some of each."""
    speech = np.abs(audio) > 0.01
    german = float((np.abs(audio) > 0.7).sum() / max(1, speech.sum()))
    return {"de": german, "en": 1.0 - german}


class Hearing(FakeTranscriber):
    def detect_languages(self, audios: Sequence[np.ndarray]) -> list[dict[str, float]]:
        self.detected.append(len(audios))
        return [heard(audio) for audio in audios]

    def hear(self, audio: np.ndarray) -> dict[str, float]:
        return heard(audio)


class Detector:
    def __init__(self) -> None:
        self.batches: list[int] = []

    def __call__(self, audios: Sequence[np.ndarray]) -> list[dict[str, float]]:
        self.batches.append(len(audios))
        return [heard(audio) for audio in audios]


def chunk_of(*pieces: tuple[float, float]) -> Chunk:
    """Pieces of (seconds, level), half a second apart."""
    audio, placed, at = [], [], 0.0
    for seconds, level in pieces:
        placed.append(Piece(at, 100.0 + at, seconds))
        audio += [tone(seconds, level), silence(0.5)]
        at += seconds + 0.5
    return Chunk(np.concatenate(audio)[:round((at - 0.5) * RATE)], tuple(placed))


def labels(runs: list[tuple[str, Chunk]]) -> list[tuple[str, int]]:
    return [(code, len(part.pieces)) for code, part in runs]


def test_a_chunk_in_the_film_s_language_is_heard_once_and_kept_whole() -> None:
    detect = Detector()
    finder = ForeignFinder("en", (), detect)
    chunk = chunk_of(*[(5.0, ENGLISH)] * 4)
    assert finder.label(chunk) == [("en", chunk)]
    assert detect.batches == [1] and finder.windows == 1


def test_a_chunk_that_switches_is_heard_again_in_halves_in_one_batch() -> None:
    detect = Detector()
    finder = ForeignFinder("en", (), detect)
    runs = finder.label(chunk_of(*[(4.0, ENGLISH)] * 3, *[(4.0, GERMAN)] * 3))
    assert labels(runs) == [("en", 3), ("de", 3)]
    assert detect.batches == [1, 2]  # the whole chunk, then both halves at once


def test_the_halves_are_cut_again_until_each_is_clear() -> None:
    detect = Detector()
    finder = ForeignFinder("en", (), detect)
    for _ in range(3):  # a minute and a half in English: budget to spend on a switch
        finder.label(chunk_of(*[(5.0, ENGLISH)] * 6))
    runs = finder.label(chunk_of(*[(4.0, ENGLISH)] * 4, *[(4.0, GERMAN)] * 2,
                                 *[(4.0, ENGLISH)] * 2))
    assert labels(runs) == [("en", 4), ("de", 2), ("en", 2)]
    # The whole, its halves at once, then the halves of the second half at once.
    assert detect.batches == [1, 1, 1, 1, 2, 2]


def test_a_word_in_the_film_s_language_inside_a_foreign_scene_is_part_of_it() -> None:
    finder = ForeignFinder("en", (), Detector())
    chunk = chunk_of((6.0, ENGLISH), (6.0, ENGLISH), (5.0, GERMAN), (1.0, ENGLISH),
                     (5.0, GERMAN))
    assert labels(finder.label(chunk))[-1] == ("de", 3)


def test_a_stretch_is_foreign_only_where_the_detection_is_sure() -> None:
    """Another language with less than half of the vote: the film's language."""
    finder = ForeignFinder("en", (), lambda audios: [{"cy": 0.4, "en": 0.35, "de": 0.25}
                                                     for _ in audios])
    chunk = chunk_of((3.0, ENGLISH))
    assert finder.label(chunk) == [("en", chunk)]


def test_the_detection_costs_at_most_two_windows_per_30_s_of_speech() -> None:
    """Every chunk switches language: the budget, not the audio, bounds the work."""
    detect = Detector()
    finder = ForeignFinder("en", (), detect)
    for _ in range(20):
        finder.label(chunk_of(*[(2.5, ENGLISH), (2.5, GERMAN)] * 5))
    assert finder.windows == sum(detect.batches)
    assert finder.windows <= 2 * finder.speech_seconds / 30 + 4


def english_then_german(scenes: int = 1) -> np.ndarray:
    scene = [np.concatenate([tone(5, level), silence(1)])
             for level in (ENGLISH,) * 5 + (GERMAN,) * 5]
    return np.concatenate(scene * scenes)


def test_an_english_film_gets_a_forced_subtitle_of_its_german_scene_translated(
        tmp_path: Path) -> None:
    media, transcriber = FakeMedia(english_then_german()), Hearing(batch_size=2)
    outcome = process_media_file(tmp_path / "Film.mkv", FORCED, media.tools(transcriber))
    assert outcome.output == tmp_path / "Film.en.srt"
    assert outcome.forced == tmp_path / "Film.en.forced.srt"
    assert media.roles == {tmp_path / "Film.en.srt": "tracked",
                           tmp_path / "Film.en.forced.srt": "beside"}
    full = [w for cue in media.written[tmp_path / "Film.en.srt"] for w in cue.text.split()]
    forced = media.written[tmp_path / "Film.en.forced.srt"]
    # The German scene (30-60 s) is translated, in both; the forced subtitle has it alone.
    assert all(cue.start_seconds >= 29.5 for cue in forced)
    assert {w[:5] for cue in forced for w in cue.text.split()} == {"de>en"}
    assert sum(w.startswith("de>en") for w in full) == \
        sum(len(cue.text.split()) for cue in forced) > 0
    assert any(w.startswith("en") for w in full)
    # Decoded as German, with the translate task: no German text anywhere.
    assert {language for _, language in transcriber.calls} == {"en", "de>en"}
    assert outcome.detection_windows == sum(transcriber.detected)
    assert outcome.detection_windows <= 2 * 50 / 30  # 50 s of speech


def test_a_film_all_in_english_gets_no_forced_subtitle_and_costs_nothing_more(
        tmp_path: Path) -> None:
    """Each chunk's language is heard from the encoder pass that decodes it: an English
    film's forced subtitle costs no window and no decode more than its transcript."""
    audio = np.concatenate([np.concatenate([tone(5, ENGLISH), silence(1)])] * 20)
    plain, forced = Hearing(batch_size=2), Hearing(batch_size=2)
    process_media_file(tmp_path / "Plain.mkv", with_language(language="en"),
                       FakeMedia(audio).tools(plain))
    media = FakeMedia(audio)
    outcome = process_media_file(tmp_path / "Film.mkv", FORCED, media.tools(forced))
    assert outcome.forced is None and list(media.written) == [tmp_path / "Film.en.srt"]
    assert forced.detected == [] and outcome.detection_windows == 0
    assert forced.calls == plain.calls


def test_a_film_in_another_language_gets_none(tmp_path: Path) -> None:
    """Whisper translates into English alone: a German film's English scenes cannot be
    given German forced subtitles."""
    settings = with_language(language="de", forced_subtitles=True)
    transcriber = Hearing()
    outcome = process_media_file(tmp_path / "Film.mkv", settings,
                                 FakeMedia(english_then_german()).tools(transcriber))
    assert outcome.forced is None and transcriber.detected == []


@pytest.mark.parametrize("previous", [None, "edited"])
def test_someone_else_s_forced_subtitle_is_kept_and_nothing_is_detected(
        tmp_path: Path, previous: Previous) -> None:
    (tmp_path / "Film.en.forced.srt").write_text("theirs")
    transcriber = Hearing()
    media = FakeMedia(english_then_german())
    outcome = process_media_file(tmp_path / "Film.mkv", FORCED, media.tools(transcriber),
                                 Hooks(previous=lambda path: previous))
    assert outcome.forced is None and transcriber.detected == []
    assert tmp_path / "Film.en.forced.srt" not in media.written


def test_no_forced_subtitle_beside_one_held_back_and_ours_from_before_goes(
        tmp_path: Path) -> None:
    (tmp_path / "Film.en.forced.srt").write_text("ours, from before")
    settings = replace(FORCED, quality=replace(FORCED.quality, gate="hold"))
    media = FakeMedia(english_then_german())

    class MumblingHearing(Mumbling, Hearing):
        pass

    hooks = Hooks(previous=lambda path: "ours" if "forced" in path.name else None)
    outcome = process_media_file(tmp_path / "Film.mkv", settings,
                                 media.tools(MumblingHearing()), hooks)
    assert outcome.status == "held" and media.written == {}
    assert not (tmp_path / "Film.en.forced.srt").exists()


def test_a_stopped_film_resumes_with_its_foreign_stretches(tmp_path: Path) -> None:
    audio = english_then_german(scenes=3)
    film = tmp_path / "Film.mkv"
    whole = FakeMedia(audio)
    process_media_file(film, FORCED, whole.tools(Hearing(batch_size=2)))
    first = Hearing(batch_size=2)
    checkpoints = stopped(audio, first, lambda: len(first.calls) >= 4, settings=FORCED,
                          path=film)
    resume = checkpoints.load()
    assert resume is not None and resume.foreign and resume.decoded_seconds > 30
    media = FakeMedia(audio)
    process_media_file(film, FORCED, media.tools(Hearing(batch_size=2)),
                       Hooks(checkpoints=checkpoints))
    assert media.written == whole.written


def test_a_scene_that_starts_inside_a_chunk_is_cut_out_of_it_and_translated(
        tmp_path: Path) -> None:
    """German from 60 to 69 s, inside a chunk that goes on in English: the chunk is heard
    again in halves, and the German run alone is decoded again, translated."""
    levels = (ENGLISH,) * 12 + (GERMAN,) * 2 + (ENGLISH,) * 10
    audio = np.concatenate([np.concatenate([tone(4, level), silence(1)]) for level in levels])
    media, transcriber = FakeMedia(audio), Hearing(batch_size=2)
    outcome = process_media_file(tmp_path / "Film.mkv", FORCED, media.tools(transcriber))
    forced = media.written[tmp_path / "Film.en.forced.srt"]
    assert forced[0].start_seconds >= 59.5 and forced[-1].end_seconds <= 69.5
    assert [language for _, language in transcriber.calls].count("de>en") == 1
    assert 0 < outcome.detection_windows <= 2 * 96 / 30 + 4


def test_a_mixed_stretch_with_no_budget_left_to_cut_stays_in_the_film_s_language() -> None:
    """Taken for foreign, its English would be lost to a translation; taken for the film's
    language, a foreign line in it is at worst transcribed badly."""
    finder = ForeignFinder("en", (), lambda audios: [{"de": 0.6, "en": 0.4}
                                                     for _ in audios])
    finder.windows = 100  # the budget spent
    chunk = chunk_of(*[(4.0, ENGLISH)] * 3, *[(4.0, GERMAN)] * 3)
    assert finder.label(chunk, heard={"de": 0.6, "en": 0.4}) == [("en", chunk)]
    assert finder.windows == 100
