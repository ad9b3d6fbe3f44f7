from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from subtitled.config import LanguageSettings, OutputSettings, Task, TranscribeSettings
from subtitled.cues import Cue
from subtitled.engines.base import Segment, Word
from subtitled.errors import ConfigError, EngineStuck, EnvironmentFault
from subtitled.pipeline import Hooks, decoder, process_media_file
from subtitled.pipeline.decoder import RETRIES_PER_WINDOW
from subtitled.pipeline.tools import Previous
from tests.unit.fakes import FakeMedia, FakeTranscriber, OutOfMemoryError, silence, tone

SETTINGS = TranscribeSettings()
MOVIE = Path("/films/Movie.mkv")


def with_language(**changes: object) -> TranscribeSettings:
    return replace(SETTINGS, language=replace(SETTINGS.language, **changes))  # type: ignore[arg-type]


def test_speech_becomes_a_subtitle_named_after_the_voted_language() -> None:
    media = FakeMedia(np.concatenate([silence(2), tone(6), silence(2)]))
    outcome = process_media_file(MOVIE, SETTINGS, media.tools(FakeTranscriber()))
    assert outcome.status == "written"
    assert outcome.output == Path("/films/Movie.en.srt")
    assert outcome.language == "en"
    assert outcome.audio_seconds == pytest.approx(10.0)
    cues = media.written[Path("/films/Movie.en.srt")]
    assert outcome.cue_count == len(cues) > 0
    # Words are placed on the programme's timeline: the speech starts after 2 s of silence.
    assert cues[0].start_seconds == pytest.approx(2.0, abs=0.05)


class Hallucinating(FakeTranscriber):
    """Says a word for every second, silence and music included."""

    def say(self, audio: np.ndarray, language: str) -> list[Segment]:
        seconds = len(audio) / 16_000
        self.calls.append((seconds, language))
        words = tuple(Word(float(i), i + 0.5, f" w{i}") for i in range(int(seconds)))
        return [Segment(0.0, seconds, "".join(w.text for w in words), words)]


def test_a_short_file_is_decoded_whole_and_only_its_speech_is_kept() -> None:
    """As Whisper's own transcribe decodes it (one window, with the silence or music
    around the speech); what the engine hears outside the speech is dropped."""
    media = FakeMedia(np.concatenate([silence(5), tone(6), silence(8), tone(3), silence(5)]))
    transcriber = Hallucinating()
    process_media_file(MOVIE, SETTINGS, media.tools(transcriber))
    assert transcriber.calls == [(27.0, "en")]
    (cues,) = media.written.values()
    heard = [int(word[1:]) for cue in cues for word in cue.text.split()]
    # Speech at 5-11 s and 19-22 s: the words said there and at its edges (their middle
    # within half a second of it), none from the silence between.
    assert heard == [*range(5, 12), *range(19, 23)]


def test_the_track_start_offset_moves_every_cue() -> None:
    media = FakeMedia(np.concatenate([silence(2), tone(6)]), offset=1.5)
    process_media_file(MOVIE, SETTINGS, media.tools(FakeTranscriber()))
    (cues,) = media.written.values()
    assert cues[0].start_seconds == pytest.approx(3.5, abs=0.05)


def test_no_speech_writes_nothing() -> None:
    media = FakeMedia(silence(60))
    transcriber = FakeTranscriber()
    outcome = process_media_file(MOVIE, SETTINGS, media.tools(transcriber))
    assert outcome.status == "no-speech"
    assert media.written == {} and transcriber.calls == []


def test_an_existing_subtitle_is_kept_unless_forced(tmp_path: Path) -> None:
    movie = tmp_path / "Movie.mkv"
    (tmp_path / "Movie.en.srt").write_text("mine")
    media = FakeMedia(tone(5))
    transcriber = FakeTranscriber()
    outcome = process_media_file(movie, SETTINGS, media.tools(transcriber))
    assert outcome.status == "exists" and transcriber.calls == []
    forced = replace(SETTINGS, output=OutputSettings(overwrite=True))
    assert process_media_file(movie, forced, media.tools(transcriber)).status == "written"


