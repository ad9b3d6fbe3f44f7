"""Quiet dialogue: the levels measured as the audio is read (pydub), a file called quiet
when its dialogue sits far below its loudest passages, the second look where detection
heard no speech but something covers it, and soft lines raised before decoding."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from subtitled.config import Task, TranscribeSettings
from subtitled.engines.base import Segment, Word
from subtitled.errors import EnvironmentFault
from subtitled.filters import is_anomaly
from subtitled.levels import FLOOR_DBFS, Levels, dbfs, raised, segment
from subtitled.media import MediaInfo
from subtitled.pipeline import process_media_file
from subtitled.pipeline.engine_calls import batch_or_each
from subtitled.pipeline.second_look import MIN_WINDOWS, Window, _windows, sure
from subtitled.speech import Chunk, Piece
from tests.unit.fakes import FakeMedia, FakeTranscriber, OutOfMemoryError, silence, tone
from tests.unit.test_speech import LoudnessProbabilities

RATE = 16_000
MOVIE = Path("/media/Movie.mkv")
# The fake detection hears speech above 0.1 on average; the fake decoder words above
# 0.01: a tone at 0.05 is a voice under a bed, which only the decoder hears.
HIDDEN = 0.05


def speech_chunk(*levels: float, seconds: float = 2.0) -> Chunk:
    """A chunk of pieces, each `seconds` of a tone at its level, back to back."""
    audio = np.concatenate([tone(seconds, level) for level in levels])
    pieces = tuple(Piece(i * seconds, 10.0 + i * seconds, seconds) for i in range(len(levels)))
    return Chunk(audio, pieces)


def fed(audio: np.ndarray, chunks: Sequence[Chunk] = (), block: float = 0.7) -> Levels:
    levels = Levels(margin_db=15.0, bed_margin_db=15.0)
    size = int(block * RATE)
    for start in range(0, len(audio), size):
        levels.add_block(audio[start:start + size])
    for chunk in chunks:
        levels.add_chunk(chunk)
    return levels


def test_each_second_is_measured_whatever_the_blocks_and_the_last_part_too() -> None:
    audio = np.concatenate([tone(3, 0.5), silence(2), tone(0.5, 0.05)])
    levels = fed(audio)
    dialogue = levels.finish()
    assert levels.level(0, 3) == pytest.approx(dbfs(segment(tone(1, 0.5))), abs=0.1)
    assert levels.level(3, 5) == FLOOR_DBFS  # digital silence
    assert levels.level(5, 6) == pytest.approx(-26.0, abs=0.2)  # the half second at the end
    assert dialogue.loud_dbfs == pytest.approx(-6.0, abs=0.2)


def test_a_file_whose_dialogue_sits_far_below_its_loudest_passages_is_quiet() -> None:
    music, speech = tone(20, 0.5), voice(10, 0.03)  # -6 and about -32 dBFS, over silence
    audio = np.concatenate([music, speech])
    quiet = fed(audio, [spoken(audio, 20, 30)]).finish()
    assert quiet.quiet and quiet.dialogue_dbfs == pytest.approx(dbfs(segment(speech)), abs=0.1)
    assert quiet.describe() == "dialogue at -32 dBFS (38 dB above the sound under it), its" \
        " loudest passages at -6 dBFS"
    # Dialogue as loud as the rest: not quiet.
    audio = np.concatenate([music, voice(10, 0.5)])
    assert not fed(audio, [spoken(audio, 20, 30)]).finish().quiet
    # No speech found in a file with sound in it: detection heard none of what is there.
    assert fed(tone(30, 0.05)).finish().quiet
    # Nothing but silence, or a recording's noise floor: nothing to hide a voice.
    assert not fed(silence(30)).finish().quiet
    assert not fed(tone(30, 10 ** (-65 / 20))).finish().quiet


def voice(seconds: float, level: float) -> np.ndarray:
    """Syllables: 0.2 s at `level`, then 0.1 s 40 dB under it, as speech dips between
    them."""
    syllable = np.concatenate([tone(0.2, level), tone(0.1, level / 100)])
    return np.tile(syllable, int(np.ceil(seconds / 0.3)))[:int(seconds * RATE)]


def noise(seconds: float, level: float) -> np.ndarray:
    return (np.random.default_rng(0).standard_normal(int(seconds * RATE)) * level).astype(
        np.float32)


def spoken(audio: np.ndarray, start: float, end: float) -> Chunk:
    """The chunk detection cuts from `audio` where it heard speech, `start` to `end`."""
    return Chunk(audio[int(start * RATE):int(end * RATE)], (Piece(0.0, start, end - start),))


@pytest.mark.parametrize(("bed", "quiet"), [
    ("none", False),  # dense dialogue over silence: its own dips show the floor
    ("20 dB under", False),  # a film's score under its dialogue
    ("as loud", True),  # buried: the chunk's level is the bed's
    ("10 dB over", True),
])
def test_a_voice_buried_in_a_bed_as_loud_as_the_rest_of_the_file_is_quiet(
        bed: str, quiet: bool) -> None:
    under = {"none": 0.0, "20 dB under": 0.01, "as loud": 0.1, "10 dB over": 0.3}[bed]
    # A minute of the bed, the voice over it from 20 s to 40 s: the loudest passages are
    # the dialogue's own, so only the bed can make the file quiet.
    audio = noise(60, under) + np.concatenate([silence(20), voice(20, 0.1), silence(20)])
    dialogue = fed(audio, [spoken(audio, 20, 30), spoken(audio, 30, 40)]).finish()
    assert dialogue.quiet is quiet, dialogue
    assert dialogue.above_bed_db is not None
    assert (dialogue.above_bed_db < 15) is quiet
    if quiet:
        assert "dB above the sound under it" in dialogue.describe()


def test_a_steady_sound_beside_silence_is_not_taken_for_a_buried_voice() -> None:
    # No dips in it (the unit tests' tones), but silence on either side: nothing under it.
    audio = np.concatenate([silence(10), tone(10, 0.1), silence(10)])
    dialogue = fed(audio, [spoken(audio, 10, 20)]).finish()
    assert not dialogue.quiet and dialogue.above_bed_db is not None and \
        dialogue.above_bed_db > 40


def test_the_dialogue_level_is_the_median_by_length() -> None:
    levels = fed(silence(1), [speech_chunk(0.5, seconds=1.0), speech_chunk(0.01, seconds=5.0),
                              speech_chunk(0.02, seconds=3.0)])
    assert levels.dialogue_dbfs == pytest.approx(dbfs(segment(tone(1, 0.01))), abs=0.1)


def test_speech_hides_only_where_detection_heard_none_and_something_is_heard() -> None:
    # 0-10 s music, 10-14 s speech (found), 14-15 s music, 15-20 s silence, 20-27 s music
    audio = np.concatenate([tone(10, 0.2), tone(4, 0.2), tone(1, 0.2), silence(5),
                            tone(7, 0.2)])
    levels = fed(audio, [speech_chunk(0.2, 0.2)])
    levels.finish()
    # The second of music between the speech and the silence is a pause, not a place.
    assert list(levels.hiding_places(2.0)) == [(0.0, 10.0), (20.0, 27.0)]


def test_a_place_is_heard_in_whole_windows_the_last_ending_where_it_does() -> None:
    # A shorter place in a window around it: the audio on either side is context.
    assert _windows(5.0, 20.0) == [Window(0.0, 30.0, 5.0, 20.0)]
    assert _windows(40.0, 50.0) == [Window(30.0, 60.0, 40.0, 50.0)]
    assert _windows(0.0, 65.0) == [Window(0.0, 30.0, 0.0, 30.0), Window(30.0, 60.0, 30.0, 60.0),
                                   Window(35.0, 65.0, 60.0, 65.0)]


def test_a_soft_piece_is_raised_to_the_dialogue_level_and_a_loud_one_left() -> None:
    chunk = speech_chunk(0.3, 0.01, 0.3)
    louder, gain = raised(chunk, dbfs(segment(tone(1, 0.3))), below_db=10.0)
    assert gain == pytest.approx(29.5, abs=0.2)
    assert np.abs(louder.audio[:2 * RATE]).max() == pytest.approx(0.3, abs=1e-3)
    assert np.abs(louder.audio[2 * RATE:4 * RATE]).max() == pytest.approx(0.3, abs=0.01)
    assert louder.pieces == chunk.pieces and len(louder.audio) == len(chunk.audio)
    # Never past full scale, at most 30 dB, and only well below the dialogue.
    near_full, gain = raised(speech_chunk(0.5), 0.0, below_db=3.0)
    assert np.abs(near_full.audio).max() < 1.0 and 0 < gain < 6.1
    assert raised(speech_chunk(0.001), -6.0, below_db=10.0)[1] == pytest.approx(30.0)
    unchanged = speech_chunk(0.2, 0.3)
    assert raised(unchanged, -12.0, below_db=10.0) == (unchanged, 0.0)
    # The first chunk of a file, with no dialogue level yet: its own speech's.
    assert raised(speech_chunk(0.3, 0.3, 0.3, 0.003), None, below_db=10.0)[1] > 30 - 1


def test_a_line_said_softly_reaches_the_engine_at_the_dialogue_s_level() -> None:
    # The fake decoder hears nothing under 0.01: the soft line is lost unless raised.
    audio = np.concatenate([silence(1), tone(4, 0.5), silence(2), tone(4, 0.0075),
                            silence(1)])
    outcomes = []
    for below in (10.0, None):
        settings = TranscribeSettings()
        settings = replace(settings, speech=replace(settings.speech, raise_below_db=below))
        tools = replace(FakeMedia(audio).tools(FakeTranscriber()),
                        # detection that finds the soft line too
                        speech_probabilities=partial(LoudnessProbabilities, 0.005))
        outcomes.append(process_media_file(MOVIE, settings, tools))
    raised_line, as_it_was = outcomes
    assert raised_line.cue_count > as_it_was.cue_count
    assert as_it_was.cue_count >= 1  # the loud line, either way


@dataclass
class Hearing(FakeTranscriber):
    """Says how sure it is: `no_speech` and `logprob` on every segment."""

    no_speech: float = 0.0
    logprob: float = 0.0
    peaks: list[float] = field(default_factory=list)  # of each window decoded

    def transcribe_batch(self, audios: Sequence[np.ndarray], *, language: str, task: Task,
                         temperature: float = 0.0, prompt: str | None = None
                         ) -> list[list[Segment]]:
        self.peaks += [float(np.abs(audio).max()) for audio in audios]
        return [[replace(s, no_speech_prob=self.no_speech, avg_logprob=self.logprob)
                 for s in found] for found in super().transcribe_batch(
                     audios, language=language, task=task, temperature=temperature,
                     prompt=prompt)]


def test_a_voice_detection_missed_under_a_bed_is_found_by_a_second_look() -> None:
    audio = np.concatenate([silence(2), tone(12, HIDDEN), silence(2)])
    transcriber = Hearing()
    outcome = process_media_file(MOVIE, TranscribeSettings(),
                                 FakeMedia(audio).tools(transcriber))
    assert outcome.status == "written" and outcome.second_look_words >= 10
    assert outcome.quiet == "no dialogue found, its loudest passages at -26 dBFS"
    # One window around the 12 s of sound (the whole 16 s file), then the stretch its
    # words lie in, heard again alone (a word a second from 2 s to 13.5 s, and 0.2 s
    # around it, detection's own padding).
    assert [seconds for seconds, _ in transcriber.calls] == [pytest.approx(16.0),
                                                             pytest.approx(11.9)]
    # Turned off: nothing is found.
    off = TranscribeSettings()
    off = replace(off, speech=replace(off.speech, second_look=False))
    outcome = process_media_file(MOVIE, off, FakeMedia(audio).tools(Hearing()))
    assert outcome.status == "no-speech" and outcome.second_look_words == 0


def test_the_second_look_keeps_only_what_whisper_is_sure_is_speech() -> None:
    audio = np.concatenate([silence(2), tone(12, HIDDEN), silence(2)])
    for unsure in (Hearing(no_speech=0.7, logprob=-1.1), Hearing(logprob=-1.2)):
        outcome = process_media_file(MOVIE, TranscribeSettings(),
                                     FakeMedia(audio).tools(unsure))
        assert outcome.status == "no-speech" and outcome.second_look_words == 0
    segments = Hearing().say(tone(4, 0.5), "en")
    anomalous = [replace(s, words=tuple(replace(w, probability=0.05) for w in s.words))
                 for s in segments]
    assert sure(segments, TranscribeSettings()) == segments
    assert sure(anomalous, TranscribeSettings()) == []


def test_a_silent_file_gets_no_second_look() -> None:
    transcriber = Hearing()
    outcome = process_media_file(MOVIE, TranscribeSettings(),
                                 FakeMedia(silence(40)).tools(transcriber))
    assert outcome.status == "no-speech" and outcome.quiet is None
    assert transcriber.calls == []


def test_the_second_look_takes_at_most_its_budget_the_loudest_places_first() -> None:
    # Six places of 10 s under beds of rising level, between stretches of silence.
    parts = []
    for number in range(6):
        parts += [tone(10, HIDDEN * (1 + number / 10)), silence(3)]
    transcriber = Hearing()
    process_media_file(MOVIE, TranscribeSettings(),
                       FakeMedia(np.concatenate(parts)).tools(transcriber))
    looked = [seconds for seconds, _ in transcriber.calls][:MIN_WINDOWS]
    # No decoding of its own: the least budget, and each window that heard words once
    # more, closer.
    assert len(transcriber.calls) == 2 * MIN_WINDOWS
    # Each in a window around it, the last cut short by the end of the file.
    assert looked == [pytest.approx(30.0)] * (MIN_WINDOWS - 1) + [pytest.approx(23.0)]
    # The four loudest, the last four places, in time order (each window reaches into
    # the place after it, louder, but for the last).
    assert transcriber.peaks[:MIN_WINDOWS] == pytest.approx(
        [HIDDEN * (1 + n / 10) for n in (3, 4, 5, 5)], abs=1e-3)


@dataclass
class Closer(Hearing):
    """Hears the first window as `Hearing` does; in each decode after it, as `again`
    says: "sure" of everything, "unsure" of everything, or "first half": only the words
    of the first half of the chunk."""

    again: str = "sure"

    def transcribe_batch(self, audios: Sequence[np.ndarray], *, language: str, task: Task,
                         temperature: float = 0.0, prompt: str | None = None
                         ) -> list[list[Segment]]:
        found = super().transcribe_batch(audios, language=language, task=task,
                                         temperature=temperature, prompt=prompt)
        if len(self.calls) == 1:
            return found
        if self.again == "unsure":
            return [[replace(s, avg_logprob=-2.0) for s in f] for f in found]
        if self.again == "first half":
            return [[replace(s, words=tuple(w for w in s.words
                                            if w.end_seconds <= len(audio) / RATE / 2))
                     for s in f] for f, audio in zip(found, audios, strict=True)]
        return found


@pytest.mark.parametrize(("again", "words"), [
    # The fake's words name the second of the chunk they were heard in: 2 to 6 and 12 to
    # 16 in the window; 0 to 4 and 5 to 8 in the 9.8 s of the two stretches glued.
    ("sure", [0, 1, 2, 3, 4, 5, 6, 7, 8]),
    ("unsure", [2, 3, 4, 5, 6, 12, 13, 14, 15, 16]),  # the window's words stand
    ("first half", [0, 1, 2, 3, 4, 12, 13, 14, 15, 16]),  # each stretch on its own
])
def test_where_a_window_hears_a_voice_its_stretches_are_heard_again_alone(
        again: str, words: list[int]) -> None:
    # Two lines under a bed that neither detection nor the fake decoder hears (-46 dBFS,
    # audible): 2.5 s to 6.5 s and 12.5 s to 16.5 s of a 20 s file.
    bed = 0.005
    audio = np.concatenate([tone(2.5, bed), tone(4, HIDDEN), tone(6, bed), tone(4, HIDDEN),
                            tone(3.5, bed)])
    transcriber, media = Closer(again=again), FakeMedia(audio)
    outcome = process_media_file(MOVIE, TranscribeSettings(), media.tools(transcriber))
    # The whole file in one window, then the two stretches its words lie in (a word a
    # second, 2 s to 6.5 s and 12 s to 16.5 s; 0.2 s around each), glued: 9.8 s.
    assert [seconds for seconds, _ in transcriber.calls] == [pytest.approx(20.0),
                                                             pytest.approx(9.8)]
    assert outcome.status == "written" and outcome.second_look_words == len(words)
    (cues,) = media.written.values()
    assert " ".join(cue.text for cue in cues).split() == [f"en{n}" for n in words]
    # Placed where they were said (the fake's words start on whole seconds of the chunk:
    # up to 0.7 s early), whichever decode heard them.
    assert cues[0].start_seconds == pytest.approx(2.2, abs=0.5)
    assert cues[-1].end_seconds == pytest.approx(16.0, abs=0.7)


def test_a_voice_too_short_to_be_heard_alone_keeps_the_window_s_words() -> None:
    # 2 s of a voice under the bed: its stretch (under 2 s of words) is not decoded
    # again; Whisper makes words up over scraps that short.
    audio = np.concatenate([tone(4, 0.005), tone(2, HIDDEN), tone(4, 0.005)])
    transcriber = Closer(again="unsure")
    outcome = process_media_file(MOVIE, TranscribeSettings(),
                                 FakeMedia(audio).tools(transcriber))
    assert [seconds for seconds, _ in transcriber.calls] == [pytest.approx(10.0)]
    assert outcome.second_look_words == 2


def test_a_track_that_starts_late_is_read_where_its_stretch_is_on_the_programme() -> None:
    """ffmpeg seeks on the programme's timeline: a track 2 s late is read 2 s on."""
    media = FakeMedia(np.concatenate([silence(2), tone(12, HIDDEN), silence(2)]), offset=2.0)
    asked: list[float | None] = []
    tools = media.tools(Hearing())

    def open_audio(info: MediaInfo, start: float | None,
                   duration: float | None) -> Iterable[np.ndarray]:
        asked.append(start)
        return media.open_audio(info, start if start is None else start - 2.0, duration)

    outcome = process_media_file(MOVIE, TranscribeSettings(),
                                 replace(tools, open_audio=open_audio))
    assert asked[-1] == pytest.approx(2.0)  # source 0 s, the window around 2 to 14 s
    # The words are placed on the programme: from 2 s of the track, 4 s into the film.
    assert outcome.status == "written" and outcome.second_look_words >= 10
    (cues,) = media.written.values()
    assert cues[0].start_seconds == pytest.approx(4.0, abs=0.6)


