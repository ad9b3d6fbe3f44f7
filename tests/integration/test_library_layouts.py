"""Library layouts the daemon meets on real media servers, on the real daemon: a disc
copied as a folder (VIDEO_TS), a forced-only sidecar, and one film hard-linked into two
watched folders (the usual *arr import)."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

from tests.integration.daemon_harness import DaemonRun, valid_subtitles

FORCED = "1\n00:00:01,000 --> 00:00:02,000\n[speaking Russian] Where is it?\n"


def test_a_disc_folder_is_skipped_a_forced_sidecar_is_not_enough_a_hard_link_is_done_once(
        tmp_path: Path, model_dir: Path, clip: Path) -> None:
    daemon = DaemonRun(tmp_path, model_dir, output={"formats": ["srt", "vtt"]})
    media = daemon.media
    disc = media / "Film (2001)" / "VIDEO_TS"
    disc.mkdir(parents=True)
    for segment in ("VTS_01_1.VOB", "VTS_01_2.VOB"):
        shutil.copyfile(clip, disc / segment)
    shutil.copyfile(clip, media / "Foreign.mkv")
    (media / "Foreign.en.forced.srt").write_text(FORCED)
    downloads, films = media / "downloads", media / "films"
    downloads.mkdir()
    films.mkdir()
    shutil.copyfile(clip, downloads / "Linked.mkv")
    os.link(downloads / "Linked.mkv", films / "Linked.mkv")

    daemon.start()
    try:
        daemon.wait_until(lambda: daemon.all_settled(3))
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    rows = {Path(r["path"]).relative_to(media).as_posix(): r for r in daemon.rows()}
    assert set(rows) == {"Foreign.mkv", "downloads/Linked.mkv", "films/Linked.mkv"}, rows
    assert all(r["state"] == "done" for r in rows.values()), rows
    log = daemon.logs[-1]
    # The disc: no job, one line for the folder.
    (line,) = [line for line in log.splitlines() if "a disc folder" in line]
    assert f"{disc}: a disc folder" in line
    # The forced sidecar is kept, and a whole subtitle written beside it.
    assert (media / "Foreign.en.forced.srt").read_text() == FORCED
    texts = valid_subtitles(media)
    assert "fellow" in texts["Foreign.en.srt"].lower()
    # The hard-linked pair: transcribed once, the subtitle beside both names.
    transcribed = [line for line in log.splitlines() if "Linked.mkv: " in line and
                   "realtime" in line]
    copied = [line for line in log.splitlines() if "(a hard link)" in line]
    assert len(transcribed) == 1 and len(copied) == 1, log
    assert (downloads / "Linked.en.srt").read_text() == (films / "Linked.en.srt").read_text()
    assert (downloads / "Linked.en.vtt").read_text() == (films / "Linked.en.vtt").read_text()
