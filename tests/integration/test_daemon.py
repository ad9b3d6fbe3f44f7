"""The real daemon process: watching, settling, one job per file, signals, bad configs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import srt
import yaml

from subtitled.evaluation import word_error_rate
from tests.integration.daemon_harness import DaemonRun, make_video
from tests.integration.test_systemd_notify import http_get

JFK_5S = "And so my fellow Americans, ask not"


def test_a_slowly_copied_video_is_one_job_started_after_the_copy(
        tmp_path: Path, model_dir: Path) -> None:
    source = make_video(tmp_path / "source.mkv", seconds=5.0)
    daemon = DaemonRun(tmp_path, model_dir)
    daemon.start()
    try:
        time.sleep(3)
        target = daemon.media / "Film (2020).mkv"
        data = source.read_bytes()
        with open(target, "wb") as out:  # pauses shorter than the 2 s quiet period
            for start in range(0, len(data), len(data) // 6 + 1):
                out.write(data[start:start + len(data) // 6 + 1])
                out.flush()
                time.sleep(1.0)
        copied_at = time.time()
        subtitle = daemon.media / "Film (2020).en.srt"
        daemon.wait_until(subtitle.exists)
        (row,) = daemon.rows()
        assert row["attempts"] == 1 and row["state"] == "done"
        assert row["started"] >= copied_at + 1.5  # waited for the quiet period
        text = " ".join(s.content for s in srt.parse(subtitle.read_text()))
        assert word_error_rate(JFK_5S, text) <= 0.2, text
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    assert "Film (2020).en.srt, en" in daemon.logs[-1]


def test_a_download_renamed_at_the_end_is_one_job_for_the_final_name(
        tmp_path: Path, model_dir: Path) -> None:
    source = make_video(tmp_path / "source.mkv", seconds=4.0)
    daemon = DaemonRun(tmp_path, model_dir)
    daemon.start()
    try:
        time.sleep(3)
        partial = daemon.media / "Show.S01E01.mkv.part"
        shutil.copyfile(source, partial)
        time.sleep(3)  # longer than the quiet period: a temp name is never a job
        assert daemon.rows() == []
        partial.rename(daemon.media / "Show.S01E01.mkv")
        daemon.wait_until(lambda: daemon.all_settled(1))
        (row,) = daemon.rows()
        assert row["path"].endswith("/Show.S01E01.mkv") and row["state"] == "done"
    finally:
        assert daemon.finish(signal.SIGTERM) == 0


def test_the_existing_library_is_backfilled_and_done_files_are_not_redone(
        tmp_path: Path, model_dir: Path) -> None:
    daemon = DaemonRun(tmp_path, model_dir)
    make_video(daemon.media / "a.mkv", seconds=3.0)
    make_video(daemon.media / "b.mp4", seconds=3.0)
    (daemon.media / "b.en.srt").write_text("1\n00:00:01,000 --> 00:00:02,000\nmine\n")
    daemon.start()
    daemon.wait_until(lambda: daemon.all_settled(2))
    time.sleep(2)  # a few turns of the idle loop
    # The heap kept for the encoder's next pass goes back once the queue is empty.
    assert daemon.memory_kib("VmHWM") - daemon.memory_kib("VmRSS") > 64 * 1024
    assert daemon.finish(signal.SIGTERM) == 0
    states = {Path(r["path"]).name: (r["state"], r["last_error"]) for r in daemon.rows()}
    assert states["a.mkv"][0] == "done"
    assert states["b.mp4"][0] == "skipped" and "subtitle exists" in states["b.mp4"][1]
    daemon.start()
    time.sleep(6)
    assert daemon.finish(signal.SIGTERM) == 0
    assert [r["attempts"] for r in daemon.rows()] == [1, 1]


def test_sigterm_abandons_the_current_job_and_requeues_it(
        tmp_path: Path, model_dir: Path) -> None:
    daemon = DaemonRun(tmp_path, model_dir, model={"name": "base"})
    make_video(daemon.media / "long.mkv", seconds=50.0, source="mul_en-de_mit_license.mp3")
    daemon.start()
    daemon.wait_until(lambda: any(r["state"] == "running" and (r["progress_seconds"] or 0) > 0
                                  for r in daemon.rows()))
    stopped = time.monotonic()
    assert daemon.finish(signal.SIGTERM, timeout=120) == 0
    assert time.monotonic() - stopped < 60
    (row,) = daemon.rows()
    assert row["state"] == "queued" and row["attempts"] == 0
    assert "abandoned for shutdown; requeued" in daemon.logs[-1]
    assert not list(daemon.media.glob("*.tmp")) and not list(daemon.media.glob("*.srt"))


def run_check(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "subtitled", *args, "--config", str(config)]
                          if args else
                          [sys.executable, "-m", "subtitled", "check-config", str(config)],
                          capture_output=True, text=True, timeout=120)


def test_bad_configurations_stop_before_anything_starts(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("watch: [unclosed\n")
    result = run_check(config, "run")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"subtitled: error: config: {config} is not valid YAML (line ")

    config.write_text(yaml.safe_dump({"watch": ["/no/such/folder"], "state_dir": str(tmp_path)}))
    result = run_check(config, "run")
    assert result.returncode == 2
    assert result.stderr.strip() == "subtitled: error: config: At 'watch[0].path': " \
                                    "directory /no/such/folder does not exist"

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    (tmp_path / "media").mkdir()
    config.write_text(yaml.safe_dump({"watch": [str(tmp_path / "media")],
                                      "state_dir": str(blocker / "state")}))
    result = run_check(config, "run")
    assert result.returncode == 2
    assert result.stderr.strip() == f"subtitled: error: state_dir: state directory " \
                                    f"{blocker}/state is not writable: Not a directory"
    assert run_check(config).stdout.strip() == f"{config}: ok"


def test_check_config_lists_every_problem_and_fails(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"watch": [str(tmp_path)], "model": {"engine": "x"},
                                      "cues": {"max_lines": "two"}}))
    result = run_check(config)
    assert result.returncode == 2
    assert "At 'model.engine'" in result.stderr and "At 'cues.max_lines'" in result.stderr


def test_status_and_retry_read_the_queue_while_the_daemon_runs(
        tmp_path: Path, model_dir: Path) -> None:
    daemon = DaemonRun(tmp_path, model_dir)
    (daemon.media / "broken.mkv").write_bytes(b"\x1aE\xdf\xa3 this is not a film" * 100)
    extras = daemon.media / "extras"
    extras.mkdir()
    (extras / ".subtitled-skip").write_text("")
    make_video(extras / "trailer.mkv", seconds=2.0)
    daemon.start()
    try:
        daemon.wait_until(lambda: daemon.all_settled(2))
        status = run_check(daemon.config, "status")
        assert status.returncode == 0
        lines = status.stdout.splitlines()
        assert lines[0] == "queued 0 · running 0 · done 0 · failed 1 · skipped 1 · dead 0"
        assert lines[1] == "recent failures:"
        assert lines[2].startswith(f"  failed: {daemon.media}/broken.mkv: probe: ffprobe "
                                   "cannot read it:")
        assert lines[2].endswith("[MediaError]")
        retried = run_check(daemon.config, "retry", "--failed")
        assert retried.stdout.strip() == "queued again: 1"
        daemon.wait_until(lambda: daemon.all_settled(2))
        broken = next(r for r in daemon.rows() if r["path"].endswith("broken.mkv"))
        assert broken["state"] == "failed" and broken["attempts"] == 1
        trailer = next(r for r in daemon.rows() if r["path"].endswith("trailer.mkv"))
        assert trailer["last_error"] == f"skip marker {extras}/.subtitled-skip"
    finally:
        assert daemon.finish(signal.SIGTERM) == 0


def test_sighup_adds_a_folder_without_reloading_the_model(
        tmp_path: Path, model_dir: Path) -> None:
    daemon = DaemonRun(tmp_path, model_dir)
    second = tmp_path / "more media"
    second.mkdir()
    daemon.start()
    try:
        time.sleep(4)
        document = yaml.safe_load(daemon.config.read_text())
        document["watch"].append({"path": str(second)})
        daemon.config.write_text(yaml.safe_dump(document))
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGHUP)
        time.sleep(2)
        make_video(second / "new.mkv", seconds=3.0)
        daemon.wait_until((second / "new.en.srt").exists)
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    log = daemon.logs[-1]
    assert "configuration reloaded" in log
    assert log.count("loaded faster-whisper") == 1  # auto on a CPU


def test_a_file_deleted_while_it_is_transcribed_gets_no_subtitle(
        tmp_path: Path, model_dir: Path) -> None:
    daemon = DaemonRun(tmp_path, model_dir)
    video = make_video(daemon.media / "gone.mkv", seconds=50.0,
                       source="mul_en-de_mit_license.mp3")
    daemon.start()
    try:
        daemon.wait_until(lambda: any(r["state"] == "running" for r in daemon.rows()))
        video.unlink()
        daemon.wait_until(lambda: daemon.rows() == [])
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    assert list(daemon.media.iterdir()) == []
    assert daemon.rows() == []
    assert "gone.mkv: gone while being transcribed; no subtitle written" in daemon.logs[-1]


def test_a_file_replaced_while_it_is_transcribed_gets_the_new_file_s_subtitle(
        tmp_path: Path, model_dir: Path) -> None:
    daemon = DaemonRun(tmp_path, model_dir)
    video = make_video(daemon.media / "film.mkv", seconds=50.0,
                       source="mul_en-de_mit_license.mp3")
    replacement = make_video(tmp_path / "replacement.mkv", seconds=11.0)  # JFK
    daemon.start()
    try:
        daemon.wait_until(lambda: any(r["state"] == "running" for r in daemon.rows()))
        replacement.replace(video)  # a re-download moved over the old file
        daemon.wait_until(lambda: daemon.all_settled(1) and
                          (daemon.media / "film.en.srt").exists())
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    (row,) = daemon.rows()
    assert row["state"] == "done"
    text = (daemon.media / "film.en.srt").read_text(encoding="utf-8").lower()
    assert "fellow" in text and "license" not in text
    assert "film.mkv: changed while it was being transcribed" in daemon.logs[-1]
    assert " ERROR " not in daemon.logs[-1]
    assert sorted(p.name for p in daemon.media.iterdir()) == ["film.en.srt", "film.mkv"]


def test_retry_redoes_a_done_file_and_force_replaces_an_edited_subtitle(
        tmp_path: Path, model_dir: Path) -> None:
    daemon = DaemonRun(tmp_path, model_dir)
    film = make_video(daemon.media / "film.mkv", seconds=4.0)
    subtitle = film.with_suffix(".en.srt")
    daemon.start()
    try:
        daemon.wait_until(lambda: daemon.all_settled(1))

        def redone(before: float) -> bool:
            (row,) = daemon.rows()
            return row["state"] in ("done", "skipped") and row["updated"] > before

        # Our own subtitle: a plain retry redoes the file and writes it again.
        subtitle.write_text(subtitle.read_text())  # the same text: still ours
        asked = time.time()
        assert run_check(daemon.config, "retry", str(film)).stdout.strip() == \
            "queued again: 1"
        daemon.wait_until(partial(redone, asked))
        assert daemon.rows()[0]["state"] == "done"
        # Edited by hand: a plain retry keeps it, --force replaces it.
        subtitle.write_text("1\n00:00:00,000 --> 00:00:01,000\nmy own words\n")
        asked = time.time()
        run_check(daemon.config, "retry", str(film))
        daemon.wait_until(partial(redone, asked))
        assert "my own words" in subtitle.read_text()
        asked = time.time()
        forced = run_check(daemon.config, "retry", "--force", str(film))
        assert forced.stdout.strip() == "queued again: 1"
        daemon.wait_until(partial(redone, asked))
        (row,) = daemon.rows()
        assert row["state"] == "done" and row["force"] == 0
        assert "my own words" not in subtitle.read_text()
        assert "americans" in subtitle.read_text().lower()
        both = run_check(daemon.config, "retry", "--force", "--failed")
        assert both.returncode == 2 and "give its PATH" in both.stderr
    finally:
        assert daemon.finish(signal.SIGTERM) == 0


def test_pause_holds_the_queue_across_a_restart_until_resume(
        tmp_path: Path, model_dir: Path) -> None:
    daemon = DaemonRun(tmp_path, model_dir, http={"enabled": True, "port": 0})
    paused = run_check(daemon.config, "pause")
    assert paused.returncode == 0 and paused.stdout.startswith("paused by ")
    film = make_video(daemon.media / "film.mkv", seconds=3.0)
    daemon.start()
    try:
        daemon.wait_until(lambda: [r["state"] for r in daemon.rows()] == ["queued"])
        time.sleep(4)  # settled and queued, well past the settle time: still held
        assert [r["state"] for r in daemon.rows()] == ["queued"]
        assert run_check(daemon.config, "status").stdout.splitlines()[1].startswith(
            "paused by ")
        assert http_get(daemon, "/metrics")[1].count("subtitled_paused_by_admin 1.0") == 1
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    daemon.start()  # the pause outlives the process
    try:
        time.sleep(4)
        assert [r["state"] for r in daemon.rows()] == ["queued"]
        assert run_check(daemon.config, "resume").stdout.strip() == "resumed"
        daemon.wait_until(film.with_suffix(".en.srt").exists)
        assert "subtitled_paused_by_admin 0.0" in http_get(daemon, "/metrics")[1]
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    assert "resumed (`subtitled resume`)" in daemon.logs[-1]
    assert run_check(daemon.config, "resume").stdout.strip() == "was not paused"


def test_the_backfill_takes_the_newest_first_or_is_left_alone(
        tmp_path: Path, model_dir: Path) -> None:
    newest = DaemonRun(tmp_path / "newest", model_dir)
    for age, name in ((3000, "old.mkv"), (1000, "newer.mkv"), (2000, "middle.mkv")):
        film = make_video(newest.media / name, seconds=2.0)
        os.utime(film, (time.time() - age, time.time() - age))
    newest.start()
    try:
        newest.wait_until(lambda: newest.all_settled(3))
    finally:
        assert newest.finish(signal.SIGTERM) == 0
    started = sorted(newest.rows(), key=lambda r: r["started"])
    assert [Path(r["path"]).name for r in started] == ["newer.mkv", "middle.mkv", "old.mkv"]

    untouched = DaemonRun(tmp_path / "none", model_dir, scan={"backfill": "none",
                                                              "settle_seconds": 1})
    library = make_video(untouched.media / "library.mkv", seconds=2.0)
    os.utime(library, (time.time() - 60, time.time() - 60))
    untouched.start()
    try:
        untouched.wait_until(lambda: "watching" in untouched.log_file.read_text())
        arrival = make_video(untouched.media / "arrival.mkv", seconds=2.0)
        untouched.wait_until(arrival.with_suffix(".en.srt").exists)
    finally:
        assert untouched.finish(signal.SIGTERM) == 0
    untouched.start()  # a restart (and its scan) still leaves the library alone
    try:
        untouched.wait_until(lambda: "watching" in untouched.log_file.read_text())
        time.sleep(3)
    finally:
        assert untouched.finish(signal.SIGTERM) == 0
    assert [Path(r["path"]).name for r in untouched.rows()] == ["arrival.mkv"]
    assert not library.with_suffix(".en.srt").exists()
