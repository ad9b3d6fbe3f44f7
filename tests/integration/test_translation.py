"""The English translation beside the transcript, through the real daemon and real
weights: a German film gets `Film.de.srt` and `Film.en.srt` from one run, and a
translation someone edited is kept when the film is replaced and redone."""

from __future__ import annotations

import os
import re
import signal
from dataclasses import replace
from pathlib import Path
from typing import Any

from subtitled.config import DaemonSettings, OutputSettings, TranscribeSettings, WatchRoot
from subtitled.service.intake import Intake
from subtitled.service.worker import _others_of
from subtitled.settle import Settler
from subtitled.store import (
    PRIORITY_NEW,
    Fingerprint,
    Job,
    Result,
    SqliteStore,
    text_sha256,
)
from tests.integration.daemon_harness import DaemonRun, make_video, valid_subtitles
from tests.integration.test_changed_files import replace_in_place

# Words only one of the two languages has (and the clips' own words in each).
GERMAN = {"der", "die", "das", "wurde", "als", "einen", "diesem", "raum", "werbung"}
ENGLISH = {"the", "was", "as", "this", "room", "used", "an", "a", "advertising"}


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-zäöüß]+", text.lower()))


def test_a_german_film_gets_an_english_translation_and_an_edited_one_is_kept(
        tmp_path: Path, model_dir: Path) -> None:
    newer = make_video(tmp_path / "newer.mkv", seconds=4.5, source="de_werbung_cheetah.wav")
    daemon = DaemonRun(tmp_path, model_dir, model={"name": "base"},
                       language={"also_translate": True})
    media = daemon.media
    make_video(media / "Film.mkv", seconds=6.0, source="de_portal_leopard.wav")
    (media / "imports").mkdir()
    os.link(media / "Film.mkv", media / "imports" / "Film.mkv")  # an *arr import's twin


    def row(name: str) -> dict[str, Any]:
        return next(r for r in daemon.rows() if Path(r["path"]) == media / name)

    daemon.start()
    try:
        daemon.wait_until(lambda: daemon.all_settled(2), seconds=300)
        first, twin = row("Film.mkv"), row("imports/Film.mkv")
        assert first["state"] == "done" and first["language"] == "de", first
        texts = valid_subtitles(media)  # (the twin's copies under the same names)
        assert set(texts) == {"Film.de.srt", "Film.en.srt"}, texts
        # The twin is not transcribed again: both subtitles are copied beside it.
        for name in texts:
            assert (media / "imports" / name).read_text() == (media / name).read_text()
        transcript, translation = words(texts["Film.de.srt"]), words(texts["Film.en.srt"])
        assert len(transcript & GERMAN) >= 2 and not transcript & ENGLISH - {"as", "a"}, texts
        assert len(translation & ENGLISH) >= 2 and not translation & GERMAN, texts

        # A person corrects the translation; then a better release replaces the film.
        mine = media / "Film.en.srt"
        edited = mine.read_text() + "\n9\n00:00:09,000 --> 00:00:10,000\nMy own line\n"
        mine.write_text(edited)
        replace_in_place(newer, media / "Film.mkv")
        daemon.wait_until(lambda: row("Film.mkv")["updated"] > first["updated"] and
                          row("Film.mkv")["state"] == "done", seconds=300)
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    # The twin was copied, not transcribed.
    copied = [line for line in daemon.logs[-1].splitlines() if "(a hard link)" in line]
    assert len(copied) == 1 and twin["state"] == "done", daemon.logs[-1]
    # The transcript is ours, unedited: redone from the new audio. The translation was
    # edited: kept as the person left it.
    redone = (media / "Film.de.srt").read_text()
    assert "werbung" in words(redone) and "portal" not in words(redone), redone
    assert mine.read_text() == edited


