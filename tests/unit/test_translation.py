"""The English translation beside the transcript (`language.also_translate`): decoded from
the same chunks in the same run, written beside it, kept through a stop, and never put
over an English subtitle that is someone else's."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from subtitled.config import OutputSettings, TranscribeSettings
from subtitled.config_file import transcribe_settings
from subtitled.cues import Cue
from subtitled.engines.base import Segment, Word
from subtitled.errors import ConfigError
from subtitled.language import LanguageGuess
from subtitled.media import MediaInfo
from subtitled.pipeline import Hooks, process_media_file
from subtitled.pipeline.checkpoints import decode, encode
from subtitled.pipeline.tools import Previous
from subtitled.service.requests import Request, settings_for
from subtitled.store.model import Fingerprint, Job
from tests.unit.fakes import FakeMedia, FakeTranscriber, silence, tone
from tests.unit.test_pipeline import Mumbling, with_language
from tests.unit.test_resume import SkippingTranscriber, stopped

TRANSLATING = with_language(also_translate=True)
TRANSCRIBING = with_language(language="de")  # (no vote: each run reads the audio once)
TRANSLATING_GERMAN = with_language(language="de", also_translate=True)
GERMAN = np.concatenate([silence(2), tone(12, level=0.9), silence(2)])  # loud: "de"
ENGLISH = np.concatenate([silence(2), tone(12), silence(2)])


def texts(cues: list[Cue]) -> list[str]:
    return [word for cue in cues for word in cue.text.split()]


def test_a_german_file_gets_its_transcript_and_an_english_translation_beside_it(
        tmp_path: Path) -> None:
    movie = tmp_path / "Movie.mkv"
    media, transcriber = FakeMedia(GERMAN), FakeTranscriber(batch_size=1)
    outcome = process_media_file(movie, TRANSLATING, media.tools(transcriber))
    assert outcome.status == "written" and outcome.language == "de"
    assert outcome.output == tmp_path / "Movie.de.srt"
    assert outcome.translation == tmp_path / "Movie.en.srt"
    # The transcript first (the tracked one), then the translation beside it.
    assert media.roles == {tmp_path / "Movie.de.srt": "tracked",
                           tmp_path / "Movie.en.srt": "beside"}
    transcript, translation = (media.written[tmp_path / f"Movie.{c}.srt"] for c in ("de", "en"))
    assert all(w.startswith("de") and ">" not in w for w in texts(transcript))
    assert texts(translation) == [w.replace("de", "de>en") for w in texts(transcript)]
    # The same speech, timed the same: the words come from the same chunks.
    assert [c.start_seconds for c in translation] == [c.start_seconds for c in transcript]


def test_translation_costs_one_more_decode_of_each_chunk_and_no_more_extraction() -> None:
    plain, translating = FakeTranscriber(batch_size=1), FakeTranscriber(batch_size=1)
    reads: list[float | None] = []

    class Counted(FakeMedia):
        def open_audio(self, info: MediaInfo, start: float | None,
                       duration: float | None) -> Iterable[np.ndarray]:
            reads.append(start)
            return super().open_audio(info, start, duration)

    for settings, transcriber in ((TRANSCRIBING, plain), (TRANSLATING_GERMAN, translating)):
        process_media_file(Path("/films/Movie.mkv"), settings,
                           Counted(GERMAN).tools(transcriber))
    assert reads == [None, None]  # the whole audio, once a run
    decoded = sorted(translating.calls)
    assert decoded == sorted([*plain.calls, *[(s, f"{c}>en") for s, c in plain.calls]])


def test_an_english_file_is_not_translated(tmp_path: Path) -> None:
    media, transcriber = FakeMedia(ENGLISH), FakeTranscriber()
    outcome = process_media_file(tmp_path / "Movie.mkv", TRANSLATING, media.tools(transcriber))
    assert outcome.output == tmp_path / "Movie.en.srt" and outcome.translation is None
    assert list(media.written) == [tmp_path / "Movie.en.srt"]
    assert all(">" not in language for _, language in transcriber.calls)


@pytest.mark.parametrize(("previous", "translated"), [
    (None, False),  # someone's English subtitle: kept, and nothing decoded for it
    ("edited", False),  # ours, edited since: kept
    ("ours", True),  # ours, from before the file changed: replaced
])
def test_an_english_subtitle_already_there_is_kept_unless_it_is_ours_unedited(
        tmp_path: Path, previous: Previous, translated: bool) -> None:
    (tmp_path / "Movie.en.srt").write_text("1\n00:00:01,000 --> 00:00:02,000\ntheirs\n")
    media, transcriber = FakeMedia(GERMAN), FakeTranscriber()
    hooks = Hooks(previous=lambda path: previous if path.name == "Movie.en.srt" else None)
    outcome = process_media_file(tmp_path / "Movie.mkv", TRANSLATING, media.tools(transcriber),
                                 hooks)
    assert outcome.status == "written" and outcome.output == tmp_path / "Movie.de.srt"
    assert (tmp_path / "Movie.en.srt" in media.written) is translated
    assert any(">en" in language for _, language in transcriber.calls) is translated


def test_the_translation_takes_the_formats_but_lrc_which_names_no_language(
        tmp_path: Path) -> None:
    settings = replace(TRANSLATING, output=OutputSettings(formats=("srt", "vtt", "lrc")))
    media = FakeMedia(GERMAN)
    process_media_file(tmp_path / "Song.mkv", settings, media.tools(FakeTranscriber()))
    assert sorted(p.name for p in media.written) == [
        "Song.de.srt", "Song.de.vtt", "Song.en.srt", "Song.en.vtt", "Song.lrc"]
    assert texts(media.written[tmp_path / "Song.lrc"])[0].startswith("de")  # the transcript's


@pytest.mark.parametrize("gate", ["review", "hold"])
def test_no_translation_of_a_subtitle_held_back_and_ours_from_before_goes(
        tmp_path: Path, gate: str) -> None:
    """A translation of doubtful words is as doubtful; our earlier one does not stay up."""
    (tmp_path / "Movie.en.srt").write_text("ours, from before the file changed")
    settings = replace(TRANSLATING, quality=replace(TRANSLATING.quality, gate=gate))  # type: ignore[arg-type]
    media = FakeMedia(GERMAN)
    hooks = Hooks(previous=lambda path: "ours" if path.name == "Movie.en.srt" else None)
    outcome = process_media_file(tmp_path / "Movie.mkv", settings, media.tools(Mumbling()),
                                 hooks)
    assert outcome.translation is None
    assert not any(path.name.startswith("Movie.en") for path in media.written)
    assert not (tmp_path / "Movie.en.srt").exists()


def test_a_stopped_translation_resumes_to_what_an_uninterrupted_run_writes(
        tmp_path: Path) -> None:
    audio = np.concatenate([np.concatenate([tone(8, level=0.9), silence(1)])] * 16)
    movie = tmp_path / "Movie.mkv"
    whole = FakeMedia(audio)
    process_media_file(movie, TRANSLATING_GERMAN, whole.tools(FakeTranscriber(batch_size=2)))

    first = FakeTranscriber(batch_size=2)
    checkpoints = stopped(audio, first, lambda: len(first.calls) >= 4,
                          settings=TRANSLATING_GERMAN, path=movie)
    resume = checkpoints.load()
    assert resume is not None and resume.translated and resume.decoded_seconds > 0
    media, second = FakeMedia(audio), FakeTranscriber(batch_size=2)
    process_media_file(movie, TRANSLATING_GERMAN, media.tools(second),
                       Hooks(checkpoints=checkpoints))
    # The same cues to the millisecond, in both languages.
    assert media.written == whole.written


def test_a_checkpoint_without_translation_resumes_without_one(tmp_path: Path) -> None:
    """Saved by a run that made none (the setting came on meanwhile): the part before
    the stop has no translation, so none is made rather than half of one."""
    audio = np.concatenate([np.concatenate([tone(8, level=0.9), silence(1)])] * 16)
    first = FakeTranscriber(batch_size=2)
    movie = tmp_path / "Movie.mkv"
    checkpoints = stopped(audio, first, lambda: len(first.calls) >= 4,
                          settings=TRANSCRIBING, path=movie)
    resume = checkpoints.load()
    assert resume is not None and resume.translated is None
    media = FakeMedia(audio)
    outcome = process_media_file(movie, TRANSLATING_GERMAN,
                                 media.tools(FakeTranscriber(batch_size=2)),
                                 Hooks(checkpoints=checkpoints))
    assert outcome.translation is None and list(media.written) == [tmp_path / "Movie.de.srt"]


def test_checkpoints_keep_the_translation_only_when_every_one_has_it() -> None:
    de = LanguageGuess("de", 0.9, 3)
    one, two = Word(1.0, 1.5, " eins"), Word(1.0, 1.5, " one")
    both = decode(5.0, [encode(de, [one], [two]), encode(de, [], [])])
    assert both is not None and both.words == (one,) and both.translated == (two,)
    mixed = decode(5.0, [encode(de, [one]), encode(de, [], [two])])
    assert mixed is not None and mixed.translated is None


def test_a_job_knows_the_subtitles_it_wrote_beside_its_own(tmp_path: Path) -> None:
    job = Job(1, tmp_path / "Movie.mkv", Fingerprint(1, 1, 1), "done", 0, 0, None, None, 0.0,
              None, "de", None, None, None, written_path=str(tmp_path / "Movie.de.srt"),
              written_sha256="a", beside={"Movie.en.srt": ("b", "c")})
    assert job.wrote(tmp_path / "Movie.de.srt") == ("a",)
    assert job.wrote(tmp_path / "Movie.en.srt") == ("b", "c")
    assert job.wrote(tmp_path / "elsewhere" / "Movie.en.srt") is None
    assert job.wrote(tmp_path / "Movie.fr.srt") is None


def test_settings_refuse_a_translation_beside_a_translation() -> None:
    def settings(sections: dict[str, object]) -> TranscribeSettings:
        return transcribe_settings(sections, lambda loc: ".".join(map(str, loc)))

    with pytest.raises(ConfigError, match="also_translate"):
        settings({"language": {"task": "translate", "also_translate": True}})
    with pytest.raises(ConfigError, match="knows only English"):
        settings({"model": {"name": "base.en"}, "language": {"also_translate": True}})
    assert settings({"language": {"also_translate": True}}) == \
        replace(TranscribeSettings(), language=replace(TranscribeSettings().language,
                                                       also_translate=True))


def test_a_client_s_request_gets_the_one_subtitle_it_asked_for() -> None:
    """Bazarr asks for a transcript: no translation or forced subtitle beside it (they
    would double its cost and be left in the spool)."""
    library = with_language(also_translate=True, forced_subtitles=True)
    asked = settings_for(library, Request("asr"))
    assert not asked.language.also_translate and not asked.language.forced_subtitles


@pytest.mark.parametrize("wrote", [None, "edited"])
def test_a_forced_redo_does_not_take_an_english_subtitle_that_is_not_ours(
        tmp_path: Path, wrote: Previous) -> None:
    """`retry --force` replaces whatever is there in the file's own language; the English
    subtitle beside it is another language, and someone's (or edited): kept."""
    (tmp_path / "Movie.en.srt").write_text("1\n00:00:01,000 --> 00:00:02,000\ntheirs\n")
    forced = replace(TRANSLATING, output=OutputSettings(overwrite=True))
    media = FakeMedia(GERMAN)
    outcome = process_media_file(tmp_path / "Movie.mkv", forced,
                                 media.tools(FakeTranscriber()),
                                 Hooks(previous=None, wrote=lambda path: wrote))
    assert outcome.output == tmp_path / "Movie.de.srt" and outcome.translation is None
    assert list(media.written) == [tmp_path / "Movie.de.srt"]


