"""Decoded words are checkpointed after each batch; a stopped or killed job resumes from
the last checkpoint instead of from zero, and decoding work is not repeated."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest

from subtitled.config import Task, TranscribeSettings
from subtitled.cues import Cue
from subtitled.engines.base import Segment, Word
from subtitled.errors import EnvironmentFault, TransientError
from subtitled.language import LanguageGuess
from subtitled.pipeline import Hooks, Resume, decoder, process_media_file
from subtitled.pipeline.checkpoints import decode, encode
from subtitled.pipeline.engine_calls import abandoned, call_watched
from tests.unit.fakes import FakeMedia, FakeTranscriber, silence, tone
from tests.unit.test_pipeline import MOVIE, SETTINGS, speech_with_pauses


class Stop(Exception):
    pass


@dataclass
class MemoryCheckpoints:
    """The job store's checkpoints, in memory: (decoded seconds, saved text) per save."""

    saved: list[tuple[float, str]] = field(default_factory=list)

    def load(self) -> Resume | None:
        if not self.saved:
            return None
        return decode(self.saved[-1][0], [text for _, text in self.saved])

    def save(self, decoded_seconds: float, language: LanguageGuess, words: list[Word],
             translated: list[Word] | None = None,
             foreign: Sequence[tuple[float, float]] | None = None) -> None:
        self.saved.append((decoded_seconds, encode(language, words, translated, foreign)))


def uninterrupted(audio: np.ndarray) -> tuple[list[Cue], int, str | None]:
    media = FakeMedia(audio)
    transcriber = FakeTranscriber(batch_size=2)
    outcome = process_media_file(MOVIE, SETTINGS, media.tools(transcriber))
    (cues,) = media.written.values()
    return cues, len(transcriber.calls), outcome.language


def stopped(audio: np.ndarray, first: FakeTranscriber,
            stop_when: Callable[[], bool], *, settings: TranscribeSettings = SETTINGS,
            path: Path = MOVIE) -> MemoryCheckpoints:
    """The checkpoints of a run that stops (as on a SIGTERM) at the first liveness check
    where `stop_when()` holds."""
    checkpoints = MemoryCheckpoints()

    def alive(computing: bool) -> None:
        del computing
        if stop_when():
            raise Stop

    with pytest.raises(Stop):
        process_media_file(path, settings, FakeMedia(audio).tools(first),
                           Hooks(alive=alive, checkpoints=checkpoints))
    return checkpoints


@pytest.mark.parametrize("stop_after", [1, 3, 6])
def test_a_stopped_job_resumes_from_its_checkpoint_with_the_same_words(
        stop_after: int) -> None:
    audio = np.concatenate([tone(6, level=0.9), speech_with_pauses(44)])
    expected, work, language = uninterrupted(audio)
    first = FakeTranscriber(batch_size=2)
    checkpoints = stopped(audio, first, lambda: len(first.calls) >= stop_after)
    assert checkpoints.saved, "the language is kept before the first batch"
    media = FakeMedia(audio)
    second = FakeTranscriber(batch_size=2)
    outcome = process_media_file(MOVIE, SETTINGS, media.tools(second),
                                 Hooks(checkpoints=checkpoints))
    (cues,) = media.written.values()
    # Speech detection ran over the same audio from the start: the same chunks, so the
    # same cues to the millisecond.
    assert cues == expected
    assert outcome.language == language
    # At most the batch in hand when the stop came is decoded twice.
    assert len(first.calls) + len(second.calls) <= work + 2


class SkippingTranscriber(FakeTranscriber):
    """Batches leave the second half of every chunk without words, as Whisper skips
    sentences of a full window: those stretches ride along with the next batch, so a
    checkpoint's line falls inside a chunk that was already decoded."""

    def transcribe_batch(self, audios: Sequence[np.ndarray], *, language: str, task: Task,
                         temperature: float = 0.0, prompt: str | None = None
                         ) -> list[list[Segment]]:
        found = super().transcribe_batch(audios, language=language, task=task)
        return [[replace(s, words=tuple(w for w in s.words if w.start_seconds < s.end_seconds / 2))
                 for s in segments] for segments in found]


