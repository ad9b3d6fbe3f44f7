"""Several real daemons, each with its own state directory and host name, on one shared
library and one real PostgreSQL database: killed with SIGKILL and started again, the
database restarted and stopped for a minute. Every file ends with exactly one valid
subtitle, no file is ever worked on by two hosts at once (each host logs its claims and
their end; the test checks that no two claims on one file overlap), and nothing exits."""

from __future__ import annotations

import itertools
import os
import random
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from tests.integration.conftest import DATA, ffmpeg, picture
from tests.integration.daemon_harness import DaemonRun, make_video, valid_subtitles
from tests.integration.figures import record
from tests.integration.postgres_server import PostgresServer

LEASE_SECONDS = 10.0  # the shortest the configuration allows
CLAIM_INTERVAL_SECONDS = 0.5  # an idle daemon looks for work this often (daemon._IDLE_SECONDS)
_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO \S+: (.+): "
                   r"(claimed|let go) by (\S+) \(lease (\d+)")


def shared_rows(url: str) -> list[dict[str, Any]]:
    """The shared store's jobs, read beside the daemons."""
    try:
        with psycopg.connect(url, autocommit=True) as connection, \
                connection.cursor(row_factory=psycopg.rows.dict_row) as cursor:
            return list(cursor.execute("SELECT path, state, host, lease FROM jobs"))
    except psycopg.errors.UndefinedTable:  # no daemon has made the schema yet
        return []


