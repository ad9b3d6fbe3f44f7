"""Which audio track is heard, and whether cues line up with the picture."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from subtitled.evaluation import word_error_rate
from tests.integration.conftest import DATA, JFK_TEXT, Transcribe, ffmpeg, picture
from tests.integration.daemon_harness import DaemonRun, valid_subtitles
from tests.integration.test_accuracy import cues_in


def test_the_main_track_is_transcribed_not_the_commentary(
        media: Path, transcribe: Transcribe) -> None:
    outcome = transcribe(media / "two tracks.mkv", model="tiny.en")
    assert outcome.output is not None
    text = " ".join(" ".join(c.lines) for c in cues_in(outcome.output))
    assert word_error_rate(JFK_TEXT, text) <= 0.10, text
    assert "quilter" not in text.lower()


def test_a_track_that_starts_late_gives_cues_that_start_late(
        media: Path, transcribe: Transcribe) -> None:
    outcome = transcribe(media / "late.mkv", model="tiny.en")
    assert outcome.output is not None
    cues = cues_in(outcome.output)
    # The speech starts about 0.3 s into the audio, and the audio 2 s into the film.
    assert cues[0].start_seconds == pytest.approx(2.3, abs=0.4)
    assert cues[-1].end_seconds > 12.0


def test_an_embedded_text_subtitle_in_the_language_means_nothing_to_do(
        tmp_path: Path, transcribe: Transcribe) -> None:
    subtitle = tmp_path / "in.srt"
    subtitle.write_text("1\n00:00:00,500 --> 00:00:02,000\nAnd so\n")
    video = tmp_path / "with subs.mkv"
    ffmpeg(*picture(), "-i", str(DATA / "en_jfk_inaugural.flac"), "-i", str(subtitle),
           "-map", "0:v", "-map", "1:a", "-map", "2:s", "-shortest", "-c:v", "libx264",
           "-preset", "ultrafast", "-c:a", "aac", "-c:s", "srt",
           "-metadata:s:s:0", "language=eng", str(video))
    outcome = transcribe(video, model="tiny.en")
    assert outcome.status == "skipped"
    assert outcome.reason == "has an embedded en text subtitle"
    assert not (tmp_path / "with subs.en.srt").exists()


def test_an_audio_track_shorter_than_the_picture_is_heard_to_its_end(
        tmp_path: Path, transcribe: Transcribe) -> None:
    """The container's length is the picture's: a language window placed by it past the
    end of the audio holds nothing, and is no reason to fail the file."""
    from tests.integration.conftest import DATA, ffmpeg, picture

    video = tmp_path / "credits without sound.mkv"
    ffmpeg(*picture(65), "-i", str(DATA / "mul_en-de_mit_license.mp3"), "-map", "0:v",
           "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
           str(video))
    outcome = transcribe(video, engine="faster-whisper")
    assert outcome.status == "written" and outcome.language in ("en", "de")
    assert outcome.audio_seconds == pytest.approx(60.0, abs=0.5)


def test_each_audio_language_gets_its_subtitle_from_its_own_track(
        tmp_path: Path, model_dir: Path) -> None:
    """A film with a Japanese track and an English dub, in a folder set to
    `each_audio_language`: Film.ja.srt from the first, Film.en.srt from the dub, through
    the daemon with real weights; the dub's subtitle is known to the store as ours."""
    daemon = DaemonRun(tmp_path, model_dir, model={"name": "base"})
    daemon.config.write_text(daemon.config.read_text().replace(
        f"- path: {daemon.media}\n", f"- path: {daemon.media}\n  each_audio_language: true\n",
        1))
    film = tmp_path / "Film.mkv"
    # Neither track's tag is trusted (the default): each track's language is heard.
    ffmpeg(*picture(11), "-i", str(DATA / "ja_kyakkan_leopard.wav"), "-i",
           str(DATA / "en_jfk_inaugural.flac"), "-map", "0:v", "-map", "1:a", "-map", "2:a",
           "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
           "-metadata:s:a:1", "language=eng", "-metadata:s:a:1", "title=English dub",
           "-disposition:a:0", "default", "-disposition:a:1", "0", str(film))
    film.rename(daemon.media / film.name)
    daemon.start()
    try:
        daemon.wait_until(lambda: daemon.all_settled(1), seconds=300)
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    (row,) = daemon.rows()
    assert row["state"] == "done" and row["language"] == "ja", row
    assert str(row["output"]).endswith("Film.ja.srt") and "Film.en.srt" in row["beside"]
    texts = valid_subtitles(daemon.media)
    assert set(texts) == {"Film.ja.srt", "Film.en.srt"}, texts
    japanese, english = texts["Film.ja.srt"], texts["Film.en.srt"]
    assert sum("\u3040" <= c <= "\u9fff" for c in japanese) >= 10, japanese
    assert not any(c.isascii() and c.isalpha() for c in japanese), japanese
    assert word_error_rate(JFK_TEXT, english) <= 0.10, english
