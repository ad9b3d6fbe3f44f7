"""The running job's lease, held by the worker in a shared store: renewed while the job
runs; given up at the next engine call once it may be another host's (a renewal said so),
or when half of it passed without a renewal that got through (the database down: the
other hosts may claim the job the moment it answers them, once the lease runs out)."""

from __future__ import annotations

import itertools
import re
import threading
import time
from pathlib import Path

import psycopg
import pytest

from subtitled.health import Health
from subtitled.notify import Notifier
from subtitled.service.breaker import Breaker
from subtitled.service.worker import Worker
from subtitled.store import Fingerprint, Job, LeaseLost, LeaseUnrenewed
from tests.unit.fakes import Clock

LEASE_SECONDS = 0.2  # renewed every 0.05 s of real time; its deadline on the test's clock


class Database:
    """The shared store as the lease keeper sees it: up (each renewal counted), down (each
    renewal fails as psycopg does when the server is gone), or the job taken."""

    shared = True
    lease_seconds = LEASE_SECONDS
    host = "h1"

    def __init__(self) -> None:
        self.state = "up"
        self.attempts: list[float] = []  # when each renewal was tried (real time)
        self.resume = threading.Event()

    def renew(self, job: Job) -> bool:
        self.attempts.append(time.monotonic())
        if self.state == "stalled":  # a host too slow to renew: no answer, no error
            self.resume.wait(15)
        if self.state == "down":
            raise psycopg.OperationalError("connection refused")
        return self.state == "up"

    def set_progress(self, job: Job, done: float, total: float | None) -> bool:
        """A progress note, which renews the lease too; it may get through where the
        keeper's renewals did not (another connection of the pool)."""
        return self.progress_held

    progress_held = True


def _worker(database: Database, clock: Clock) -> Worker:
    return Worker(database, Health(60.0), Notifier({}), None,  # type: ignore[arg-type]
                  threading.Event(), 0.0, Breaker([]), clock=clock)


def _job(tmp_path: Path) -> Job:
    return Job(1, tmp_path / "Film.mkv", Fingerprint(1, 1, 1), "running", 0, 0, None,
               None, 0.0, None, None, None, None, None, lease=1)


def _renewed_at(worker: Worker, clock: Clock) -> None:
    """Until the keeper's thread (on real time) has renewed the lease at the clock's time."""
    deadline = time.monotonic() + 15
    while worker._lease.until != clock.now + LEASE_SECONDS / 2:
        assert time.monotonic() < deadline, "the keeper renewed nothing"
        time.sleep(0.01)


def _failed_once(worker: Worker) -> None:
    """Until a renewal by the keeper's thread (on real time) has failed."""
    deadline = time.monotonic() + 15
    while not worker._lease.failing:
        assert time.monotonic() < deadline, "no renewal was tried"
        time.sleep(0.01)


def test_a_lease_that_no_renewal_could_extend_is_given_up_before_it_runs_out(
        tmp_path: Path) -> None:
    database, clock = Database(), Clock()
    worker, job = _worker(database, clock), _job(tmp_path)
    database.state = "down"
    with worker._leased(job):
        worker._alive(job, True)  # claimed just now
        _failed_once(worker)
        clock.now += LEASE_SECONDS * 0.45
        worker._alive(job, True)
        clock.now += LEASE_SECONDS * 0.1  # half the lease gone, and no renewal
        # (LeaseUnrenewed: the attempt is given back once the database answers.)
        with pytest.raises(LeaseUnrenewed, match=re.escape(
                "Film.mkv: no longer ours (its lease could not be renewed for half its term)")):
            worker._alive(job, True)
        with pytest.raises(LeaseLost):  # nor is its progress recorded
            worker._progress(job, 1.0, 2.0, "en")


