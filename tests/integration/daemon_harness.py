"""Starts the real daemon as a subprocess on a temp library and looks at what it did."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import srt
import yaml

from tests.integration.conftest import DATA, ffmpeg, picture


def make_video(path: Path, seconds: float = 5.0, source: str = "en_jfk_inaugural.flac") -> Path:
    ffmpeg(*picture(seconds), "-i", str(DATA / source), "-map", "0:v", "-map", "1:a",
           "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
           str(path))
    return path


class DaemonRun:
    def __init__(self, root: Path, model_dir: Path, **overrides: Any) -> None:
        self.root = root
        self.media = root / "media"
        self.state = root / "state"
        self.media.mkdir(parents=True, exist_ok=True)
        self.config = root / "config.yaml"
        self.logs: list[str] = []
        document: dict[str, Any] = {
            "watch": [{"path": str(self.media)}],
            "state_dir": str(self.state),
            "scan": {"settle_seconds": 2, "rescan_interval_seconds": 3600},
            "model": {"name": "tiny.en", "model_dir": str(model_dir), "offline": True},
            # A fault's cause checked again 2 s after a pause (15 s by default): a test
            # waits for the resume, not for the probe.
            "retry": {"max_attempts": 3, "backoff_seconds": 0, "fault_probe_seconds": 2},
        }
        for section, values in overrides.items():
            if isinstance(values, dict):
                document.setdefault(section, {}).update(values)
            else:
                document[section] = values
        self.config.write_text(yaml.safe_dump(document))
        self.process: subprocess.Popen[bytes] | None = None
        self.log_file = root / "daemon.log"

    def start(self, env: dict[str, str] | None = None, *, own_watchdog_pid: bool = False,
              prefix: list[str] | None = None) -> None:
        """`own_watchdog_pid` sets WATCHDOG_PID to the daemon's own pid, as systemd does;
        `prefix` runs the daemon under another command (setpriv)."""
        command = [*(prefix or []), sys.executable, "-m", "subtitled", "-v", "run",
                   "--config", str(self.config)]
        if own_watchdog_pid:  # exec keeps the shell's pid
            command = ["sh", "-c", 'WATCHDOG_PID=$$ exec "$@"', "sh", *command]
        # The log goes to a file: a pipe nobody reads would block the daemon when full.
        with open(self.log_file, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, **(env or {})})

    def wait_ready(self, seconds: float = 120) -> None:
        """Until the daemon has loaded its model and watches its folders (its signal
        handlers are in place long before)."""
        self.wait_until(lambda: "watching " in self.log_file.read_text(errors="replace"),
                        seconds)

    def finish(self, sig: int | None = None, timeout: float = 60) -> int:
        """Send `sig` (if any), wait, keep the log; returns the exit status."""
        assert self.process is not None
        if sig is not None and self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout)
        self.logs.append(self.log_file.read_text(errors="replace"))
        self.process = None
        return code

    def kill(self) -> None:
        self.finish(signal.SIGKILL)

    def memory_kib(self, field: str) -> int:
        """A memory figure of the running daemon (VmRSS; VmHWM, its peak)."""
        assert self.process is not None
        return memory_kib(self.process.pid, field)

    def rows(self) -> list[dict[str, Any]]:
        database = self.state / "jobs.sqlite3"
        if not database.exists():
            return []
        with sqlite3.connect(database) as db:
            db.row_factory = sqlite3.Row
            # The daemon creates the file (journal mode) a moment before its table.
            if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'jobs'").fetchone() is None:
                return []
            return [dict(r) for r in db.execute("SELECT * FROM jobs ORDER BY id")]

    def integrity(self) -> str:
        with sqlite3.connect(self.state / "jobs.sqlite3") as db:
            return str(db.execute("PRAGMA integrity_check").fetchone()[0])

    def wait_until(self, condition: Callable[[], bool], seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if condition():
                return
            self._still_running()
            time.sleep(0.2)
        raise AssertionError(f"timed out; jobs: {self.rows()}")

    def _still_running(self) -> None:
        """Fails a wait at once, with the daemon's log, when it has exited."""
        if self.process is not None and self.process.poll() is not None:
            self.finish()
            raise AssertionError("the daemon exited:\n" + self.logs[-1])

    def wait_working(self, condition: Callable[[], bool], stalled_seconds: float = 300,
                     seconds: float = 3600) -> None:
        """Wait for `condition` for as long as the daemon's work moves: a job's state or
        progress changes at least every `stalled_seconds`. A hang fails the wait; a machine
        busy with other work only makes it longer, up to `seconds` (work that moves
        forever, a loop of retries, fails there)."""
        last: list[dict[str, Any]] | None = None
        since = time.monotonic()
        end = since + seconds
        while not condition():
            assert time.monotonic() < end, f"not done in {seconds:g} s; jobs: {self.rows()}"
            self._still_running()
            rows = self.rows()
            if rows != last:
                last, since = rows, time.monotonic()
            elif time.monotonic() - since > stalled_seconds:
                raise AssertionError(f"no work moved in {stalled_seconds:g} s; jobs: {rows}")
            time.sleep(0.2)

    def all_settled(self, count: int) -> bool:
        rows = self.rows()
        return len(rows) == count and all(r["state"] in ("done", "skipped", "failed", "dead")
                                          for r in rows)


def memory_kib(pid: int, field: str) -> int:
    """A memory figure of a process from /proc/PID/status (VmRSS, VmHWM, ...)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def command_lines() -> list[str]:
    """The command line of every live process, arguments joined by spaces."""
    lines = []
    for entry in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            lines.append(os.fsdecode(entry.read_bytes().replace(b"\0", b" ")))
        except OSError:
            continue
    return lines


def processes_touching(folder: Path) -> list[str]:
    """Command lines of live processes that name `folder` (an orphaned ffmpeg would)."""
    return [line for line in command_lines() if str(folder) in line and "pytest" not in line]


def valid_subtitles(folder: Path) -> dict[str, str]:
    """Each .srt under `folder` → its text, asserting that it parses and has cues."""
    texts = {}
    for path in folder.rglob("*.srt"):
        cues = list(srt.parse(path.read_text(encoding="utf-8")))
        assert cues, f"{path} has no cues"
        texts[path.name] = " ".join(c.content for c in cues)
    return texts