def test_a_rename_takes_the_translation_along_and_the_job_knows_it_there(
        tmp_path: Path) -> None:
    """Sonarr renames a German episode: the transcript, its other format and the
    translation beside it follow it, and a later redo still knows the translation for
    ours."""
    media = tmp_path / "media"
    media.mkdir()
    settings = DaemonSettings(watch=(WatchRoot(media),), state_dir=tmp_path / "state",
                              transcribe=TranscribeSettings(output=OutputSettings(
                                  formats=("srt", "vtt"))))
    old, new = media / "show.s01e01.mkv", media / "Show - S01E01 - Pilot.mkv"
    old.write_bytes(b"video")
    texts = {f"show.s01e01.{name}": f"1\n00:00:01,000 --> 00:00:02,000\n{name}\n"
             for name in ("de.srt", "de.vtt", "en.srt", "en.vtt")}
    store = SqliteStore(tmp_path / "jobs.sqlite3")
    try:
        store.enqueue(old, Fingerprint.of(old), PRIORITY_NEW)
        job = store.claim()
        assert job is not None
        for name, text in texts.items():
            if name.endswith("de.srt"):
                store.writing(job, media / name, 1, text_sha256(text))
            else:
                store.writing_beside(job, media / name, text_sha256(text))
            (media / name).write_text(text)
        store.finish(job, "done", Result("de", 1, 60.0, 5.0, media / "show.s01e01.de.srt"))
        old.rename(new)
        intake = Intake(lambda: settings, Settler(0.0), lambda: store)
        assert intake.moved(old, new) is None
        renamed = [name.replace("show.s01e01", new.stem) for name in texts]
        assert sorted(p.name for p in media.iterdir()) == sorted([*renamed, new.name])
        moved = store.get(new)
        assert moved is not None
        for name, text in zip(renamed, texts.values(), strict=True):
            assert moved.wrote(media / name) == (text_sha256(text),), name
    finally:
        store.close()


def test_a_rename_the_sender_made_itself_keeps_the_translation_known(
        tmp_path: Path) -> None:
    """Sonarr moves every sidecar with the file before it calls: the job follows, and
    still knows the translation at its new name for ours."""
    media = tmp_path / "media"
    media.mkdir()
    settings = DaemonSettings(watch=(WatchRoot(media),), state_dir=tmp_path / "state")
    old, new = media / "show.s01e01.mkv", media / "Show - S01E01.mkv"
    old.write_bytes(b"video")
    texts = {"de.srt": "1\n00:00:01,000 --> 00:00:02,000\nHallo\n",
             "en.srt": "1\n00:00:01,000 --> 00:00:02,000\nHello\n"}
    store = SqliteStore(tmp_path / "jobs.sqlite3")
    try:
        store.enqueue(old, Fingerprint.of(old), PRIORITY_NEW)
        job = store.claim()
        assert job is not None
        store.writing(job, media / "show.s01e01.de.srt", 1, text_sha256(texts["de.srt"]))
        store.writing_beside(job, media / "show.s01e01.en.srt", text_sha256(texts["en.srt"]))
        store.finish(job, "done", Result("de", 1, 60.0, 5.0, media / "show.s01e01.de.srt"))
        old.rename(new)
        for suffix, text in texts.items():
            (media / f"{new.stem}.{suffix}").write_text(text)
        intake = Intake(lambda: settings, Settler(0.0), lambda: store)
        assert intake.moved(old, new) is None
        moved = store.get(new)
        assert moved is not None
        assert moved.wrote(media / f"{new.stem}.en.srt") == (text_sha256(texts["en.srt"]),)
    finally:
        store.close()


def test_a_twin_gets_copies_of_the_translation_as_written_and_nothing_else(
        tmp_path: Path) -> None:
    """A hard-linked twin's copy: the translation as it was written; not a file at a name
    the job once wrote that has been edited since or is in a format not wanted here."""
    films, imports = tmp_path / "films", tmp_path / "imports"
    films.mkdir()
    imports.mkdir()
    texts = {"Film.en.srt": "1\n00:00:01,000 --> 00:00:02,000\nas written\n",
             "Film.en.forced.srt": "1\n00:00:01,000 --> 00:00:02,000\nedited since\n",
             "Film.en.vtt": "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nas written\n"}
    for name, text in texts.items():
        (films / name).write_text(text)
    written = {name: (text_sha256(text),) for name, text in texts.items()}
    written["Film.en.forced.srt"] = (text_sha256("what was written"),)
    twin = Job(1, films / "Film.mkv", Fingerprint(1, 1, 1), "done", 0, 0, None, None, 0.0,
               None, "de", None, None, None, written_path=str(films / "Film.de.srt"),
               beside=written)
    job = replace(twin, id=2, path=imports / "Film.mkv", beside={})
    assert _others_of(twin, job, [films / "Film.de.srt"], ("srt",)) == [
        (imports / "Film.en.srt", texts["Film.en.srt"])]