def test_a_renewed_lease_holds_past_its_first_term_and_a_failed_renewal_ends_it_later(
        tmp_path: Path) -> None:
    database, clock = Database(), Clock()
    worker, job = _worker(database, clock), _job(tmp_path)
    with worker._leased(job):
        clock.now += 10 * LEASE_SECONDS
        _renewed_at(worker, clock)  # the lease runs from there
        worker._alive(job, True)
        database.state = "down"
        _failed_once(worker)
        time.sleep(4 * LEASE_SECONDS)  # renewals fail meanwhile; the deadline stays put
        clock.now += LEASE_SECONDS * 0.45
        worker._alive(job, True)
        clock.now += LEASE_SECONDS * 0.1
        with pytest.raises(LeaseLost, match="could not be renewed"):
            worker._alive(job, True)


def test_a_progress_note_that_got_through_renews_the_lease_as_the_keeper_does(
        tmp_path: Path) -> None:
    database, clock = Database(), Clock()
    worker, job = _worker(database, clock), _job(tmp_path)
    database.state = "down"  # the keeper's renewals fail
    with worker._leased(job):
        clock.now += LEASE_SECONDS * 0.45
        worker._progress(job, 1.0, 2.0, "en")  # renewed the lease at 0.45
        clock.now += LEASE_SECONDS * 0.45
        worker._alive(job, True)  # 0.9 of a lease since the claim: still held
        database.progress_held = False  # the note found the job another claim's
        worker._progress(job, 1.5, 2.0, "en")
        with pytest.raises(LeaseLost, match="another host has claimed it"):
            worker._alive(job, True)


def test_a_failed_renewal_is_tried_again_sooner_than_the_next_one_was_due(
        tmp_path: Path) -> None:
    """One blip (a restart) must not cost the job its half lease: after a failure the
    keeper tries every sixteenth of the lease, not every quarter. A wait never ends early,
    so at the quarter every gap would be at least a quarter; load only makes gaps longer."""
    database, clock = Database(), Clock()
    worker, job = _worker(database, clock), _job(tmp_path)
    database.state = "down"
    with worker._leased(job):
        deadline = time.monotonic() + 15
        while len(database.attempts) < 6:
            assert time.monotonic() < deadline, database.attempts
            time.sleep(0.01)
    gaps = [b - a for a, b in itertools.pairwise(database.attempts)]
    assert min(gaps) < LEASE_SECONDS / 4, gaps


def test_a_job_another_host_took_is_given_up_at_once(tmp_path: Path) -> None:
    database, clock = Database(), Clock()
    worker, job = _worker(database, clock), _job(tmp_path)
    database.state = "taken"
    with worker._leased(job):
        deadline = time.monotonic() + 15
        while not worker._lease.lost.is_set():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with pytest.raises(LeaseLost, match="another host has claimed it"):
            worker._alive(job, True)


@pytest.mark.parametrize(("lost", "owed"), [(LeaseUnrenewed, True), (LeaseLost, False)])
def test_a_job_let_go_for_an_unrenewed_lease_is_owed_its_attempt_and_a_taken_one_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lost: type[LeaseLost],
        owed: bool) -> None:
    database, clock = Database(), Clock()
    worker, job = _worker(database, clock), _job(tmp_path)

    def work(*_: object) -> None:
        raise lost(job.path)

    monkeypatch.setattr(worker, "_work", work)
    worker.work(job, None, None)  # type: ignore[arg-type]
    assert worker.owed == ([job] if owed else [])


def test_a_lease_that_ran_late_without_a_failed_renewal_is_not_owed_its_attempt(
        tmp_path: Path) -> None:
    """A host too stalled to renew (swapping, a paused machine) lets the job go all the
    same, but the attempt is its own doing: not owed, so a file that stalls the host still
    uses up its attempts."""
    database, clock = Database(), Clock()
    worker, job = _worker(database, clock), _job(tmp_path)
    database.state = "stalled"
    with worker._leased(job):
        clock.now += LEASE_SECONDS * 0.55
        with pytest.raises(LeaseLost, match="not renewed in time") as lost:
            worker._alive(job, True)
        assert not isinstance(lost.value, LeaseUnrenewed)
        database.resume.set()