def test_the_vote_spans_the_whole_file_not_its_start() -> None:
    # English for 30 s, then German (louder) for 270 s: the file is German.
    media = FakeMedia(np.concatenate([tone(30), tone(270, level=0.9)]))
    outcome = process_media_file(MOVIE, SETTINGS, media.tools(FakeTranscriber()))
    assert outcome.language == "de"


def test_allowed_languages_limit_the_vote() -> None:
    media = FakeMedia(tone(20, level=0.9))
    settings = with_language(allowed=("en", "fr"))
    assert process_media_file(MOVIE, settings, media.tools(FakeTranscriber())).language == "en"


def test_per_chunk_mode_decodes_each_stretch_in_its_own_language() -> None:
    media = FakeMedia(np.concatenate([tone(5), silence(2), tone(5, level=0.9)]))
    transcriber = FakeTranscriber()
    process_media_file(MOVIE, with_language(mode="per-chunk"), media.tools(transcriber))
    assert [language for _, language in transcriber.calls] == ["en", "de"]
    (cues,) = media.written.values()
    assert cues[0].text.startswith("en0") and cues[-1].text.startswith("de")


def test_translation_is_named_english() -> None:
    media = FakeMedia(tone(5, level=0.9))
    outcome = process_media_file(MOVIE, with_language(task="translate"),
                                 media.tools(FakeTranscriber()))
    assert outcome.output == Path("/films/Movie.en.srt")


def test_english_only_models_refuse_other_languages() -> None:
    media = FakeMedia(tone(5))
    with pytest.raises(ConfigError, match="only English"):
        process_media_file(MOVIE, with_language(language="de"),
                           media.tools(FakeTranscriber(multilingual=False)))


def test_out_of_gpu_memory_retries_on_halves_and_frees_the_cache() -> None:
    media = FakeMedia(tone(24))
    transcriber = FakeTranscriber(memory_seconds=10.0)
    outcome = process_media_file(MOVIE, SETTINGS, media.tools(transcriber))
    assert outcome.status == "written"
    assert transcriber.released >= 2
    assert all(seconds <= 10.0 for seconds, _ in transcriber.calls)
    assert sum(seconds for seconds, _ in transcriber.calls) == pytest.approx(24.0, abs=0.1)


def test_out_of_gpu_memory_on_tiny_work_is_the_machines_fault_not_the_files() -> None:
    media = FakeMedia(tone(8))
    with pytest.raises(EnvironmentFault, match="out of memory even on") as raised:
        process_media_file(MOVIE, SETTINGS, media.tools(FakeTranscriber(memory_seconds=1.0)))
    assert raised.value.path == MOVIE and raised.value.kind == "memory"
    assert raised.value.stage == "transcribe"


def test_other_engine_errors_are_not_mistaken_for_memory() -> None:
    class Broken(FakeTranscriber):
        def say(self, audio: np.ndarray, language: str) -> list[Segment]:
            raise ValueError("shape mismatch")

    # Not halved as memory would be: the engine's error, as the environment's fault, with
    # the engine's words and the original exception kept.
    with pytest.raises(EnvironmentFault, match="the engine failed: ValueError: shape "
                       "mismatch") as raised:
        process_media_file(MOVIE, SETTINGS, FakeMedia(tone(5)).tools(Broken()))
    assert raised.value.kind == "engine" and not isinstance(raised.value, EngineStuck)
    assert isinstance(raised.value.__cause__, ValueError)


def test_a_sticky_cuda_error_asks_for_a_new_process() -> None:
    class Stuck(FakeTranscriber):
        def say(self, audio: np.ndarray, language: str) -> list[Segment]:
            raise RuntimeError("CUDA error: an illegal memory access was encountered\n"
                               "CUDA kernel errors might be asynchronously reported")

    with pytest.raises(EngineStuck, match="only a restart clears") as raised:
        process_media_file(MOVIE, SETTINGS, FakeMedia(tone(5)).tools(Stuck()))
    assert raised.value.exit_code == 75


