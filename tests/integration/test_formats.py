"""Subtitle formats through the real daemon: WebVTT and ASS beside the SRT, and the
synced lyrics (LRC) of a music folder, each parsed by a real parser."""

from __future__ import annotations

import html
import signal
from pathlib import Path

import pylrc
import pysubs2
import pytest
import srt
import webvtt

from tests.integration.conftest import DATA, ffmpeg
from tests.integration.daemon_harness import DaemonRun, make_video


def _seconds(value: str) -> float:
    hours, minutes, seconds = value.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def test_each_root_gets_its_formats_and_every_format_holds_the_same_cues(
        tmp_path: Path, model_dir: Path) -> None:
    music = tmp_path / "music"
    music.mkdir()
    daemon = DaemonRun(tmp_path, model_dir, output={"formats": ["srt", "vtt", "ass"]},
                       scan={"settle_seconds": 2, "include_extensions": [".mkv", ".mp3"]})
    daemon.config.write_text(daemon.config.read_text().replace(
        "watch:\n", f"watch:\n- path: {music}\n  formats: [lrc]\n", 1))
    make_video(daemon.media / "Film.mkv", seconds=8.0)
    ffmpeg("-i", str(DATA / "en_jfk_inaugural.flac"), "-t", "8", "-c:a", "libmp3lame",
           str(music / "Song.mp3"))
    daemon.start()
    daemon.wait_until(lambda: daemon.all_settled(2))
    assert daemon.finish(signal.SIGTERM) == 0
    assert {r["state"] for r in daemon.rows()} == {"done"}

    # The film: the SRT the job records, and WebVTT and ASS beside it, with its cues.
    assert sorted(p.name for p in daemon.media.iterdir() if p.stem.startswith("Film.")) == \
        ["Film.en.ass", "Film.en.srt", "Film.en.vtt"]
    film = next(r for r in daemon.rows() if r["path"].endswith("Film.mkv"))
    assert film["output"].endswith("Film.en.srt")
    cues = [(c.start.total_seconds(), c.end.total_seconds(), c.content)
            for c in srt.parse((daemon.media / "Film.en.srt").read_text(encoding="utf-8"))]
    assert len(cues) >= 2 and "country" in " ".join(text for _, _, text in cues)
    vtt = webvtt.read(str(daemon.media / "Film.en.vtt")).captions
    assert [(_seconds(c.start), _seconds(c.end), html.unescape(c.text)) for c in vtt] == cues
    ass = pysubs2.load(str(daemon.media / "Film.en.ass"))
    assert [e.plaintext for e in ass] == [text for _, _, text in cues]
    # ASS counts time in hundredths of a second.
    assert [t / 1000 for e in ass for t in (e.start, e.end)] == \
        pytest.approx([t for start, end, _ in cues for t in (start, end)], abs=0.01)

    # The song: its lyrics as Song.lrc, which players find beside it; nothing else.
    assert sorted(p.name for p in music.iterdir()) == ["Song.lrc", "Song.mp3"]
    lyrics = [line for line in pylrc.parse((music / "Song.lrc").read_text(encoding="utf-8"))
              if line.text]
    assert lyrics and "country" in " ".join(line.text for line in lyrics)
    starts = [line.time for line in lyrics]
    assert starts == sorted(starts) and starts[-1] < 8.0