def test_a_window_read_a_few_samples_long_is_cut_to_its_length() -> None:
    """ffmpeg's -t gives a few samples over now and then; the engine gets 30 s exactly."""
    media = FakeMedia(np.concatenate([silence(2), tone(40, HIDDEN), silence(2)]))
    transcriber = Hearing()
    tools = media.tools(transcriber)

    def open_audio(info: MediaInfo, start: float | None,
                   duration: float | None) -> Iterable[np.ndarray]:
        yield from media.open_audio(info, start, duration)
        if duration is not None:
            yield np.full(3, HIDDEN, dtype=np.float32)

    process_media_file(MOVIE, TranscribeSettings(), replace(tools, open_audio=open_audio))
    assert transcriber.calls and max(seconds for seconds, _ in transcriber.calls) <= 30.0


def test_whisper_s_anomaly_rule_needs_words_to_judge() -> None:
    assert not is_anomaly(Segment(0.0, 2.0, " Hello there.", ()))
    # A full stop heard over a chord (its only word): a hallucination.
    assert is_anomaly(Segment(0.0, 2.0, " .", (Word(0.5, 0.52, " .", 0.9),)))


def test_out_of_memory_a_batch_is_heard_window_by_window_and_one_window_is_a_fault() -> None:
    released: list[int] = []

    def call(items: Sequence[int]) -> list[int]:
        if len(items) > 1 or items[0] == 13:
            raise OutOfMemoryError("CUDA out of memory")
        return [items[0] * 2]

    def heard(items: list[int]) -> list[int]:
        return batch_or_each(call, items, lambda computing: None, lambda: released.append(1),
                             what="window", path=MOVIE, stage="transcribe")

    assert heard([1, 2, 3]) == [2, 4, 6] and released == [1]
    with pytest.raises(EnvironmentFault, match="out of memory even on one window") as fault:
        heard([13])
    assert fault.value.kind == "memory"
