"""The job store on a real SQLite file."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import TypedDict

import pytest

from subtitled.jobs import PRIORITY_BACKFILL, PRIORITY_NEW, Fingerprint, JobStore, Result

FP = Fingerprint(100, 1, 1)
class Retry(TypedDict):
    max_attempts: int
    backoff_seconds: float
    backoff_max_seconds: float


RETRY = Retry(max_attempts=3, backoff_seconds=0.0, backoff_max_seconds=0.0)


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    return JobStore(tmp_path / "jobs.sqlite3")


def test_the_database_is_wal_with_full_sync(store: JobStore, tmp_path: Path) -> None:
    other = sqlite3.connect(tmp_path / "jobs.sqlite3")
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.integrity_ok()


def test_new_arrivals_come_before_the_backfill(store: JobStore) -> None:
    store.enqueue(Path("/m/old1.mkv"), FP, PRIORITY_BACKFILL)
    store.enqueue(Path("/m/old2.mkv"), FP, PRIORITY_BACKFILL)
    store.enqueue(Path("/m/new.mkv"), FP, PRIORITY_NEW)
    claimed = [store.claim(), store.claim(), store.claim()]
    assert [j.path.name for j in claimed if j] == ["new.mkv", "old1.mkv", "old2.mkv"]
    assert store.claim() is None


def test_a_claim_counts_the_attempt_before_work_starts(store: JobStore) -> None:
    store.enqueue(Path("/m/a.mkv"), FP, 0)
    job = store.claim()
    assert job is not None and job.state == "running" and job.attempts == 1


def test_done_files_are_not_queued_again_but_changed_ones_are(store: JobStore) -> None:
    path = Path("/m/a.mkv")
    assert store.enqueue(path, FP, 0)
    job = store.claim()
    assert job is not None
    store.finish(job, "done", Result("en", 3, 11.0, 2.0, Path("/m/a.en.srt")))
    assert not store.enqueue(path, FP, 0)
    assert store.get(path).state == "done"  # type: ignore[union-attr]
    assert store.enqueue(path, Fingerprint(200, 2, 1), 0)
    assert store.get(path).state == "queued"  # type: ignore[union-attr]


def test_a_crash_loop_ends_dead_after_the_attempts(store: JobStore) -> None:
    store.enqueue(Path("/m/poison.mkv"), FP, 0)
    for attempt in (1, 2, 3):
        job = store.claim()
        assert job is not None and job.attempts == attempt
        recovered = store.recover(max_attempts=3)  # the process died mid-job
        assert recovered == [Path("/m/poison.mkv")]
    job = store.get(Path("/m/poison.mkv"))
    assert job is not None and job.state == "dead" and job.error_class == "Crash"
    assert store.claim() is None


def test_a_subtitle_written_just_before_a_crash_is_recorded_as_done(
        store: JobStore, tmp_path: Path) -> None:
    for name in ("written.mkv", "not yet.mkv", "stale.mkv"):
        store.enqueue(tmp_path / name, FP, 0)
    old = tmp_path / "stale.en.srt"
    old.write_text("1\n00:00:00,000 --> 00:00:01,000\nold\n")
    os.utime(old, (1_000_000_000, 1_000_000_000))  # from 2001: not this run's
    for _ in range(3):
        job = store.claim()
        assert job is not None
        store.writing(job, tmp_path / f"{job.path.stem}.en.srt", 7)
    (tmp_path / "written.en.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nnew\n")

    assert store.finish_written() == [tmp_path / "written.mkv"]
    assert sorted(store.recover(max_attempts=3)) == [tmp_path / "not yet.mkv",
                                                      tmp_path / "stale.mkv"]
    done = store.get(tmp_path / "written.mkv")
    assert done is not None and done.state == "done" and done.attempts == 1
    assert store.counts()["queued"] == 2


def test_transient_failures_retry_until_attempts_run_out(store: JobStore) -> None:
    store.enqueue(Path("/m/busy.mkv"), FP, 0)
    states = []
    for _ in range(3):
        job = store.claim()
        assert job is not None
        states.append(store.fail(job, "GPU busy", "TransientError", transient=True, **RETRY))
    assert states == ["queued", "queued", "dead"]


def test_permanent_failures_fail_at_once(store: JobStore) -> None:
    store.enqueue(Path("/m/corrupt.mkv"), FP, 0)
    job = store.claim()
    assert job is not None
    assert store.fail(job, "bad data", "MediaError", transient=False, **RETRY) == "failed"
    failed = store.get(job.path)
    assert failed is not None and failed.last_error == "bad data"
    assert store.claim() is None


def test_backoff_delays_the_next_claim(store: JobStore) -> None:
    store.enqueue(Path("/m/a.mkv"), FP, 0)
    job = store.claim()
    assert job is not None
    store.fail(job, "disk full", "TransientError", transient=True, max_attempts=3,
               backoff_seconds=60, backoff_max_seconds=3600)
    assert store.claim() is None


def test_retry_and_release(store: JobStore) -> None:
    store.enqueue(Path("/m/a.mkv"), FP, 0)
    job = store.claim()
    assert job is not None
    store.fail(job, "bad", "MediaError", transient=False, **RETRY)
    assert store.retry() == 1
    job = store.claim()
    assert job is not None and job.attempts == 1
    store.release(job)
    released = store.get(job.path)
    assert released is not None and released.state == "queued" and released.attempts == 0


def test_moved_away_folders_drop_their_queued_jobs(store: JobStore) -> None:
    latin1 = Path(os.fsdecode(b"/m/Show/caf\xe9.mkv"))
    for path in (Path("/m/Show/e1.mkv"), latin1, Path("/m/Shower.mkv")):
        store.enqueue(path, FP, 0)
    assert store.forget_queued(Path("/m/Show")) == 2
    assert store.get(Path("/m/Shower.mkv")) is not None
    assert store.counts()["queued"] == 1


def test_names_that_are_not_utf8_are_stored_and_given_back_unchanged(store: JobStore) -> None:
    """A Latin-1 name from an old Samba share: SQLite text must be UTF-8, the name is not."""
    latin1 = Path(os.fsdecode(b"/m/caf\xe9 \xe0 la carte.mkv"))
    assert store.enqueue(latin1, FP, 0)
    assert not store.enqueue(latin1, FP, 0)
    job = store.claim()
    assert job is not None and job.path == latin1
    store.fail(job, f"{latin1}: probe: broken", "MediaError", transient=False, **RETRY)
    failed = store.get(latin1)
    assert failed is not None and failed.state == "failed"
    assert failed.last_error == "/m/caf\ufffd \ufffd la carte.mkv: probe: broken"
    assert store.retry(latin1) == 1


def test_counts_cover_every_state(store: JobStore) -> None:
    store.enqueue(Path("/m/a.mkv"), FP, 0)
    assert store.counts() == {"queued": 1, "running": 0, "done": 0, "failed": 0,
                              "skipped": 0, "dead": 0}