def test_the_one_shot_command_s_force_replaces_the_translation_it_wrote_before(
        tmp_path: Path) -> None:
    """Nothing records what the one-shot command wrote: `--force` replaces it all."""
    (tmp_path / "Movie.en.srt").write_text("1\n00:00:01,000 --> 00:00:02,000\nbefore\n")
    forced = replace(TRANSLATING, output=OutputSettings(overwrite=True))
    media = FakeMedia(GERMAN)
    outcome = process_media_file(tmp_path / "Movie.mkv", forced,
                                 media.tools(FakeTranscriber()))
    assert outcome.translation == tmp_path / "Movie.en.srt"


def test_a_translation_s_words_need_not_fill_the_speech_no_second_pass(
        tmp_path: Path) -> None:
    """A translation says in fewer words what was said: stretches its words leave bare
    are not decoded again, as the transcript's are."""
    audio = np.concatenate([np.concatenate([tone(8, level=0.9), silence(1)])] * 8)
    transcriber = SkippingTranscriber(batch_size=2)
    process_media_file(tmp_path / "Movie.mkv", TRANSLATING_GERMAN, FakeMedia(audio).tools(
        transcriber))
    transcript = [s for s, language in transcriber.calls if language == "de"]
    translation = [s for s, language in transcriber.calls if language == "de>en"]
    assert len(transcript) > len(translation) == 3  # the chunks, once each


class Unsure(FakeTranscriber):
    """Every window under Whisper's log-probability threshold, as a translation's are."""

    def say(self, audio: np.ndarray, language: str) -> list[Segment]:
        return [replace(s, avg_logprob=-1.5) for s in super().say(audio, language)]


def test_an_improbable_translation_is_not_decoded_again_but_a_loop_would_be(
        tmp_path: Path) -> None:
    transcriber = Unsure(batch_size=2)
    process_media_file(tmp_path / "Movie.mkv", TRANSLATING_GERMAN,
                       FakeMedia(GERMAN).tools(transcriber))
    tried = list(zip(transcriber.calls, transcriber.temperatures, strict=True))
    assert all(t == 0.0 for (_, language), t in tried if language == "de>en")
    assert any(t > 0.0 for (_, language), t in tried if language == "de")