def test_language_settings_default_to_a_vote() -> None:
    assert LanguageSettings().mode == "vote"


def test_files_shorter_than_the_minimum_are_skipped() -> None:
    settings = replace(SETTINGS, skip=replace(SETTINGS.skip, min_duration_seconds=60.0))
    transcriber = FakeTranscriber()
    outcome = process_media_file(MOVIE, settings, FakeMedia(tone(30)).tools(transcriber))
    assert outcome.status == "skipped" and outcome.reason == "shorter than 60 s"
    assert transcriber.calls == []


def test_a_sidecar_in_another_flavour_counts_as_existing(tmp_path: Path) -> None:
    movie = tmp_path / "Movie.mkv"
    (tmp_path / "Movie.eng.sdh.ass").write_text("[Script Info]")
    outcome = process_media_file(movie, SETTINGS, FakeMedia(tone(5)).tools(FakeTranscriber()))
    assert outcome.status == "exists" and outcome.output == tmp_path / "Movie.eng.sdh.ass"


def speech_with_pauses(stretches: int, seconds: float = 5.0) -> np.ndarray:
    """`stretches` of loud audio with 2 s pauses: one glued chunk holds about four."""
    return np.concatenate([part for _ in range(stretches)
                           for part in (tone(seconds), silence(2))])