class Hosts:
    """Daemons named h1, h2, ... on one library; each kill is remembered with its time."""

    def __init__(self, tmp_path: Path, model_dir: Path, url: str, count: int) -> None:
        self.library = tmp_path / "library"
        self.library.mkdir()
        self.url = url
        self.daemons = {f"h{n}": DaemonRun(
            tmp_path / f"h{n}", model_dir, watch=[{"path": str(self.library)}],
            state={"database": url, "host_name": f"h{n}", "lease_seconds": LEASE_SECONDS})
            for n in range(1, count + 1)}
        self.killed: list[tuple[str, float]] = []  # (host, when)
        self.interrupted: list[str] = []  # files whose claim a kill ended (see claims)

    def start(self, name: str | None = None) -> None:
        for host, daemon in self.daemons.items():
            if name in (None, host):
                daemon.start()

    def kill(self, name: str) -> float:
        daemon = self.daemons[name]
        assert daemon.process is not None and daemon.process.poll() is None, \
            f"{name} exited by itself:\n{daemon.log_file.read_text()}"
        when = time.time()
        daemon.kill()
        self.killed.append((name, when))
        return when

    def rows(self) -> list[dict[str, Any]]:
        return shared_rows(self.url)

    def wait_done(self, count: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for name, daemon in self.daemons.items():
                assert daemon.process is None or daemon.process.poll() is None, \
                    f"{name} exited by itself:\n{daemon.log_file.read_text()}"
            rows = self.rows()
            if len(rows) == count and all(row["state"] == "done" for row in rows):
                return
            time.sleep(0.5)
        raise AssertionError(f"not done in {seconds} s: {self.rows()}")

    def stop(self) -> None:
        """SIGTERM to each daemon still running; every one is stopped before any failure
        is raised."""
        failed = []
        for name, daemon in self.daemons.items():
            if daemon.process is None:
                continue
            try:
                daemon.wait_ready()  # one started a moment ago has no signal handlers yet
            except AssertionError as err:  # it exited, or never got ready
                failed.append(f"{name}: {err}")
            if daemon.process is not None and daemon.finish(signal.SIGTERM) != 0:
                failed.append(f"{name}:\n{daemon.logs[-1]}")
        assert not failed, "\n".join(failed)

    def claims(self) -> dict[str, list[tuple[float, float, str, int]]]:
        """Per file, every claim as (start, end, host, lease): ended by the host's own
        'let go', or by its kill."""
        per_run: list[tuple[str, str, float | None]] = []
        for name, daemon in self.daemons.items():
            killed_at = [when for host, when in self.killed if host == name]
            for index, log in enumerate(daemon.logs):
                end = killed_at[index] if index < len(killed_at) else None
                per_run.append((name, log, end))
        found: dict[str, list[tuple[float, float, str, int]]] = {}
        for name, log, killed in per_run:
            open_claims: dict[tuple[str, int], float] = {}
            for line in log.splitlines():
                match = _LINE.match(line)
                if match is None:
                    continue
                stamp = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                path, what, host, lease = match[2], match[3], match[4], int(match[5])
                assert host == name, line
                if what == "claimed":
                    open_claims[(path, lease)] = stamp
                else:
                    found.setdefault(path, []).append(
                        (open_claims.pop((path, lease)), stamp, host, lease))
            for (path, lease), start in open_claims.items():
                assert killed is not None, f"{name} never let go of {path}"
                found.setdefault(path, []).append((start, killed, name, lease))
                self.interrupted.append(path)
        return found


def _no_overlaps(claims: dict[str, list[tuple[float, float, str, int]]]) -> None:
    for path, spans in claims.items():
        spans.sort()
        for before, after in itertools.pairwise(spans):
            assert after[0] >= before[1], f"{path}: two claims at once: {before} and {after}"
        assert len({lease for *_, lease in spans}) == len(spans), spans


def _one_subtitle_each(library: Path, videos: list[Path]) -> None:
    texts = valid_subtitles(library)
    assert sorted(texts) == sorted(f"{video.stem}.en.srt" for video in videos)


@pytest.mark.parametrize("count", [2, 3])
def test_hosts_share_a_library_through_kills_and_restarts(
        tmp_path: Path, model_dir: Path, postgres_url: str, count: int) -> None:
    hosts = Hosts(tmp_path, model_dir, postgres_url, count)
    videos = [make_video(hosts.library / f"Episode {n:02}.mkv", 3.0) for n in range(30)]
    chance = random.Random(count)
    hosts.start()
    try:
        for _ in range(5):  # five kills at random points, each host started again at once
            time.sleep(chance.uniform(2.0, 6.0))
            victim = chance.choice(sorted(hosts.daemons))
            hosts.kill(victim)
            hosts.start(victim)
        hosts.wait_done(len(videos), 600)
    finally:
        hosts.stop()
    _one_subtitle_each(hosts.library, videos)
    claims = hosts.claims()
    assert set(claims) == {str(video) for video in videos}
    _no_overlaps(claims)
    workers = {host for spans in claims.values() for _, _, host, _ in spans}
    assert len(workers) == count, workers  # every host did some of the work
    assert hosts.interrupted, "no kill came while a host held a file"
    record(f"{count} hosts, 5 kills", f"{len(hosts.interrupted)} kills while a file was held; "
           f"{sum(len(spans) for spans in claims.values())} claims for 30 files")


def long_video(path: Path, seconds: float) -> Path:
    ffmpeg(*picture(seconds), "-stream_loop", "-1", "-i", str(DATA / "en_jfk_inaugural.flac"),
           "-map", "0:v", "-map", "1:a", "-t", str(seconds), "-c:v", "libx264", "-preset",
           "ultrafast", "-c:a", "aac", str(path))
    return path


def test_a_dead_host_s_file_is_taken_over_within_its_lease(
        tmp_path: Path, model_dir: Path, postgres_url: str) -> None:
    hosts = Hosts(tmp_path, model_dir, postgres_url, 2)
    film = long_video(hosts.library / "Film (2020).mkv", 90.0)
    hosts.start()
    try:
        holder = ""
        deadline = time.monotonic() + 300
        while not holder and time.monotonic() < deadline:
            holder = next((row["host"] for row in hosts.rows()
                           if row["state"] == "running"), "")
            time.sleep(0.1)
        assert holder, hosts.rows()
        killed = hosts.kill(holder)  # and not started again: the other host must take it
        hosts.wait_done(1, 600)
    finally:
        hosts.stop()
    _one_subtitle_each(hosts.library, [film])
    claims = hosts.claims()[str(film)]
    _no_overlaps({str(film): claims})
    taken = [start for start, _, host, _ in claims if host != holder]
    assert len(taken) == 1, claims
    assert taken[0] - killed <= LEASE_SECONDS + CLAIM_INTERVAL_SECONDS, (killed, claims)
    record("a dead host's film taken over", f"claimed by the other host {taken[0] - killed:.1f} "
           f"s after the kill (lease {LEASE_SECONDS:g} s)")


def test_the_database_restarted_and_stopped_for_half_a_minute_loses_nothing(
        tmp_path: Path, model_dir: Path, postgres_server: PostgresServer,
        postgres_url: str) -> None:
    hosts = Hosts(tmp_path, model_dir, postgres_url, 2)
    videos = [make_video(hosts.library / f"Clip {n:02}.mkv", 3.0) for n in range(12)]
    hosts.start()
    try:
        deadline = time.monotonic() + 300
        while sum(row["state"] == "done" for row in hosts.rows()) < 2:
            assert time.monotonic() < deadline, hosts.rows()
            time.sleep(0.2)
        postgres_server.restart()  # every connection cut at once
        time.sleep(3)
        postgres_server.stop("immediate")
        time.sleep(30)  # three leases, three connection timeouts, five probes
        for name, daemon in hosts.daemons.items():
            assert daemon.process is not None and daemon.process.poll() is None, \
                f"{name} exited while the database was down:\n{daemon.log_file.read_text()}"
        postgres_server.start()
        hosts.wait_done(len(videos), 600)
    finally:
        if not (postgres_server.data / "postmaster.pid").exists():
            postgres_server.start()
        hosts.stop()
    _one_subtitle_each(hosts.library, videos)
    _no_overlaps(hosts.claims())
    logs = "\n".join(log for daemon in hosts.daemons.values() for log in daemon.logs)
    assert "the job database" in logs and "resumed" in logs, logs[-3000:]


def test_a_single_host_s_store_migrated_to_postgresql_keeps_its_done_files_done(
        tmp_path: Path, model_dir: Path, postgres_url: str) -> None:
    alone = DaemonRun(tmp_path, model_dir)
    videos = [make_video(alone.media / f"Film {n}.mkv", 3.0) for n in range(2)]
    alone.start()
    try:
        alone.wait_until(lambda: alone.all_settled(2))
    finally:
        assert alone.finish(signal.SIGTERM) == 0
    done = {row["path"]: row for row in alone.rows()}
    shared = DaemonRun(tmp_path, model_dir, state={"database": postgres_url,
                                                   "host_name": "h1"})
    migrated = subprocess.run([sys.executable, "-m", "subtitled", "migrate-db", "--config",
                               str(shared.config)], capture_output=True, text=True, timeout=120)
    assert migrated.returncode == 0, migrated.stderr
    assert "2 jobs copied into" in migrated.stdout and "done 2" in migrated.stdout
    alone_config = tmp_path / "alone.yaml"  # the single host's own, without state.database
    document = yaml.safe_load(shared.config.read_text())
    document["state"]["database"] = None
    alone_config.write_text(yaml.safe_dump(document))
    for to, refusal in ((postgres_url, "already holds jobs"),
                        ("mysql://db/subtitled", "is not a PostgreSQL URL")):
        again = subprocess.run([sys.executable, "-m", "subtitled", "migrate-db", "--config",
                                str(alone_config), "--to", to], capture_output=True,
                               text=True, timeout=120)
        assert again.returncode == 2 and refusal in again.stderr, again.stderr
    shared.start()
    try:
        shared.wait_ready()
        time.sleep(5)  # the first scan finds both files, known and done
    finally:
        assert shared.finish(signal.SIGTERM) == 0
    assert "claimed by" not in shared.logs[-1], shared.logs[-1]
    after = {os.fsdecode(row["path"]): row for row in shared_rows(postgres_url)}
    assert set(after) == {str(video) for video in videos} == set(done)
    assert all(row["state"] == "done" for row in after.values())


def test_a_host_whose_lease_was_taken_stops_and_puts_nothing_in_place(
        tmp_path: Path, model_dir: Path, postgres_url: str) -> None:
    """As when a host was cut off from the database longer than its lease and another took
    its file: its next renewal fails, it leaves the file at its next engine call, writes
    nothing of it, and goes on with the queue."""
    hosts = Hosts(tmp_path, model_dir, postgres_url, 1)
    film = long_video(hosts.library / "Film (2021).mkv", 300.0)
    daemon = hosts.daemons["h1"]
    hosts.start()
    try:
        daemon.wait_until(lambda: "claimed by h1" in daemon.log_file.read_text(), 300)
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            connection.execute("UPDATE jobs SET lease = lease + 1, host = 'elsewhere',"
                               " lease_expires = EXTRACT(EPOCH FROM now()) + 3600")
        daemon.wait_until(lambda: "no longer ours" in daemon.log_file.read_text(), 60)
        episode = make_video(hosts.library / "Episode.mkv", 3.0)
        daemon.wait_until(lambda: (hosts.library / "Episode.en.srt").exists(), 300)
    finally:
        hosts.stop()
    log = daemon.logs[-1]
    assert "Film (2021).mkv: no longer ours (another host has claimed it); nothing of it " \
        "is written here" in log
    assert not list(hosts.library.glob("Film (2021)*.srt*")), list(hosts.library.iterdir())
    assert valid_subtitles(hosts.library).keys() == {episode.with_suffix(".en.srt").name}
    row = {os.fsdecode(r["path"]): r for r in hosts.rows()}[str(film)]
    assert (row["state"], row["host"]) == ("running", "elsewhere")
