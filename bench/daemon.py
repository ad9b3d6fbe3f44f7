"""Daemon overheads on a big library (100,000 files in 2,000 folders by default), on a root
watched with inotify and on a polled one (as a network share is): the time a first start
takes to queue the whole library, then, with every file done, the idle CPU of `subtitled
run` and the stat and listing calls it makes a second, and the time from the end of a
copy to the start of its job. Prints one Markdown table.

    .venv/bin/python -m bench.daemon [--files 100000] [--folders 2000] [--idle-seconds 60]
        [--poll-seconds 60] [--settle-seconds 5]

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


def jobs(state: Path) -> int:
    try:
        with sqlite3.connect(f"file:{state / 'jobs.sqlite3'}?mode=ro", uri=True,
                             timeout=30) as db:
            return int(db.execute("SELECT count(*) FROM jobs").fetchone()[0])
    except sqlite3.Error:  # not created yet
        return 0


def all_done(state: Path) -> None:
    with sqlite3.connect(state / "jobs.sqlite3", timeout=30) as db:
        db.execute("UPDATE jobs SET state = 'done', attempts = 1")


def job_row(state: Path, name: str) -> tuple[float | None, str | None]:
    """(started, state) of the job for `name`."""
    with sqlite3.connect(f"file:{state / 'jobs.sqlite3'}?mode=ro", uri=True,
                         timeout=30) as db:
        row = db.execute("SELECT started, state FROM jobs WHERE path LIKE ?",
                         (f"%/{name}",)).fetchone()
    return (float(row[0]) if row[0] else None, str(row[1])) if row else (None, None)


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


def start(root: Path, media: Path, state: Path, polling: str, args: argparse.Namespace,
          name: str) -> Run:
    config = root / f"{name}.yaml"
    config.write_text(yaml.safe_dump({
        "watch": [str(media)], "state_dir": str(state),
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


def measure(root: Path, polling: str, args: argparse.Namespace) -> dict[str, str]:
    media, state = root / f"media-{polling}", root / f"state-{polling}"
    state.mkdir()
    make_library(media, args.files, args.folders)
    os.sync()
    started = time.monotonic()
    run = start(root, media, state, polling, args, f"first-{polling}")
    try:
        while jobs(state) < args.files:
            if run.daemon.poll() is not None:
                raise SystemExit(f"the daemon ended; see {run.log}")
            time.sleep(0.2)
        first_start = time.monotonic() - started
    finally:
        run.stop()
    all_done(state)
    run = start(root, media, state, polling, args, f"idle-{polling}")
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
            name = f"new {trial}.flac"
            shutil.copyfile(SAMPLE, media / f"Show {trial:04d}" / name)
            copied = time.time()
            while (begun := job_row(state, name)[0]) is None:
                time.sleep(0.05)
            latencies.append(begun - copied)
            while job_row(state, name)[1] == "running":  # one worker: let it finish
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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        results = {kind: measure(Path(folder), polling, args)
                   for kind, polling in (("inotify", "off"), ("polled", "on"))}
    print(f"{args.files} files in {args.folders} folders; SQLite; settle "
          f"{args.settle_seconds:g} s, poll every {args.poll_seconds:g} s; "
          f"{os.cpu_count()} cores")
    print()
    print("| measure | inotify | polled | target |")
    print("|---|---|---|---|")
    targets = ["< 60 s", "< 1 % of a core", "", "within a poll plus the quiet period"]
    for (measure_name, inotify), target in zip(results["inotify"].items(), targets,
                                                strict=True):
        print(f"| {measure_name} | {inotify} | {results['polled'][measure_name]} | {target} |")


if __name__ == "__main__":
    main()