def test_chunks_are_decoded_in_batches_of_the_configured_size() -> None:
    media = FakeMedia(speech_with_pauses(20))  # 20 stretches → 5 chunks
    transcriber = FakeTranscriber(batch_size=2)
    outcome = process_media_file(MOVIE, SETTINGS, media.tools(transcriber))
    assert outcome.status == "written"
    assert len(transcriber.calls) >= 4
    assert transcriber.batches == [2] * (len(transcriber.calls) // 2)
    (cues,) = media.written.values()
    starts = [c.start_seconds for c in cues]
    assert starts == sorted(starts)


def test_batch_size_one_decodes_chunk_by_chunk() -> None:
    transcriber = FakeTranscriber(batch_size=1)
    process_media_file(MOVIE, SETTINGS, FakeMedia(speech_with_pauses(12)).tools(transcriber))
    assert transcriber.batches == [] and len(transcriber.calls) == 3


def test_a_batch_of_two_out_of_memory_is_decoded_one_chunk_at_a_time() -> None:
    media = FakeMedia(speech_with_pauses(8))  # two chunks of about 28 s
    transcriber = FakeTranscriber(memory_seconds=40.0)  # one chunk fits, two do not
    outcome = process_media_file(MOVIE, SETTINGS, media.tools(transcriber))
    assert outcome.status == "written"
    assert transcriber.batches == [] and transcriber.released == 1
    assert len(transcriber.calls) == 2 and transcriber.batch_size == 1


def test_a_batch_out_of_memory_is_halved_once_and_later_batches_keep_the_half() -> None:
    media = FakeMedia(speech_with_pauses(48))  # 12 chunks of about 28 s
    transcriber = FakeTranscriber(batch_size=4, memory_seconds=70.0)  # two fit, four do not
    outcome = process_media_file(MOVIE, SETTINGS, media.tools(transcriber))
    assert outcome.status == "written"
    assert transcriber.released == 1  # one failed batch: the halves and the rest fit
    assert transcriber.batch_size == 2
    assert set(transcriber.batches) == {2} and len(transcriber.batches) >= 5


class Skipping(FakeTranscriber):
    """Batched, it hears only the first 5 s of each chunk, like Whisper ending early."""

    def transcribe_batch(self, audios: Sequence[np.ndarray], *, language: str,
                         task: Task, temperature: float = 0.0, prompt: str | None = None
                         ) -> list[list[Segment]]:
        results = super().transcribe_batch(audios, language=language, task=task)
        if len(audios) == 1:
            return results
        return [[replace(s, words=tuple(w for w in s.words if w.start_seconds < 5))
                 for s in segments] for segments in results]


def assert_every_stretch_has_a_cue(cues: list[Cue], stretches: int) -> None:
    for stretch in range(stretches):
        start = stretch * 7.0  # 5 s of speech, 2 s of pause
        assert any(start - 0.3 <= c.start_seconds < start + 5 for c in cues), stretch


def test_speech_the_last_batch_skipped_is_decoded_again_and_lands_where_it_was_said(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The fake skips three stretches in four: a budget that does not bind (tested below).
    monkeypatch.setattr(decoder, "RETRIES_PER_WINDOW", 100)
    media = FakeMedia(speech_with_pauses(8))
    transcriber = Skipping()
    process_media_file(MOVIE, SETTINGS, media.tools(transcriber))
    (cues,) = media.written.values()
    assert_every_stretch_has_a_cue(cues, 8)
    # The batch of two chunks, then the six skipped stretches glued into a batch of two
    # windows, where the fake skips all but the first of each again: then the four left,
    # stretch by stretch, alone.
    assert transcriber.batches == [2, 2]
    assert all(seconds <= 30 for seconds, _ in transcriber.calls)
    assert len(transcriber.calls) == 2 + 2 + 4


def test_speech_a_batch_skipped_rides_along_with_the_next_batch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The fake skips three stretches in four, far more than the budget of retries allows
    # (below): here, a budget that does not bind.
    monkeypatch.setattr(decoder, "RETRIES_PER_WINDOW", 100)
    media = FakeMedia(speech_with_pauses(24))
    transcriber = Skipping(batch_size=2)
    process_media_file(MOVIE, SETTINGS, media.tools(transcriber))
    (cues,) = media.written.values()
    assert_every_stretch_has_a_cue(cues, 24)
    # Every batch but the last is full; the second passes are in the later batches.
    assert transcriber.batches and set(transcriber.batches) == {2}
    assert len(transcriber.calls) > 2 * len(transcriber.batches)


@dataclass
class Looping(FakeTranscriber):
    """Its text compresses like a loop (or, not `looping`, is improbable) below the
    temperature `hot_enough`, then is fine."""

    hot_enough: float = 0.2
    looping: bool = True

    def transcribe_batch(self, audios: Sequence[np.ndarray], *, language: str,
                         task: Task, temperature: float = 0.0, prompt: str | None = None
                         ) -> list[list[Segment]]:
        results = super().transcribe_batch(audios, language=language, task=task,
                                           temperature=temperature, prompt=prompt)
        if temperature >= self.hot_enough:
            return results
        wrong = {"compression_ratio": 3.0} if self.looping else {"avg_logprob": -1.5}
        return [[replace(s, **wrong) for s in segments]  # type: ignore[arg-type]
                for segments in results]


def test_a_chunk_whose_batched_text_looks_like_a_loop_is_decoded_again_hotter() -> None:
    transcriber = Looping()
    process_media_file(MOVIE, SETTINGS, FakeMedia(speech_with_pauses(8)).tools(transcriber))
    # The batch of two at temperature 0, then each chunk alone, once, at the next
    # temperature (not at 0 again: the batch decoded it there).
    assert transcriber.batches == [2] and transcriber.temperatures == [0.0, 0.0, 0.2, 0.2]


def test_text_improbable_at_first_and_sure_of_itself_once_sampled_is_still_flagged() -> None:
    """A sample that happens to pass Whisper's checks (a crowd heard as confident
    Yiddish) does not clear a file whose first decode the model did not believe: the
    verdict does not hang on a draw."""
    class SureOnceSampled(Looping):
        def transcribe_batch(self, audios: Sequence[np.ndarray], *, language: str,
                             task: Task, temperature: float = 0.0, prompt: str | None = None
                             ) -> list[list[Segment]]:
            results = super().transcribe_batch(audios, language=language, task=task,
                                               temperature=temperature, prompt=prompt)
            doubt = 0.1 if temperature < self.hot_enough else 0.95
            return [[replace(s, words=tuple(replace(w, probability=doubt) for w in s.words))
                     for s in segments] for segments in results]

    transcriber = SureOnceSampled(looping=False)
    media = FakeMedia(speech_with_pauses(8))
    outcome = process_media_file(MOVIE, SETTINGS, media.tools(transcriber))
    assert transcriber.temperatures == [0.0, 0.0, 0.2, 0.2]  # both were sampled, and passed
    assert outcome.status == "written" and outcome.flags == ("improbable",)
    assert outcome.quality is not None and "at the first decode, -0.05 kept" in outcome.quality
    # Believed at the first decode: not flagged.
    sure = process_media_file(MOVIE, SETTINGS, FakeMedia(speech_with_pauses(8)).tools(
        SureOnceSampled(looping=False, hot_enough=0.0)))
    assert sure.flags == ()


def test_retries_on_hard_audio_stay_within_the_budget_per_window() -> None:
    # Never good enough: every chunk would take Whisper's whole fallback (five more
    # decodes each) without a budget.
    transcriber = Looping(hot_enough=2.0, looping=False)
    media = FakeMedia(speech_with_pauses(40))  # 200 s of speech in about 10 chunks
    outcome = process_media_file(MOVIE, SETTINGS, media.tools(transcriber))
    first_pass = transcriber.temperatures.count(0.0)
    retries = len(transcriber.temperatures) - first_pass
    assert first_pass == outcome.windows_decoded - retries >= 8
    assert retries == RETRIES_PER_WINDOW * first_pass  # spent, and not one more
    assert len(transcriber.temperatures) == 2 * first_pass
    # Improbable text is kept (it is not likely non-speech): past the budget, the first
    # decodes stand.
    assert outcome.status == "written" and outcome.cue_count > 10


def test_a_short_hard_file_gets_one_hotter_try() -> None:
    # At most twice the windows of Whisper's own transcribe, which decodes it at least once.
    transcriber = Looping(hot_enough=1.0)
    process_media_file(MOVIE, SETTINGS, FakeMedia(tone(5)).tools(transcriber))
    assert transcriber.temperatures == [0.0, 0.2]


def test_a_hard_window_of_a_longer_file_takes_the_whole_fallback_from_the_pool() -> None:
    # The last chunk of the batch looks like a loop below 0.8; the easy ones leave it
    # their retries.
    class LastIsHard(Looping):
        def transcribe_batch(self, audios: Sequence[np.ndarray], *, language: str,
                             task: Task, temperature: float = 0.0, prompt: str | None = None
                             ) -> list[list[Segment]]:
            hard = super().transcribe_batch(audios[-1:], language=language, task=task,
                                            temperature=temperature)
            if len(audios) == 1:
                return hard
            return FakeTranscriber.transcribe_batch(
                self, audios[:-1], language=language, task=task,
                temperature=temperature) + hard

    transcriber = LastIsHard(hot_enough=0.8, batch_size=100)
    outcome = process_media_file(MOVIE, SETTINGS,
                                 FakeMedia(speech_with_pauses(40)).tools(transcriber))
    assert outcome.status == "written" and outcome.windows_decoded >= 9
    assert transcriber.temperatures[-4:] == [0.2, 0.4, 0.6, 0.8]
    assert transcriber.temperatures.count(0.0) == outcome.windows_decoded - 4


def test_hotwords_are_the_prompt_of_every_decode_up_to_whispers_prompt_reset() -> None:
    transcriber = Looping(hot_enough=0.8, batch_size=100)
    named = replace(SETTINGS, hotwords=("Zorblax", "Quenthir"))
    process_media_file(MOVIE, named, FakeMedia(speech_with_pauses(40)).tools(transcriber))
    prompts = dict(zip(transcriber.temperatures, transcriber.prompts, strict=True))
    assert prompts == {0.0: "Zorblax Quenthir", 0.2: "Zorblax Quenthir",
                       0.4: "Zorblax Quenthir", 0.6: None, 0.8: None}
    plain = Looping(batch_size=100)
    process_media_file(MOVIE, SETTINGS, FakeMedia(speech_with_pauses(40)).tools(plain))
    assert set(plain.prompts) == {None}


def test_audio_in_a_language_the_viewers_speak_needs_no_subtitle() -> None:
    skip = replace(SETTINGS, skip=replace(SETTINGS.skip, audio_languages=("en", "de")))
    # By the track's tag: decided before any audio is read.
    tagged = FakeMedia(speech_with_pauses(8), language="en")
    transcriber = FakeTranscriber()
    outcome = process_media_file(MOVIE, skip, tagged.tools(transcriber))
    assert (outcome.status, outcome.reason) == ("skipped",
                                                "its audio is in en (skip.audio_languages)")
    assert transcriber.calls == [] and tagged.written == {}
    # Untagged: by the language detected (loud audio is German to the fake), before decoding.
    untagged = FakeMedia(np.concatenate([tone(5, level=0.9), silence(2)] * 8))
    outcome = process_media_file(MOVIE, skip, untagged.tools(transcriber))
    assert outcome.status == "skipped" and "in de" in (outcome.reason or "")
    assert transcriber.calls == []
    # Another language is subtitled as before (the tag is not trusted: detected, English).
    only_german = replace(SETTINGS, skip=replace(SETTINGS.skip, audio_languages=("de",)))
    other = FakeMedia(speech_with_pauses(8), language="ja")
    outcome = process_media_file(MOVIE, only_german, other.tools(FakeTranscriber()))
    assert (outcome.status, outcome.language) == ("written", "en")


def test_a_trusted_track_tag_replaces_detection() -> None:
    trusting = replace(SETTINGS, language=replace(SETTINGS.language, trust_track_tags=True))
    media = FakeMedia(speech_with_pauses(8), language="ja")  # the fake would detect English
    outcome = process_media_file(MOVIE, trusting, media.tools(FakeTranscriber()))
    assert (outcome.status, outcome.language) == ("written", "ja")
    assert list(media.written) == [MOVIE.with_name("Movie.ja.srt")]
    # A tag outside the folder's allow-list, or one Whisper does not know, is not trusted.
    allowed = replace(trusting, language=replace(trusting.language, allowed=("en",)))
    outcome = process_media_file(MOVIE, allowed, FakeMedia(
        speech_with_pauses(8), language="ja").tools(FakeTranscriber()))
    assert outcome.language == "en"
    outcome = process_media_file(MOVIE, trusting, FakeMedia(
        speech_with_pauses(8), language="xq").tools(FakeTranscriber()))
    assert outcome.language == "en"


@dataclass
class Sparse(FakeTranscriber):
    """Batched, it hears every word of a chunk's first 5 s and one word in four after."""

    heard: int = 0  # words returned by batches of several chunks

    def transcribe_batch(self, audios: Sequence[np.ndarray], *, language: str,
                         task: Task, temperature: float = 0.0, prompt: str | None = None
                         ) -> list[list[Segment]]:
        results = super().transcribe_batch(audios, language=language, task=task)
        if len(audios) == 1:
            return results
        sparse = [[replace(s, words=tuple(w for i, w in enumerate(s.words)
                                          if w.start_seconds < 5 or i % 4 == 0))
                   for s in segments] for segments in results]
        self.heard += sum(len(s.words) for segments in sparse for s in segments)
        return sparse


def written_words(media: FakeMedia) -> list[str]:
    return " ".join(c.text for cues in media.written.values() for c in cues).split()


def test_past_the_budget_skipped_speech_keeps_the_words_its_batch_heard(
        monkeypatch: pytest.MonkeyPatch) -> None:
    media = FakeMedia(speech_with_pauses(8))
    process_media_file(MOVIE, SETTINGS, media.tools(Sparse()))
    with_budget = written_words(media)
    monkeypatch.setattr(decoder, "RETRIES_PER_WINDOW", 0)
    media = FakeMedia(speech_with_pauses(8))
    transcriber = Sparse()
    process_media_file(MOVIE, SETTINGS, media.tools(transcriber))
    assert transcriber.batches == [2] and len(transcriber.calls) == 2  # nothing again
    # Every word the batch heard is written, those of the stretches it skipped included;
    # with a budget, the second pass fills those stretches in.
    assert len(written_words(media)) == transcriber.heard > 10
    assert len(with_budget) > transcriber.heard


@dataclass
class HotAndEmpty(Looping):
    """Improbable at temperature 0; above it, nothing at all (or out of memory)."""

    out_of_memory: bool = False

    def transcribe_batch(self, audios: Sequence[np.ndarray], *, language: str,
                         task: Task, temperature: float = 0.0, prompt: str | None = None
                         ) -> list[list[Segment]]:
        if temperature > 0 and self.out_of_memory:
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        results = super().transcribe_batch(audios, language=language, task=task,
                                           temperature=temperature)
        return [[] for _ in results] if temperature > 0 else results


@pytest.mark.parametrize("out_of_memory", [False, True])
def test_a_hotter_try_that_hears_nothing_or_runs_out_of_memory_keeps_the_first_decode(
        out_of_memory: bool) -> None:
    transcriber = HotAndEmpty(hot_enough=2.0, looping=False, out_of_memory=out_of_memory)
    media = FakeMedia(tone(3))  # one chunk under 4 s: too short to halve
    outcome = process_media_file(MOVIE, SETTINGS, media.tools(transcriber))
    assert outcome.status == "written" and outcome.cue_count == 1
    if out_of_memory:
        assert transcriber.temperatures == [0.0] and transcriber.released == 1
    else:  # an empty try is a failed one: the first decode stands
        assert transcriber.temperatures == [0.0, 0.2]


def test_every_format_is_written_the_tracked_one_first() -> None:
    media = FakeMedia(tone(5))
    formats = replace(SETTINGS, output=OutputSettings(formats=("vtt", "srt", "lrc")))
    process_media_file(MOVIE, formats, media.tools(FakeTranscriber()))
    assert list(media.written) == [Path("/films/Movie.en.vtt"), Path("/films/Movie.en.srt"),
                                   Path("/films/Movie.lrc")]
    assert len({len(cues) for cues in media.written.values()}) == 1


def test_our_own_files_in_every_format_are_replaced_when_the_file_changed(
        tmp_path: Path) -> None:
    """Our WebVTT beside our SRT is not someone's subtitle that makes the file done."""
    movie = tmp_path / "Movie.mkv"
    for name in ("Movie.en.srt", "Movie.en.vtt"):
        (tmp_path / name).write_text("ours, from before the file changed")
    both = replace(SETTINGS, output=OutputSettings(formats=("srt", "vtt")))
    media = FakeMedia(tone(5))

    def run(previous: Previous) -> str:
        hooks = Hooks(previous=lambda target: previous)
        return process_media_file(movie, both, media.tools(FakeTranscriber()), hooks).status

    assert run("ours") == "written"
    assert list(media.written) == [tmp_path / "Movie.en.srt", tmp_path / "Movie.en.vtt"]
    assert run(None) == "exists"  # not ours: someone's


def test_someone_elses_file_in_another_format_is_kept(tmp_path: Path) -> None:
    """A tagger's Song.lrc beside a song whose tracked subtitle is an SRT."""
    song = tmp_path / "Song.mkv"
    (tmp_path / "Song.lrc").write_text("[00:01.00]theirs")
    media = FakeMedia(tone(5))
    both = replace(SETTINGS, output=OutputSettings(formats=("srt", "lrc")),
                   skip=replace(SETTINGS.skip, existing_sidecar=False))
    assert process_media_file(song, both, media.tools(FakeTranscriber())).status == "written"
    assert list(media.written) == [tmp_path / "Song.en.srt"]
    forced = replace(both, output=OutputSettings(formats=("srt", "lrc"), overwrite=True))
    media.written.clear()
    process_media_file(song, forced, media.tools(FakeTranscriber()))
    assert list(media.written) == [tmp_path / "Song.en.srt", tmp_path / "Song.lrc"]


class Mumbling(FakeTranscriber):
    """Its words with little confidence, as Whisper's on audio it cannot make out."""

    def say(self, audio: np.ndarray, language: str) -> list[Segment]:
        return [replace(s, words=tuple(replace(w, probability=0.1) for w in s.words))
                for s in super().say(audio, language)]


@pytest.mark.parametrize(("gate", "written"), [
    ("flag", "/films/Movie.en.srt"), ("review", "/films/Movie.en.review.srt"),
    ("hold", None), ("off", "/films/Movie.en.srt")])
def test_a_likely_bad_subtitle_is_flagged_then_written_for_review_or_held_as_gated(
        gate: str, written: str | None) -> None:
    media = FakeMedia(np.concatenate([silence(2), tone(6), silence(2)]))
    settings = replace(SETTINGS, quality=replace(SETTINGS.quality, gate=gate))  # type: ignore[arg-type]
    outcome = process_media_file(MOVIE, settings, media.tools(Mumbling()))
    assert outcome.status == ("held" if written is None else "written")
    assert list(media.written) == ([Path(written)] if written else [])
    assert outcome.output == (Path(written) if written else None)
    if gate == "off":
        assert outcome.quality is None and outcome.flags == ()
    else:
        assert outcome.flags == ("improbable",)
        assert outcome.quality is not None and outcome.quality.startswith("improbable text")
    # The same words, believed: nothing to say.
    sure = process_media_file(MOVIE, settings, FakeMedia(
        np.concatenate([silence(2), tone(6), silence(2)])).tools(FakeTranscriber()))
    assert sure.status == "written" and sure.quality is None


@pytest.mark.parametrize(("gate", "transcriber", "ours"), [
    # Our subtitle of the file before it changed, now judged bad: it does not stay up
    # beside the copy for review, nor while the subtitle is held back.
    ("review", Mumbling(), "Movie.en.srt"),
    ("hold", Mumbling(), "Movie.en.srt"),
    # Our copy for review before, in another language: gone once the subtitle is written.
    ("flag", FakeTranscriber(), "Movie.cy.review.srt"),
])
def test_our_earlier_subtitle_goes_where_this_outcome_does_not_put_it_back(
        tmp_path: Path, gate: str, transcriber: FakeTranscriber, ours: str) -> None:
    movie = tmp_path / "Movie.mkv"
    before = [ours, ours.replace(".srt", ".vtt"), "Movie.cy.srt"]  # the last: somebody's
    for name in before:
        (tmp_path / name).write_text("from before")
    settings = replace(SETTINGS, quality=replace(SETTINGS.quality, gate=gate),  # type: ignore[arg-type]
                       output=OutputSettings(formats=("srt", "vtt")))
    audio = np.concatenate([silence(2), tone(6), silence(2)])

    def run(previous: Previous) -> str:
        return process_media_file(movie, settings, FakeMedia(audio).tools(transcriber), Hooks(
            previous=lambda path: previous if path.name == ours else None)).status

    assert run("ours") == ("held" if gate == "hold" else "written")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Movie.cy.srt"]
    # Edited since it was written, it is not ours: kept.
    for name in before:
        (tmp_path / name).write_text("from before")
    run("edited")
    assert (tmp_path / ours).exists() and (tmp_path / ours.replace(".srt", ".vtt")).exists()
