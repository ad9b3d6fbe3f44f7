"""The state directory protects itself: one daemon at a time, a schema a newer release made
is refused, and `status`/`retry` by a user who may only read it work or say why in one
line, through the real command line and daemon."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import yaml

from subtitled.store import SCHEMA_VERSION, SqliteStore
from tests.integration.daemon_harness import DaemonRun
from tests.integration.test_jobs import release_database

# Root as an admin without the capability to override file permissions: what a user who
# is not the daemon's sees, while the interpreter under /root stays reachable.
NOT_THE_OWNER = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search",
                 "--inh-caps", "-all"]
OTHER_USER = 65534


def cli(config: Path, *args: str, prefix: list[str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*(prefix or []), sys.executable, "-m", "subtitled", *args,
                           "--config", str(config)], capture_output=True, text=True,
                          timeout=120)


def one_line_error(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("subtitled: error: state_dir:"), lines
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_a_second_daemon_on_the_same_state_exits_2_naming_the_first(
        tmp_path: Path, model_dir: Path) -> None:
    daemon = DaemonRun(tmp_path, model_dir)
    daemon.start()
    try:
        daemon.wait_until(lambda: "watching" in daemon.log_file.read_text())
        assert daemon.process is not None
        second = subprocess.run([sys.executable, "-m", "subtitled", "run", "--config",
                                 str(daemon.config)], capture_output=True, text=True,
                                timeout=120)
        one_line_error(second, f"another subtitled (pid {daemon.process.pid}) is running",
                       str(daemon.state))
        assert daemon.process.poll() is None
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    # The lock goes with the process: the next daemon starts.
    daemon.start()
    try:
        daemon.wait_until(lambda: daemon.log_file.read_text().count("watching") >= 1)
    finally:
        assert daemon.finish(signal.SIGTERM) == 0


def test_status_and_retry_by_a_user_who_may_only_read_the_state(tmp_path: Path) -> None:
    state, media = tmp_path / "state", tmp_path / "media"
    state.mkdir()
    media.mkdir()
    release_database(state / "jobs.sqlite3")  # done, running (a film), failed
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"watch": [str(media)], "state_dir": str(state)}))
    for path in (state, *state.iterdir()):
        os.chown(path, OTHER_USER, OTHER_USER)
    tmp_path.chmod(0o755)

    daemon = SqliteStore(state / "jobs.sqlite3")  # the running daemon keeps its -wal and -shm
    for kept in state.glob("jobs.sqlite3-*"):  # ...as its own user's, which we are not
        os.chown(kept, OTHER_USER, OTHER_USER)
    try:
        status = cli(config, "status", prefix=NOT_THE_OWNER)
        assert status.returncode == 0, status.stderr
        assert "done 1" in status.stdout and "failed: decode: broken" in status.stdout
        retry = cli(config, "retry", "--failed", prefix=NOT_THE_OWNER)
        one_line_error(retry, "cannot write the job database", "as the daemon's user")
    finally:
        daemon.close()
    # With the daemon stopped there is no -shm to share; the file is read as it stands.
    stopped = cli(config, "status", prefix=NOT_THE_OWNER)
    assert stopped.returncode == 0 and "done 1" in stopped.stdout, stopped.stderr

    state.chmod(0o700)  # not even readable
    hidden = cli(config, "status", prefix=NOT_THE_OWNER)
    one_line_error(hidden, "cannot read the job database", "as the daemon's user")


def test_a_state_directory_from_a_newer_release_is_refused_in_one_line(
        tmp_path: Path) -> None:
    state, media = tmp_path / "state", tmp_path / "media"
    state.mkdir()
    media.mkdir()
    with sqlite3.connect(state / "jobs.sqlite3") as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"watch": [str(media)], "state_dir": str(state)}))
    for command in ("status", "run"):
        one_line_error(cli(config, command), "made by a newer release of subtitled")
