"""Resources and hangs: a full disk, an ffmpeg that never answers, an engine that hangs,
GPU out-of-memory, and an event storm that overflows inotify. Each run on the real daemon."""

from __future__ import annotations

import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.integration.daemon_harness import (
    DaemonRun,
    command_lines,
    memory_kib,
    processes_touching,
    valid_subtitles,
)
from tests.integration.figures import record
from tests.integration.test_long_files import long_film
from tests.integration.test_systemd_notify import NotifySocket
from tests.integration.test_watcher import inotify_limit


def test_an_ffmpeg_that_hangs_is_killed_with_its_children_and_the_job_dead_lettered(
        tmp_path: Path, model_dir: Path, clip: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    # A child too, to show the whole process group goes.
    (fake / "ffmpeg").write_text("#!/bin/sh\nsleep 7777 &\nexec sleep 7778\n")
    (fake / "ffmpeg").chmod(0o755)
    interval = 6.0
    socket = NotifySocket(tmp_path / "notify.sock")
    # A stall may be a hung share as well as a bad file: it retries for its time budget
    # (here 9 s), not a count of attempts.
    daemon = DaemonRun(tmp_path, model_dir, stall_seconds=2,
                       retry={"max_attempts": 2, "backoff_seconds": 0,
                              "transient_budget_hours": 0.0025})
    shutil.copyfile(clip, daemon.media / "stuck.mkv")
    daemon.start({"PATH": f"{fake}:{os.environ['PATH']}", "NOTIFY_SOCKET": str(socket.path),
                  "WATCHDOG_USEC": str(int(interval * 1e6))}, own_watchdog_pid=True)
    try:
        ready = socket.wait_for("READY=1")
        daemon.wait_until(lambda: daemon.all_settled(1))
        settled = time.monotonic()
        time.sleep(1)
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
        socket.close()
    (row,) = daemon.rows()
    assert row["state"] == "dead" and row["attempts"] == 1, row  # none was a crash
    assert "extract: ffmpeg produced no audio for 2 s; stopped it" in row["last_error"]
    leftovers = [line for line in command_lines() if "sleep 777" in line]
    assert leftovers == []
    gap = longest_gap(socket.pings(), ready, settled)
    assert gap < interval / 2
    record("ffmpeg hangs", f"killed after the 2 s stall each time, dead when its 9 s budget "
           f"ran out, {settled - ready:.1f} s after start; longest watchdog ping gap "
           f"{gap:.1f} s of {interval:g} s")


def test_a_hung_engine_is_retried_after_each_restart_and_then_dead_lettered(
        tmp_path: Path, model_dir: Path, clip: Path) -> None:
    daemon = DaemonRun(tmp_path, model_dir, retry={"max_attempts": 2, "backoff_seconds": 0})
    shutil.copyfile(clip, daemon.media / "stuck.mkv")
    shutil.copyfile(clip, daemon.media / "fine.mkv")
    for attempt in (1, 2):  # systemd's watchdog kills it each time (see test_systemd_notify)
        daemon.start({"SUBTITLED_FAILPOINTS": "hang-in-engine:stuck"})
        daemon.wait_until(lambda n=attempt: any(  # type: ignore[misc]
            r["state"] == "running" and r["attempts"] == n and "stuck" in r["path"]
            for r in daemon.rows()))
        daemon.kill()
    daemon.start({"SUBTITLED_FAILPOINTS": "hang-in-engine:stuck"})
    daemon.wait_until(lambda: daemon.all_settled(2))
    assert daemon.finish(signal.SIGTERM) == 0
    states = {Path(r["path"]).name: (r["state"], r["attempts"]) for r in daemon.rows()}
    assert states == {"stuck.mkv": ("dead", 2), "fine.mkv": ("done", 1)}
    assert "the process died while working on it 2 times" in \
        next(r["last_error"] for r in daemon.rows() if "stuck" in r["path"])


def test_out_of_memory_halves_the_batch_for_good_and_the_next_job_is_fine(
        tmp_path: Path, model_dir: Path, clip: Path) -> None:
    daemon = DaemonRun(tmp_path, model_dir, model={"batch_size": 4})
    # The first batch of four runs out of memory once (the failpoint) and is decoded as
    # two of two; every later batch, of this file and the next, holds at most two.
    film = tmp_path / "film.mkv"
    long_film(film, minutes=2.0)
    (daemon.media / "big.mkv").symlink_to(film)
    daemon.start({"SUBTITLED_FAILPOINTS": "oom-in-engine:big"})
    daemon.wait_until(lambda: daemon.all_settled(1))
    # A copy, not another link: the same file under a second name is not decoded again.
    shutil.copyfile(film, daemon.media / "next.mkv")
    daemon.wait_until(lambda: daemon.all_settled(2))
    assert daemon.finish(signal.SIGTERM) == 0
    assert {r["state"] for r in daemon.rows()} == {"done"}
    assert sorted(valid_subtitles(daemon.media)) == ["big.en.srt", "next.en.srt"]
    log = daemon.logs[-1]
    (halved,) = re.findall(r"big.mkv: out of memory on a batch of (\d+) chunks; batches of "
                           r"(\d+) from now on", log)
    batch, half = map(int, halved)
    assert half == batch // 2 >= 1
    later = log[log.index("next.mkv"):]
    sizes = [int(n) for n in re.findall(r"next.mkv: decoded (\d+) windows?", later)]
    assert sizes and max(sizes) <= half, sizes
    record("out of memory in a batch", f"a batch of {batch} halved to {half}; the next "
           f"file decoded in batches of at most {max(sizes)}")


def longest_gap(pings: list[float], start: float, end: float) -> float:
    """The longest stretch between `start` and `end` without a watchdog ping."""
    inside = [t for t in pings if start <= t <= end]
    return max(b - a for a, b in zip([start, *inside], [*inside, end], strict=True))


@pytest.mark.parametrize("overflow", [False, True], ids=["storm", "overflow"])
def test_an_event_storm_queues_every_file_once_keeps_the_heartbeat_and_bounded_memory(
        overflow: bool, tmp_path: Path, model_dir: Path) -> None:
    """5,000 files in 200 folders at once, with inotify's queue cut to 16 events. With
    `overflow` the daemon is stopped (SIGSTOP) while they are written, so the queue surely
    overflows: the rescan must still find each file exactly once."""
    interval = 3.0
    socket = NotifySocket(tmp_path / "notify.sock")
    daemon = DaemonRun(tmp_path, model_dir)
    (daemon.media / ".subtitled-skip").write_text("")  # a job each, but no transcription
    peak = 0
    with inotify_limit("max_queued_events", 16):
        daemon.start({"NOTIFY_SOCKET": str(socket.path),
                      "WATCHDOG_USEC": str(int(interval * 1e6))}, own_watchdog_pid=True)
        try:
            ready = socket.wait_for("READY=1")
            assert daemon.process is not None
            pid = daemon.process.pid
            time.sleep(1)
            idle = memory_kib(pid, "VmRSS") * 1024
            started = time.monotonic()
            stop = threading.Event()

            def sample() -> None:
                nonlocal peak
                while not stop.is_set():
                    peak = max(peak, memory_kib(pid, "VmRSS") * 1024)
                    time.sleep(0.1)

            sampler = threading.Thread(target=sample)
            sampler.start()
            if overflow:
                os.kill(pid, signal.SIGSTOP)
            for folder in range(200):
                season = daemon.media / f"Show {folder:03d}"
                season.mkdir()
                for episode in range(25):
                    (season / f"Episode {episode:02d}.mkv").write_bytes(b"x" * 100)
            created = time.monotonic() - started
            if overflow:
                os.kill(pid, signal.SIGCONT)
            running = time.monotonic()  # pings are owed from here on
            daemon.wait_until(lambda: daemon.all_settled(5000), seconds=600)
            settled = time.monotonic()
            stop.set()
            sampler.join()
        finally:
            daemon.finish(signal.SIGTERM)
            socket.close()
    rows = daemon.rows()
    assert len(rows) == 5000
    assert {(r["state"], r["attempts"]) for r in rows} == {("skipped", 1)}
    queued = [line for line in daemon.logs[-1].splitlines() if line.endswith(": queued")]
    assert len(queued) == 5000 == len(set(queued))
    lost = "inotify dropped events (queue overflow); rescanning" in daemon.logs[-1]
    if overflow:
        assert lost
    gap = max(longest_gap(socket.pings(), ready, started),
              longest_gap(socket.pings(), running, settled))
    assert gap < interval
    assert peak < idle * 1.25, (idle, peak)
    assert processes_touching(daemon.media) == []
    record(f"event storm{', daemon stopped while written' if overflow else ''}",
           f"5,000 files in 200 folders written in {created:.1f} s, inotify "
           f"{'overflowed' if lost else 'kept up'}; all queued once and settled after "
           f"{settled - started:.0f} s; longest ping gap {gap:.1f} s of {interval:g} s; "
           f"RSS {idle / 2**20:.0f} → peak {peak / 2**20:.0f} MiB ({peak / idle:.2f}x)")
