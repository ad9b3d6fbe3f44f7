"""Daemon overheads on a library of 10,000 files that are all done already: idle CPU of
`subtitled run`, the time of a full rescan, and the time from the end of a copy to the start
of its job. Prints one Markdown table.

    .venv/bin/python -m bench.daemon [--files 10000] [--idle-seconds 30]
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
from pathlib import Path

import yaml

from subtitled.config import ScanSettings, WatchRoot
from subtitled.jobs import Fingerprint, JobStore, Result
from subtitled.settle import Settler
from subtitled.watcher import Watcher

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE = Path(__file__).resolve().parent.parent / "tests/data/en_jfk_inaugural.flac"


def make_library(media: Path, state: Path, count: int) -> None:
    """`count` files in folders of 100, recorded as done in the job store."""
    store = JobStore(state / "jobs.sqlite3")
    for index in range(count):
        folder = media / f"Show {index // 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"Episode {index % 100:02d}.mkv"
        path.write_bytes(b"\0")
        old = time.time() - 86400
        os.utime(path, (old, old))
        store.enqueue(path, Fingerprint.of(path), 0)
    while (job := store.claim()) is not None:
        store.finish(job, "done", Result("en", 1, 1.0, 1.0, None))
    store.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rescan_seconds(media: Path, state: Path) -> tuple[float, int]:
    store = JobStore(state / "jobs.sqlite3")
    settler = Settler(30.0)
    watcher = Watcher((WatchRoot(media),), ScanSettings(), settler, lambda _: None)
    started = time.perf_counter()
    watcher.rescan()
    queued = sum(store.enqueue(p, f, q) for p, f, q in settler.due())
    elapsed = time.perf_counter() - started
    store.close()
    return elapsed, queued


def job_row(state: Path, name: str) -> tuple[float | None, str | None]:
    """(started, state) of the job for `name`."""
    with sqlite3.connect(state / "jobs.sqlite3") as db:
        row = db.execute("SELECT started, state FROM jobs WHERE path LIKE ?",
                         (f"%/{name}",)).fetchone()
    return (float(row[0]) if row[0] else None, str(row[1])) if row else (None, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--settle-seconds", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        media, state = root / "media", root / "state"
        state.mkdir()
        make_library(media, state, args.files)
        scan_seconds, requeued = rescan_seconds(media, state)
        config = root / "config.yaml"
        config.write_text(yaml.safe_dump({
            "watch": [str(media)], "state_dir": str(state),
            "scan": {"settle_seconds": args.settle_seconds,
                     "include_extensions": [".mkv", ".flac"]},
            "model": {"name": "tiny.en", "model_dir": str(root / "models")}}))
        daemon = subprocess.Popen([sys.executable, "-m", "subtitled", "run", "--config",
                                   str(config)], stderr=subprocess.DEVNULL)
        try:
            time.sleep(15)  # model loaded, watches set, first rescan over
            before, started = cpu_seconds(daemon.pid), time.monotonic()
            time.sleep(args.idle_seconds)
            idle = (cpu_seconds(daemon.pid) - before) / (time.monotonic() - started)
            latencies = []
            for trial in range(3):
                name = f"new {trial}.flac"
                shutil.copyfile(SAMPLE, media / name)
                copied = time.time()
                while (begun := job_row(state, name)[0]) is None:
                    time.sleep(0.05)
                latencies.append(begun - copied)
                while job_row(state, name)[1] == "running":  # one worker: let it finish
                    time.sleep(0.2)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(60)
    print(f"{args.files} files in {args.files // 100} folders, all done already; "
          f"{os.cpu_count()} cores")
    print()
    print("| measure | value | target |")
    print("|---|---|---|")
    print(f"| idle CPU of `subtitled run` over {args.idle_seconds:.0f} s | "
          f"{100 * idle:.2f} % of a core | < 1 % |")
    print(f"| full rescan (walk, stat, settle, store look-up) | {scan_seconds:.2f} s "
          f"({requeued} queued again) | quick |")
    print(f"| copy end → job start, settle {args.settle_seconds:g} s (3 copies) | "
          f"{', '.join(f'{x:.2f}' for x in latencies)} s | ≤ settle + 1 s |")


if __name__ == "__main__":
    main()
