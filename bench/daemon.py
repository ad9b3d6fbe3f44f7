"""Daemon overheads on a big library (100,000 files in 2,000 folders by default), on a root
watched with inotify and on a polled one (as a network share is), with the SQLite store
and with the PostgreSQL one (a local server this script starts, as the tests do): the
time a first start takes to queue the whole library, then, with every file done, the
idle CPU of `subtitled run` and the stat and listing calls it makes a second, and the
time from the end of a copy to the start of its job. Prints one Markdown table.

    .venv/bin/python -m bench.daemon [--files 100000] [--folders 2000] [--idle-seconds 60]
        [--poll-seconds 60] [--settle-seconds 5] [--stores sqlite,postgresql]

The calls are counted with strace (stat-family calls and directory reads of every thread)
over the idle window; without strace that column says so.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE = Path(__file__).resolve().parent.parent / "tests/data/en_jfk_inaugural.flac"
# What a poll or a rescan costs the filesystem: metadata reads and directory listings.
_TRACED = "trace=%stat,%%stat,getdents64"


def make_library(media: Path, files: int, folders: int) -> None:
    """`files` one-byte .mkv files spread over `folders` folders, a day old."""
    old = time.time() - 86400
    for index in range(files):
        folder = media / f"Show {index % folders:04d}"
        if index < folders:
            folder.mkdir(parents=True)
        path = folder / f"Episode {index // folders:03d}.mkv"
        path.write_bytes(b"\0")
        os.utime(path, (old, old))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Store:
    """The job store as the benchmark reads it beside the daemon: SQLite in the state
    directory, or PostgreSQL at `url`."""

    def __init__(self, state: Path, url: str | None) -> None:
        self.state, self.url = state, url

    def _rows(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        if self.url is not None:
            import psycopg

            try:
                with psycopg.connect(self.url, autocommit=True) as connection:
                    return list(connection.execute(sql.replace("?", "%s"), args).fetchall())
            except psycopg.errors.UndefinedTable:  # not created yet
                return []
        try:
            with sqlite3.connect(self.state / "jobs.sqlite3", timeout=30) as db:
                return list(db.execute(sql, args).fetchall())
        except sqlite3.OperationalError:  # not created yet
            return []

    def key(self, path: Path) -> str | bytes:
        return os.fsencode(path) if self.url is not None else str(path)

    def jobs(self) -> int:
        rows = self._rows("SELECT count(*) FROM jobs")
        return int(rows[0][0]) if rows else 0

    def all_done(self) -> None:
        self._rows("UPDATE jobs SET state = 'done', attempts = 1 RETURNING id")

    def job_row(self, path: Path) -> tuple[float | None, str | None]:
        """(started, state) of the job for `path`."""
        rows = self._rows("SELECT started, state FROM jobs WHERE path = ?", (self.key(path),))
        return (float(rows[0][0]) if rows[0][0] else None, str(rows[0][1])) if rows \
            else (None, None)


def calls_per_second(pid: int, seconds: float) -> float | None:
    """Stat-family calls and directory reads of every thread of `pid`, a second."""
    if shutil.which("strace") is None:
        return None
    result = subprocess.run(["timeout", "-s", "INT", str(seconds), "strace", "-f", "-c",
                             "-e", _TRACED, "-p", str(pid)], capture_output=True, text=True,
                            check=False)
    for line in result.stderr.splitlines():
        fields = line.split()
        if fields and fields[-1] == "total":
            return int(fields[3]) / seconds
    if "attach" in result.stderr or "ptrace" in result.stderr.lower():
        return None  # not allowed to trace (ptrace_scope, no CAP_SYS_PTRACE)
    return 0.0  # attached, and not one call


def quiet(pid: int, seconds: float = 600) -> None:
    """Until `pid` uses under 5 % of a core over 5 s (its start's work is over)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(5)
        if cpu_seconds(pid) - before < 0.25:
            return
    raise SystemExit(f"the daemon never went quiet in {seconds:.0f} s")


@dataclass
class Run:
    daemon: subprocess.Popen[bytes]
    log: Path

    def wait_for_log(self, text: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while text not in self.log.read_text(errors="replace"):
            if time.monotonic() > deadline or self.daemon.poll() is not None:
                raise SystemExit(f"the daemon never logged {text!r}; see {self.log}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.daemon.send_signal(signal.SIGTERM)
        self.daemon.wait(60)


def start(root: Path, media: Path, store: Store, polling: str, args: argparse.Namespace,
          name: str) -> Run:
    config = root / f"{name}.yaml"
    config.write_text(yaml.safe_dump({
        "watch": [str(media)], "state_dir": str(store.state),
        "state": {"database": store.url},
        "scan": {"settle_seconds": args.settle_seconds, "polling": polling,
                 "polling_interval_seconds": args.poll_seconds, "backfill": "all",
                 "include_extensions": [".mkv", ".flac"]},
        "http": {"enabled": False},
        "model": {"name": "tiny.en", "model_dir": str(root / "models")}}))
    log = root / f"{name}.log"
    with log.open("wb") as output:
        daemon = subprocess.Popen([sys.executable, "-m", "subtitled", "run", "--config",
                                   str(config)], stderr=output, stdout=output)
    return Run(daemon, log)


def measure(root: Path, polling: str, url: str | None,
            args: argparse.Namespace) -> dict[str, str]:
    kind = f"{polling}-{'postgresql' if url else 'sqlite'}"
    media, state = root / f"media-{kind}", root / f"state-{kind}"
    state.mkdir()
    store = Store(state, url)
    make_library(media, args.files, args.folders)
    os.sync()
    started = time.monotonic()
    run = start(root, media, store, polling, args, f"first-{kind}")
    try:
        while store.jobs() < args.files:
            if run.daemon.poll() is not None:
                raise SystemExit(f"the daemon ended; see {run.log}")
            time.sleep(0.2)
        first_start = time.monotonic() - started
    finally:
        run.stop()
    store.all_done()
    run = start(root, media, store, polling, args, f"idle-{kind}")
    try:
        run.wait_for_log("watching ", 600)
        quiet(run.daemon.pid)  # the rescan that follows the watches, settled
        before, began = cpu_seconds(run.daemon.pid), time.monotonic()
        time.sleep(args.idle_seconds)
        idle = (cpu_seconds(run.daemon.pid) - before) / (time.monotonic() - began)
        # Counted in a window of its own: a traced process is a slower one.
        calls = calls_per_second(run.daemon.pid, args.idle_seconds)
        latencies = []
        for trial in range(3):
            new = media / f"Show {trial:04d}" / f"new {trial}.flac"
            shutil.copyfile(SAMPLE, new)
            copied = time.time()
            while (begun := store.job_row(new)[0]) is None:
                time.sleep(0.05)
            latencies.append(begun - copied)
            while store.job_row(new)[1] == "running":  # one worker: let it finish
                time.sleep(0.2)
    finally:
        run.stop()
    bound = args.settle_seconds + (args.poll_seconds if polling == "on" else 0) + 1
    return {
        "first start, whole library queued": f"{first_start:.1f} s",
        f"idle CPU over {args.idle_seconds:.0f} s": f"{100 * idle:.2f} % of a core",
        "stat and listing calls while idle": "not traced (strace missing or refused)"
        if calls is None
        else f"{calls:.1f} a second",
        "copy end → job start (3 copies)":
            f"{', '.join(f'{x:.1f}' for x in latencies)} s (bound {bound:g} s)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--folders", type=int, default=2_000)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--poll-seconds", type=float, default=60.0)
    parser.add_argument("--settle-seconds", type=float, default=5.0)
    parser.add_argument("--stores", default="sqlite,postgresql",
                        help="the job stores to measure, comma-separated")
    args = parser.parse_args()
    stores = args.stores.split(",")
    columns = [(watch, store) for store in stores for watch in ("inotify", "polled")]
    results: dict[tuple[str, str], dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as folder:
        server = None
        if "postgresql" in stores:
            from tests.integration.postgres_server import PostgresServer

            server = PostgresServer()
        try:
            for watch, store in columns:
                url = server.new_database() if server is not None and store == "postgresql" \
                    else None
                results[(watch, store)] = measure(Path(folder), "off" if watch == "inotify"
                                                  else "on", url, args)
        finally:
            if server is not None:
                server.close()
    print(f"{args.files} files in {args.folders} folders; settle {args.settle_seconds:g} s, "
          f"poll every {args.poll_seconds:g} s; {os.cpu_count()} cores; PostgreSQL on a "
          "local socket")
    print()
    print(f"| measure | {' | '.join(f'{w}, {s}' for w, s in columns)} | target |")
    print(f"|---|{'---|' * len(columns)}---|")
    targets = ["< 60 s", "< 1 % of a core", "", "within a poll plus the quiet period"]
    for measure_name, target in zip(results[columns[0]], targets, strict=True):
        cells = " | ".join(results[column][measure_name] for column in columns)
        print(f"| {measure_name} | {cells} | {target} |")


if __name__ == "__main__":
    main()
