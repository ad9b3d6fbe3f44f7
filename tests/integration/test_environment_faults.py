"""Faults of the environment, on the real daemon: a share that drops out, a full media disk,
a full state directory, a read-only root and a GPU in a sticky error state. In each case
no job is forgotten or dead-lettered, no attempt is spent, the pause shows on STATUS=,
/health, /metrics and `subtitled status`, and every file is done once the fault clears,
without a restart (the sticky GPU error alone asks for one, by its exit status).

Faults of a share come from failpoints that raise the exact errno at one step
(SUBTITLED_FAILPOINTS read from a file, so that the test can clear them while the daemon
runs); full disks are real tmpfs mounts filled up; the read-only root is a tmpfs remounted
read-only."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.daemon_harness import DaemonRun, make_video, valid_subtitles
from tests.integration.figures import record
from tests.integration.test_systemd_notify import HTTP, NotifySocket, http_get, samples

Mount = Callable[[Path, str], Path]


@pytest.fixture
def tmpfs() -> Iterator[Mount]:
    """Mounts a tmpfs of the given size on a folder; unmounted after the test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted: list[Path] = []

    def mount(folder: Path, size: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(folder)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Write a filler file until the filesystem is full."""
    filler = folder / "filler.bin"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(descriptor, b"\0" * 4096)
    except OSError as err:
        assert err.errno == errno.ENOSPC
    finally:
        os.close(descriptor)
    return filler


def status_lines(daemon: DaemonRun) -> str:
    done = subprocess.run([sys.executable, "-m", "subtitled", "status", "--config",
                           str(daemon.config)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def paused_everywhere(daemon: DaemonRun, socket: NotifySocket, words: str,
                      scope: str, kind: str) -> None:
    """The pause, with `words` from its cause, on all four surfaces."""
    daemon.wait_until(lambda: any(line.startswith("STATUS=paused") and words in line
                                  for _, line in socket.fields()))
    code, health = http_get(daemon, "/health")
    assert code == 503 and "paused" in health and words in health, (code, health)
    _, metrics = http_get(daemon, "/metrics")
    found = samples(metrics)
    assert found[("subtitled_pauses", ())] >= 1, metrics
    assert found[("subtitled_paused", (("kind", kind), ("scope", scope)))] == 1, metrics
    status = status_lines(daemon)
    assert "paused" in status and words in status, status


def untouched(daemon: DaemonRun, names: list[str]) -> None:
    """These files wait: queued, no attempt spent, the fault noted."""
    rows = {Path(r["path"]).name: r for r in daemon.rows()}
    for name in names:
        row = rows[name]
        assert row["state"] == "queued" and row["attempts"] == 0, row
        assert row["error_class"] == "EnvironmentFault", row


def seconds_to_settle(daemon: DaemonRun, count: int) -> float:
    """From the moment the fault cleared (now) until every file is settled."""
    cleared = time.monotonic()
    daemon.wait_until(lambda: daemon.all_settled(count))
    return time.monotonic() - cleared


def all_done_once(daemon: DaemonRun, count: int) -> None:
    rows = daemon.rows()
    assert len(rows) == count
    assert all(r["state"] == "done" and r["attempts"] == 1 for r in rows), rows


@pytest.mark.parametrize(("errno_name", "step"), [("ENOTCONN", "read"), ("EIO", "write"),
                                                   ("ESTALE", "probe")])
def test_a_share_that_drops_out_pauses_its_root_and_the_files_wait(
        tmp_path: Path, model_dir: Path, clip: Path, errno_name: str, step: str,
        notify_socket: NotifySocket) -> None:
    nas, local = tmp_path / "nas", tmp_path / "local"
    for folder in (nas, local):
        folder.mkdir()
    spec = tmp_path / "failpoints"
    spec.write_text(f"{errno_name}-at-{step}:nas-")
    daemon = DaemonRun(tmp_path, model_dir, http=HTTP,
                       watch=[{"path": str(nas)}, {"path": str(local)}])
    for name in ("nas-a.mkv", "nas-b.mkv"):
        shutil.copyfile(clip, nas / name)
    shutil.copyfile(clip, local / "local-c.mkv")
    daemon.start({"SUBTITLED_FAILPOINTS": f"@{spec}",
                  "NOTIFY_SOCKET": str(notify_socket.path)})
    try:
        ready = notify_socket.wait_for("READY=1")
        words = os.strerror(getattr(errno, errno_name))
        paused_everywhere(daemon, notify_socket, words, str(nas), "storage")
        paused = notify_socket.first("STATUS=paused") - ready
        daemon.wait_until(lambda: any(r["state"] == "done" for r in daemon.rows()))
        untouched(daemon, ["nas-a.mkv", "nas-b.mkv"])  # while the other root works
        spec.write_text("")
        resumed = seconds_to_settle(daemon, 3)
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    all_done_once(daemon, 3)
    assert set(valid_subtitles(tmp_path)) == {"nas-a.en.srt", "nas-b.en.srt", "local-c.en.srt"}
    assert "resumed" in daemon.logs[-1]
    record(f"share fails ({errno_name} at {step})",
           f"root paused {paused:.1f} s after start; other root done meanwhile; all done "
           f"{resumed:.1f} s after the fault cleared; files lost 0, attempts spent 0")


def test_a_full_media_disk_pauses_its_root_until_space_is_freed(
        tmp_path: Path, model_dir: Path, clip: Path, tmpfs: Mount,
        notify_socket: NotifySocket) -> None:
    disk = tmpfs(tmp_path / "small disk", "4m")
    daemon = DaemonRun(tmp_path, model_dir, http=HTTP, watch=[{"path": str(disk)}])
    shutil.copyfile(clip, disk / "film.mkv")
    filler = fill(disk)
    daemon.start({"NOTIFY_SOCKET": str(notify_socket.path)})
    try:
        ready = notify_socket.wait_for("READY=1")
        paused_everywhere(daemon, notify_socket, "no space left", str(disk), "space")
        paused = notify_socket.first("STATUS=paused") - ready
        untouched(daemon, ["film.mkv"])
        assert sorted(p.name for p in disk.iterdir()) == ["filler.bin", "film.mkv"]
        filler.unlink()
        resumed = seconds_to_settle(daemon, 1)
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    all_done_once(daemon, 1)
    assert "fellow" in valid_subtitles(disk)["film.en.srt"].lower()
    record("media disk full", f"paused {paused:.1f} s after start, before any decoding; done "
           f"{resumed:.1f} s after space was freed; no partial file; attempts spent 0")


def test_a_full_state_directory_pauses_everything_until_space_is_freed(
        tmp_path: Path, model_dir: Path, clip: Path, tmpfs: Mount,
        notify_socket: NotifySocket) -> None:
    daemon = DaemonRun(tmp_path, model_dir, http=HTTP)
    tmpfs(daemon.state, "4m")
    daemon.start({"NOTIFY_SOCKET": str(notify_socket.path)})
    try:
        notify_socket.wait_for("READY=1")
        filler = fill(daemon.state)
        filled = time.monotonic()
        shutil.copyfile(clip, daemon.media / "film.mkv")
        paused_everywhere(daemon, notify_socket, "database or disk is full", "all", "state")
        paused = notify_socket.first("STATUS=paused", after=filled) - filled
        filler.unlink()
        resumed = seconds_to_settle(daemon, 1)
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    all_done_once(daemon, 1)
    assert daemon.integrity() == "ok"
    record("state directory full", f"everything paused {paused:.1f} s after the file arrived; "
           f"done {resumed:.1f} s after space was freed; database intact")


def test_a_read_only_root_is_reported_at_start_and_its_files_wait(
        tmp_path: Path, model_dir: Path, clip: Path, tmpfs: Mount,
        notify_socket: NotifySocket) -> None:
    shelf = tmpfs(tmp_path / "shelf", "64m")
    shutil.copyfile(clip, shelf / "old.mkv")
    subprocess.run(["mount", "-o", "remount,ro", str(shelf)], check=True)
    daemon = DaemonRun(tmp_path, model_dir, http=HTTP,
                       watch=[{"path": str(shelf)}, {"path": str(tmp_path / "media")}])
    shutil.copyfile(clip, daemon.media / "new.mkv")
    daemon.start({"NOTIFY_SOCKET": str(notify_socket.path)})
    try:
        notify_socket.wait_for("READY=1")
        paused_everywhere(daemon, notify_socket, "Read-only file system", str(shelf),
                          "read-only")
        daemon.wait_until(lambda: any(r["state"] == "done" for r in daemon.rows()))
        old = next(r for r in daemon.rows() if r["path"].endswith("old.mkv"))
        assert old["state"] == "queued" and old["attempts"] == 0, old  # never claimed
        subprocess.run(["mount", "-o", "remount,rw", str(shelf)], check=True)
        resumed = seconds_to_settle(daemon, 2)
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    all_done_once(daemon, 2)
    log = daemon.logs[-1]
    fix = [line for line in log.splitlines() if "ReadWritePaths=" in line]
    assert len(fix) == 1 and str(shelf) in fix[0], log  # once, naming the root and the fix
    record("read-only root", f"reported once at start with the fix; the other root worked; "
           f"done {resumed:.1f} s after it was made writable")


def test_a_sticky_gpu_error_restarts_the_process_and_costs_no_attempt(
        tmp_path: Path, model_dir: Path, clip: Path, notify_socket: NotifySocket) -> None:
    daemon = DaemonRun(tmp_path, model_dir)
    shutil.copyfile(clip, daemon.media / "stuck.mkv")
    daemon.start({"SUBTITLED_FAILPOINTS": "sticky-engine-error:stuck",
                  "NOTIFY_SOCKET": str(notify_socket.path)})
    assert daemon.process is not None
    daemon.process.wait(timeout=300)
    assert daemon.finish() == 75, daemon.logs[-1]
    (row,) = daemon.rows()
    assert row["state"] == "queued" and row["attempts"] == 0, row
    assert "illegal memory access" in row["last_error"]
    assert any(line.startswith("STATUS=restarting") for _, line in notify_socket.fields())
    # What systemd's Restart=on-failure does. The file that needed the restart waits, so
    # that a file arriving meanwhile goes first; `subtitled retry` runs it now.
    shutil.copyfile(clip, daemon.media / "fine.mkv")
    daemon.start()
    try:
        daemon.wait_until(lambda: any(r["state"] == "done" for r in daemon.rows()))
        waiting = next(r for r in daemon.rows() if r["path"].endswith("stuck.mkv"))
        assert waiting["state"] == "queued" and waiting["attempts"] == 0, waiting
        retried = subprocess.run([sys.executable, "-m", "subtitled", "retry", "--config",
                                  str(daemon.config), str(daemon.media / "stuck.mkv")],
                                 capture_output=True, text=True, timeout=60)
        assert retried.returncode == 0, retried.stderr
        daemon.wait_until(lambda: daemon.all_settled(2))
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    all_done_once(daemon, 2)


def test_settings_that_fail_every_file_pause_the_daemon_until_a_reload_fixes_them(
        tmp_path: Path, model_dir: Path) -> None:
    from subtitled.models import packaged_weights

    # An English-only model given by its path, which the schema cannot see is English-only,
    # asked for German: every file would fail the same way.
    english = packaged_weights("tiny.en", model_dir)
    assert english is not None
    daemon = DaemonRun(tmp_path, model_dir, model={"name": str(english)},
                       language={"language": "de"})
    films = [make_video(daemon.media / f"film{n}.mkv", seconds=2.0) for n in range(2)]
    daemon.start()
    try:
        def log() -> str:
            return daemon.log_file.read_text()

        daemon.wait_until(lambda: "the configuration does not work" in log())
        # The pause is probed by letting a file try the settings again; it fails the same
        # way and the daemon pauses again. No file loses an attempt to any of it.
        daemon.wait_until(lambda: "the config fault has cleared" in log()
                          and log().count("the configuration does not work") >= 2)
        rows = daemon.rows()
        assert all(r["state"] in ("queued", "running") for r in rows), rows
        assert all(r["attempts"] == 0 for r in rows if r["state"] == "queued"), rows
        document = yaml.safe_load(daemon.config.read_text())
        document["language"]["language"] = "auto"
        daemon.config.write_text(yaml.safe_dump(document))
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGHUP)
        daemon.wait_until(lambda: all(f.with_suffix(".en.srt").exists() for f in films))
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    logged = daemon.logs[-1]
    assert "knows only English" in logged and "configuration reloaded" in logged
    assert all(r["state"] == "done" for r in daemon.rows())