@pytest.mark.parametrize("stop_after", [2, 5])
def test_a_resume_inside_a_decoded_chunk_gives_the_words_of_an_uninterrupted_run(
        stop_after: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # The fake skips half of all speech, far beyond the budget of retries; a resumed run
    # starts a budget of its own, so here the budget must not bind.
    monkeypatch.setattr(decoder, "RETRIES_PER_WINDOW", 100)
    audio = speech_with_pauses(40)
    whole = FakeMedia(audio)
    process_media_file(MOVIE, SETTINGS, whole.tools(SkippingTranscriber(batch_size=2)))
    first = SkippingTranscriber(batch_size=2)
    checkpoints = stopped(audio, first, lambda: len(first.batches) >= stop_after)
    resume = checkpoints.load()
    assert resume is not None and resume.words
    resumed = FakeMedia(audio)
    process_media_file(MOVIE, SETTINGS, resumed.tools(SkippingTranscriber(batch_size=2)),
                       Hooks(checkpoints=checkpoints))
    assert resumed.written == whole.written


def test_checkpoints_advance_with_the_decoding_and_hold_every_word_once() -> None:
    checkpoints = MemoryCheckpoints()
    media = FakeMedia(speech_with_pauses(40))
    process_media_file(MOVIE, SETTINGS, media.tools(FakeTranscriber(batch_size=2)),
                       Hooks(checkpoints=checkpoints))
    lines = [seconds for seconds, _ in checkpoints.saved]
    assert lines == sorted(lines) and lines[-1] > 200
    resume = checkpoints.load()
    assert resume is not None
    starts = [w.start_seconds for w in resume.words]
    assert len(starts) == len(set(starts))
    assert all(start < lines[-1] for start in starts)


def test_a_stop_asked_for_while_the_subtitle_is_being_finished_still_writes_it() -> None:
    stop = threading.Event()

    def progress(done: float, total: float | None, language: str | None) -> None:
        del language
        if total and done >= total:
            stop.set()  # SIGTERM, just as the last batch has been decoded

    def alive(computing: bool) -> None:
        del computing
        if stop.is_set():
            raise Stop

    media = FakeMedia(np.concatenate([speech_with_pauses(12), silence(3)]))
    outcome = process_media_file(MOVIE, SETTINGS, media.tools(FakeTranscriber()),
                                 Hooks(progress=progress, alive=alive))
    assert stop.is_set() and outcome.status == "written" and media.written


def test_an_engine_call_is_watched_while_it_computes_and_given_up_on_a_stop() -> None:
    seen: list[bool] = []
    release = threading.Event()

    def busy() -> int:
        deadline = time.monotonic() + 1.2
        while time.monotonic() < deadline:
            sum(range(10_000))  # CPU time: the process is computing
        release.wait(10)
        return 1

    def alive(computing: bool) -> None:
        seen.append(computing)
        if len(seen) == 3:
            raise Stop

    with pytest.raises(Stop):
        call_watched(busy, alive)
    assert seen[0] is True
    assert abandoned() == 1
    release.set()
    deadline = time.monotonic() + 10
    while abandoned() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert abandoned() == 0


def test_an_engine_error_reaches_the_caller_from_its_thread() -> None:
    def broken() -> None:
        raise ValueError("shape mismatch")

    with pytest.raises(EnvironmentFault, match="shape mismatch") as raised:
        call_watched(broken)
    assert isinstance(raised.value.__cause__, ValueError)


def test_memory_and_our_own_errors_come_back_as_they_were() -> None:
    def out_of_memory() -> None:
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def ours() -> None:
        raise TransientError("ffprobe gave no answer")

    with pytest.raises(RuntimeError, match="out of memory"):
        call_watched(out_of_memory)
    with pytest.raises(TransientError):
        call_watched(ours)


def test_unreadable_checkpoints_mean_starting_over() -> None:
    assert decode(12.0, ["{not json"]) is None
    assert decode(0.0, []) is None
    words = [Word(1.0, 1.5, " hello", 0.9)]
    resume = decode(3.0, [encode(LanguageGuess("de", 0.8, 5), words)])
    assert resume == Resume(3.0, LanguageGuess("de", 0.8, 5), tuple(words))




def test_a_hung_engine_call_does_not_look_alive_while_other_threads_compute() -> None:
    seen: list[bool] = []
    stop = threading.Event()

    def housekeeping() -> None:  # the daemon's own threads keep using some CPU
        while not stop.is_set():
            sum(range(10_000))

    other = threading.Thread(target=housekeeping)
    other.start()
    try:
        call_watched(lambda: stop.wait(1.6), seen.append)
    finally:
        stop.set()
        other.join()
    assert seen and not any(seen)
