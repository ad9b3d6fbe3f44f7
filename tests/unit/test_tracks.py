"""One subtitle per audio language (`language.each_audio_language`): the main track's
subtitle as before, then one from each other track in a language no track before it
gave, written beside it; commentary left out, someone's subtitle kept, a track that
cannot be read said and left."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest

from subtitled.commands import describe
from subtitled.config import (
    DaemonSettings,
    OutputSettings,
    QualitySettings,
    TranscribeSettings,
    WatchRoot,
)
from subtitled.engines.base import Segment
from subtitled.errors import EnvironmentFault, MediaError
from subtitled.media import AudioStream, MediaInfo
from subtitled.pipeline import Hooks, process_media_file
from subtitled.pipeline.tools import Previous
from subtitled.service.requests import Request, settings_for
from tests.unit.fakes import FakeMedia, FakeTranscriber, silence, tone
from tests.unit.test_pipeline import with_language
from tests.unit.test_translation import texts

EACH = with_language(each_audio_language=True)
ENGLISH = np.concatenate([silence(2), tone(12), silence(2)])  # the fake hears "en"
GERMAN = np.concatenate([silence(2), tone(12, level=0.9), silence(2)])  # and "de"


class Unsure(FakeTranscriber):
    """Every word improbable: the quality gate judges each subtitle likely bad."""

    def say(self, audio: np.ndarray, language: str) -> list[Segment]:
        return [replace(s, words=tuple(replace(w, probability=0.2) for w in s.words))
                for s in super().say(audio, language)]


def stream(index: int, language: str | None = None, *, default: bool = False,
           avoided: bool = False, title: str = "") -> AudioStream:
    return AudioStream(index, language, title, 2, default, avoided, 0.0)


@dataclass
class Tracks(FakeMedia):
    """A file with several audio tracks, each its own samples; the first is the main one
    (the track chooser's choice)."""

    tracks: dict[AudioStream, np.ndarray] = field(default_factory=dict)
    unreadable: set[int] = field(default_factory=set)  # tracks whose decoding fails
    read: list[int] = field(default_factory=list)  # tracks opened, in order

    def probe(self, path: Path) -> MediaInfo:
        main = next(iter(self.tracks))
        return MediaInfo(path, main, len(self.audio) / 16_000, len(self.tracks),
                         audio_streams=tuple(self.tracks))

    def open_audio(self, info: MediaInfo, start: float | None,
                   duration: float | None) -> Iterable[np.ndarray]:
        self.read.append(info.audio.index)
        if info.audio.index in self.unreadable:
            raise MediaError("audio track 2: invalid data found when processing input",
                             stage="extract")
        self.audio = self.tracks[info.audio]
        return super().open_audio(info, start, duration)


def dubbed(*others: tuple[AudioStream, np.ndarray]) -> Tracks:
    tracks = {stream(1, "en", default=True): ENGLISH, **dict(others)}
    return Tracks(ENGLISH, tracks=tracks)


def test_other_tracks_leave_out_the_chosen_one_commentary_and_a_second_of_a_tag() -> None:
    main = stream(1, "ja", default=True)
    dub, second_dub = stream(2, "en"), stream(5, "en")
    commentary = stream(3, "en", title="Director's commentary", avoided=True)
    untagged, japanese_stereo = stream(4), stream(6, "ja")
    media = MediaInfo(Path("Film.mkv"), main, 60.0, 6, audio_streams=(
        main, dub, commentary, untagged, second_dub, japanese_stereo))
    assert media.other_tracks() == [dub, untagged]
    # The default track of a tag first.
    default_dub = replace(second_dub, default=True)
    media = replace(media, audio_streams=(main, dub, default_dub))
    assert media.other_tracks() == [default_dub]


def test_a_dubbed_film_gets_a_subtitle_from_each_audio_language(tmp_path: Path) -> None:
    movie = tmp_path / "Movie.mkv"
    media = dubbed((stream(2, "de"), GERMAN))
    outcome = process_media_file(movie, EACH, media.tools(FakeTranscriber()))
    assert outcome.status == "written" and outcome.language == "en"
    assert outcome.output == tmp_path / "Movie.en.srt"
    assert outcome.tracks == (tmp_path / "Movie.de.srt",)
    # The main track's is the tracked subtitle; the dub's is written beside it.
    assert media.roles == {tmp_path / "Movie.en.srt": "tracked",
                           tmp_path / "Movie.de.srt": "beside"}
    # Each from its own track: the fake says the language it hears.
    assert all(w.startswith("en") for w in texts(media.written[tmp_path / "Movie.en.srt"]))
    assert all(w.startswith("de") for w in texts(media.written[tmp_path / "Movie.de.srt"]))
    assert media.read[0] == 1 and 2 in media.read


def test_without_the_setting_only_the_main_track_is_read(tmp_path: Path) -> None:
    media = dubbed((stream(2, "de"), GERMAN))
    outcome = process_media_file(tmp_path / "Movie.mkv", TranscribeSettings(),
                                 media.tools(FakeTranscriber()))
    assert outcome.tracks == () and set(media.read) == {1}
    assert list(media.written) == [tmp_path / "Movie.en.srt"]


def test_a_second_track_in_the_main_language_writes_nothing_over_its_subtitle(
        tmp_path: Path) -> None:
    """An untagged stereo mix of the same dialogue: heard, found to be English, left."""
    media = dubbed((stream(2), ENGLISH))
    outcome = process_media_file(tmp_path / "Movie.mkv", EACH, media.tools(FakeTranscriber()))
    assert outcome.tracks == ()
    assert list(media.written) == [tmp_path / "Movie.en.srt"]
    assert media.roles[tmp_path / "Movie.en.srt"] == "tracked"


def test_a_subtitle_someone_put_there_in_the_dub_s_language_is_kept(tmp_path: Path) -> None:
    (tmp_path / "Movie.de.srt").write_text("someone's\n")
    previous: dict[Path, Previous] = {tmp_path / "Movie.de.srt": None}
    media = dubbed((stream(2, "de"), GERMAN))
    # A daemon's redo: it knows what it wrote; this one it did not.
    hooks = Hooks(previous=previous.get, wrote=previous.get)
    outcome = process_media_file(tmp_path / "Movie.mkv", EACH, media.tools(FakeTranscriber()),
                                 hooks)
    assert outcome.tracks == () and tmp_path / "Movie.de.srt" not in media.written
    # Ours from before is replaced.
    previous[tmp_path / "Movie.de.srt"] = "ours"
    outcome = process_media_file(tmp_path / "Movie.mkv", EACH, media.tools(FakeTranscriber()),
                                 hooks)
    assert outcome.tracks == (tmp_path / "Movie.de.srt",)


def test_a_track_that_cannot_be_read_is_left_and_the_main_subtitle_stands(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    media = dubbed((stream(2, "de"), GERMAN), (stream(3, "fr"), GERMAN))
    media.unreadable = {2}
    outcome = process_media_file(tmp_path / "Movie.mkv", EACH, media.tools(FakeTranscriber()))
    assert outcome.status == "written" and outcome.tracks == (tmp_path / "Movie.de.srt",)
    assert "audio track 2 (de): no subtitle from it" in caplog.text
    # Track 3 is tagged French but the fake hears German: the heard language names it.
    assert list(dict.fromkeys(media.read)) == [1, 2, 3]


def test_a_dub_s_likely_bad_subtitle_is_flagged_in_the_log_and_never_held(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    held = replace(EACH, quality=QualitySettings(gate="hold"))
    media = dubbed((stream(2, "de"), GERMAN))
    # Every word is improbable: the main subtitle is held, the dub's written.
    outcome = process_media_file(tmp_path / "Movie.mkv", held, media.tools(Unsure()))
    assert outcome.status == "held" and outcome.tracks == (tmp_path / "Movie.de.srt",)
    assert "audio track 2 (de): likely a bad subtitle: improbable text" in caplog.text


def test_a_root_turns_it_on_and_a_bazarr_request_never_gets_it(tmp_path: Path) -> None:
    anime = tmp_path / "anime"
    settings = DaemonSettings(watch=(WatchRoot(tmp_path / "films"),
                                     WatchRoot(anime, each_audio_language=True)),
                              state_dir=tmp_path / "state")
    assert settings.for_file(anime / "Show.mkv").language.each_audio_language
    assert not settings.for_file(tmp_path / "films" / "Film.mkv").language.each_audio_language
    request = Request("asr", language="ja")
    assert not settings_for(settings.for_file(anime / "Show.mkv"),
                            request).language.each_audio_language


def test_a_dub_s_subtitle_takes_the_formats_but_lrc_which_names_no_language(
        tmp_path: Path) -> None:
    settings = replace(EACH, output=OutputSettings(formats=("srt", "lrc", "vtt")))
    media = dubbed((stream(2, "de"), GERMAN))
    process_media_file(tmp_path / "Movie.mkv", settings, media.tools(FakeTranscriber()))
    assert media.roles == {tmp_path / "Movie.en.srt": "tracked",
                           tmp_path / "Movie.lrc": "beside", tmp_path / "Movie.en.vtt": "beside",
                           tmp_path / "Movie.de.srt": "beside",
                           tmp_path / "Movie.de.vtt": "beside"}


def test_the_one_shot_command_names_the_other_tracks_subtitles(tmp_path: Path) -> None:
    media = dubbed((stream(2, "de"), GERMAN))
    outcome = process_media_file(tmp_path / "Movie.mkv", EACH, media.tools(FakeTranscriber()))
    line, dub = describe(outcome), f"; {tmp_path}/Movie.de.srt from another audio track"
    assert " -> " in line and line.endswith(dub), line
    # The main track's subtitle was there already: the dub's is still said.
    exists = replace(outcome, status="exists", output=tmp_path / "Movie.en.srt")
    assert describe(exists).endswith(f"already exists (--force replaces it){dub}")


def test_an_english_dub_beside_an_english_translation_writes_nothing_over_it(
        tmp_path: Path) -> None:
    """The translation is written first; the dub's English has nothing to add, and never
    replaces it (both would be Movie.en.srt)."""
    settings = with_language(each_audio_language=True, also_translate=True)
    media = Tracks(GERMAN, tracks={stream(1, "de", default=True): GERMAN,
                                   stream(2, "en"): ENGLISH})
    outcome = process_media_file(tmp_path / "Movie.mkv", settings,
                                 media.tools(FakeTranscriber()))
    assert outcome.translation == tmp_path / "Movie.en.srt" and outcome.tracks == ()
    assert all(">" in w for w in texts(media.written[tmp_path / "Movie.en.srt"]))


def test_a_track_the_memory_does_not_hold_is_left_and_a_share_gone_ends_the_job(
        tmp_path: Path) -> None:
    class Failing(Tracks):
        fault = "memory"

        def open_audio(self, info: MediaInfo, start: float | None,
                       duration: float | None) -> Iterable[np.ndarray]:
            if info.audio.index == 2:
                raise EnvironmentFault("out of memory", kind=self.fault, stage="transcribe")
            return super().open_audio(info, start, duration)

    media = Failing(ENGLISH, tracks={stream(1, "en", default=True): ENGLISH,
                                     stream(2, "de"): GERMAN})
    outcome = process_media_file(tmp_path / "Movie.mkv", EACH, media.tools(FakeTranscriber()))
    assert outcome.status == "written" and outcome.tracks == ()
    media.fault = "share"
    with pytest.raises(EnvironmentFault):
        process_media_file(tmp_path / "Movie.mkv", EACH, media.tools(FakeTranscriber()))


def test_another_track_s_job_leaves_the_main_subtitle_s_review_copy(tmp_path: Path) -> None:
    """The main subtitle written for review; the dub's job, which knows the review copy
    for one of this file's (a daemon's redo), must not take it for its own to remove."""
    review = tmp_path / "Movie.en.review.srt"
    review.write_text("for review\n")

    def ours(path: Path) -> Previous:
        return "ours"

    settings = replace(EACH, quality=QualitySettings(gate="review"))
    media = dubbed((stream(2, "de"), GERMAN))
    outcome = process_media_file(tmp_path / "Movie.mkv", settings, media.tools(Unsure()),
                                 Hooks(previous=ours, wrote=ours))
    assert outcome.output == review and outcome.tracks == (tmp_path / "Movie.de.srt",)
    assert review.exists()
