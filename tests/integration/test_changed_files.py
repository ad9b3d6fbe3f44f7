"""What "done" means when a file changes after its subtitle was written, on the real
daemon: a file replaced in place is redone, a subtitle edited by hand is kept and the job
says so, and the same file under a new inode (a share mounted again) is left alone."""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

from tests.integration.daemon_harness import DaemonRun, make_video, valid_subtitles


def replace_in_place(source: Path, target: Path, *, keep_times: bool = False) -> None:
    """As an *arr import or a remount does: a new file renamed over the old one."""
    partial = target.with_name(f".{target.name}.part")  # a name the watcher ignores
    (shutil.copy2 if keep_times else shutil.copyfile)(source, partial)
    partial.replace(target)


def test_a_replaced_file_is_redone_an_edited_subtitle_is_kept_a_remount_is_nothing(
        tmp_path: Path, model_dir: Path, clip: Path) -> None:
    other = make_video(tmp_path / "other.mkv", seconds=5.8,
                       source="en_librispeech_quilter_leopard.wav")
    daemon = DaemonRun(tmp_path, model_dir)
    media = daemon.media
    for name in ("upgraded.mkv", "edited.mkv", "remounted.mkv"):
        shutil.copyfile(clip, media / name)
    daemon.start()
    try:
        daemon.wait_until(lambda: daemon.all_settled(3))
        first = {Path(r["path"]).name: r for r in daemon.rows()}
        assert all(r["state"] == "done" for r in first.values()), first
        mine = media / "edited.en.srt"
        edited = mine.read_text() + "\n3\n00:00:09,000 --> 00:00:10,000\nA line of my own\n"
        mine.write_text(edited)
        replace_in_place(other, media / "upgraded.mkv")
        replace_in_place(other, media / "edited.mkv")
        inode = (media / "remounted.mkv").stat().st_ino
        replace_in_place(media / "remounted.mkv", media / "remounted.mkv", keep_times=True)
        assert (media / "remounted.mkv").stat().st_ino != inode

        def redone() -> bool:
            rows = {Path(r["path"]).name: r for r in daemon.rows()}
            return rows["upgraded.mkv"]["updated"] > first["upgraded.mkv"]["updated"] and \
                rows["edited.mkv"]["updated"] > first["edited.mkv"]["updated"] and \
                all(r["state"] in ("done", "skipped") for r in rows.values())

        daemon.wait_until(redone)
        time.sleep(3)  # longer than the settle period: a remount would have been queued
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    rows = {Path(r["path"]).name: r for r in daemon.rows()}
    texts = valid_subtitles(media)
    # The upgrade: a new subtitle, of the new audio.
    assert rows["upgraded.mkv"]["state"] == "done", rows["upgraded.mkv"]
    assert "quilter" in texts["upgraded.en.srt"].lower(), texts
    assert "fellow" not in texts["upgraded.en.srt"].lower(), texts
    # The edited subtitle: kept as the person left it, and the job says so.
    assert mine.read_text() == edited
    assert rows["edited.mkv"]["state"] == "skipped", rows["edited.mkv"]
    assert "was edited since it was written; kept" in rows["edited.mkv"]["last_error"]
    # The remount: the same job, untouched, nothing extracted again.
    assert rows["remounted.mkv"]["updated"] == first["remounted.mkv"]["updated"]
    assert rows["remounted.mkv"]["inode"] != inode
    log = daemon.logs[-1]
    assert sum("remounted.mkv: " in line and "realtime" in line
               for line in log.splitlines()) == 1, log
    # The log says why each changed file is done again (and not the remounted one).
    for name in ("upgraded.mkv", "edited.mkv"):
        assert f"{name}: changed since it was done" in log, log
    assert "remounted.mkv: changed since" not in log
