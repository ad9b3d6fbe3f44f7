"""Several hosts on one PostgreSQL job store (a real server): claims never collide, a lease
that is not renewed goes to another host, and the host that lost it writes nothing."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from subtitled.config import PathMapping
from subtitled.store import PRIORITY_NEW, Fingerprint, Job, LeaseLost, Result, file_sha256
from subtitled.store.postgres import PostgresStore

FP = Fingerprint(100, 1, 1)


@pytest.fixture
def hosts(postgres_url: str) -> Iterator[dict[str, PostgresStore]]:
    """Stores for hosts a, b and c on one database; a's leases last 2 s."""
    opened = {name: PostgresStore(postgres_url, host=name, lease_seconds=2.0 if name == "a"
                                  else 60.0) for name in "abc"}
    yield opened
    for store in opened.values():
        store.close()


def _claimed(store: PostgresStore) -> Job:
    job = store.claim()
    assert job is not None
    return job


def _expired(job: Job, store: PostgresStore) -> None:
    """Wait (by the server's clock) until the job's lease has run out."""
    assert job.lease_expires is not None
    while store.hosts() and min(h.expires_in for h in store.hosts()) >= 0:
        time.sleep(0.2)


def test_hosts_claiming_at_once_never_get_the_same_file(
        hosts: dict[str, PostgresStore]) -> None:
    files = [Path(f"/library/Show/e{n:02}.mkv") for n in range(40)]
    hosts["a"].enqueue_many([(path, FP, PRIORITY_NEW) for path in files])
    claims: list[tuple[str, Path]] = []
    lock = threading.Lock()

    def work(name: str) -> None:
        store = hosts[name]
        while (job := store.claim()) is not None:
            with lock:
                claims.append((name, job.path))
            store.writing(job, job.path.with_suffix(".en.srt"), 1, "0" * 64)
            with store.fenced(job):
                pass
            store.finish(job, "done", Result("en", 1, 1.0, 1.0, job.path.with_suffix(".en.srt")))

    threads = [threading.Thread(target=work, args=(name,)) for name in "abcabc"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert Counter(path for _, path in claims) == Counter(files)  # each once
    assert len({name for name, _ in claims}) >= 2, claims  # the work was shared
    assert hosts["b"].counts()["done"] == 40


def test_an_expired_lease_goes_to_another_host_and_the_first_writes_nothing(
        hosts: dict[str, PostgresStore], caplog: pytest.LogCaptureFixture) -> None:
    a, b = hosts["a"], hosts["b"]
    a.enqueue(Path("/library/film.mkv"), FP, PRIORITY_NEW)
    first = _claimed(a)
    assert (first.host, first.lease, first.attempts) == ("a", 1, 1)
    assert b.claim() is None  # a holds it
    assert [(h.host, h.running) for h in b.hosts()] == [("a", 1)]
    _expired(first, b)
    second = _claimed(b)  # a stopped renewing: a crash without progress, counted
    assert (second.id, second.host, second.lease, second.attempts) == (first.id, "b", 2, 2)
    assert "stopped renewing its lease; requeued" in caplog.text
    assert not a.renew(first)
    with pytest.raises(LeaseLost):
        a.writing(first, Path("/library/film.en.srt"), 3, "0" * 64)
    with pytest.raises(LeaseLost), a.fenced(first):
        pytest.fail("a lost lease must not reach the rename")
    a.add_checkpoint(first, 30.0, "[]")
    a.finish(first, "done", Result("en", 3, 1.0, 1.0, Path("/library/film.en.srt")))
    a.release(first)
    a.fail(first, "boom", "MediaError", transient=False, budget_seconds=0,
           backoff_seconds=0, backoff_max_seconds=0)
    now = b.get(first.path)
    assert now is not None and (now.state, now.host, now.output) == ("running", "b", None)
    assert b.checkpoint(second) == (0.0, [])
    b.finish(second, "done", Result("de", 3, 1.0, 1.0, None))
    done = b.get(first.path)
    assert done is not None and (done.state, done.language) == ("done", "de")


def test_a_host_that_lost_the_database_gives_the_attempt_back_wherever_the_job_went(
        hosts: dict[str, PostgresStore], tmp_path: Path) -> None:
    """a let its job go because the database failed (its lease could not be renewed); b's
    claims took the expired lease for a crash and kept the attempt. Once a reaches the
    database again, the attempt is a's to give back, once."""
    a, b = hosts["a"], hosts["b"]

    def claimed_by_a(name: str) -> tuple[Job, Path]:
        path = Path(f"/library/{name}.mkv")
        a.enqueue(path, FP, PRIORITY_NEW)
        return _claimed(a), path

    def row(path: Path) -> tuple[str, int]:
        job = b.get(path)
        assert job is not None
        return job.state, job.attempts

    def requeued_by_b(job: Job) -> None:
        """a's lease runs out; b's claim takes it back (and finds nothing else to take)."""
        _expired(job, b)
        assert b.claim(exclude=[Path("/library")]) is None

    def done_by_b(path: Path) -> None:
        job = _claimed(b)
        assert job.path == path
        b.finish(job, "done", Result("en", 1, 1.0, 1.0, None))

    # Still a's claim: back to the queue, as a release.
    job, path = claimed_by_a("still")
    assert a.give_back(job) == "back in the queue"
    assert row(path) == ("queued", 0)
    done_by_b(path)
    # Requeued by b's claim (which found nothing else to take), the attempt kept.
    job, path = claimed_by_a("requeued")
    requeued_by_b(job)
    assert row(path) == ("queued", 1)
    assert a.give_back(job) == "requeued by another host's claim"
    assert row(path) == ("queued", 0)
    assert a.give_back(job) is None  # once
    done_by_b(path)
    # Dead-lettered by b's claim: its one attempt used up by a "crash"; announced once.
    job, path = claimed_by_a("dead")
    _expired(job, b)
    dead: list[tuple[Path, str]] = []
    assert b.claim(max_attempts=1, dead=lambda *letter: dead.append(letter)) is None
    assert row(path) == ("dead", 1)
    assert dead == [(path, "its host stopped renewing its lease on attempt 1")]
    assert a.give_back(job) == "dead-lettered by another host's claim; back in the queue"
    assert row(path) == ("queued", 0)
    done_by_b(path)
    # Claimed again by b: b's claim counts one attempt, not two.
    job, path = claimed_by_a("again")
    _expired(job, b)
    again = _claimed(b)
    assert (again.path, again.attempts) == (path, 2)
    assert a.give_back(job) == "requeued by another host's claim"
    assert row(path) == ("running", 1)
    assert a.give_back(job) is None
    b.finish(again, "done", Result("en", 1, 1.0, 1.0, None))
    # Two leases in a row ran out; the second had made progress, so b's claim refunded it
    # itself: only the first one's attempt is left to give back.
    first, path = claimed_by_a("twice")
    requeued_by_b(first)
    second = _claimed(a)
    a.add_checkpoint(second, 30.0, "[]")
    requeued_by_b(second)
    assert row(path) == ("queued", 1)
    assert a.give_back(second) is None
    assert a.give_back(first) == "requeued by another host's claim"
    assert row(path) == ("queued", 0)
    done_by_b(path)
    # The file changed meanwhile: a new job, nothing of the old one's to give back.
    job, path = claimed_by_a("changed")
    requeued_by_b(job)
    b.enqueue(path, Fingerprint(200, 2, 2), PRIORITY_NEW)
    assert a.give_back(job) is None
    done_by_b(path)
    # Its end was what could not be recorded: the subtitle it noted is in place.
    job, path = claimed_by_a("written")
    subtitle = tmp_path / "written.en.srt"
    subtitle.write_text("1\n00:00:01,000 --> 00:00:02,000\nHello.\n")
    written = file_sha256(subtitle)
    assert written is not None
    a.writing(job, subtitle, 1, written)
    with a.fenced(job):
        pass
    assert a.give_back(job) == "its subtitle was in place: recorded as done"
    assert row(path) == ("done", 1)


def test_a_renewed_lease_is_kept(hosts: dict[str, PostgresStore]) -> None:
    a, b = hosts["a"], hosts["b"]
    a.enqueue(Path("/library/film.mkv"), FP, PRIORITY_NEW)
    job = _claimed(a)
    deadline = time.monotonic() + 6.0  # three times a's lease
    while time.monotonic() < deadline:
        assert a.renew(job)
        assert b.claim() is None
        time.sleep(0.3)
    assert [(h.host, h.running) for h in b.hosts()] == [("a", 1)]
    assert b.hosts()[0].renewed_ago < 2.0


def test_a_claim_passes_over_a_row_another_host_holds(
        hosts: dict[str, PostgresStore]) -> None:
    """a puts its subtitle in place just as its lease runs out: b's claim neither waits
    for a's transaction nor takes the file from under it."""
    a, b = hosts["a"], hosts["b"]
    a.enqueue(Path("/library/film.mkv"), FP, PRIORITY_NEW)
    job = _claimed(a)
    a.writing(job, Path("/library/film.en.srt"), 1, "0" * 64)
    claimed: list[Job | None] = []
    with a.fenced(job):
        _expired(job, b)
        claimer = threading.Thread(target=lambda: claimed.append(b.claim()))
        claimer.start()
        claimer.join(timeout=30)
        assert not claimer.is_alive() and claimed == [None]
    a.finish(job, "done", Result("en", 1, 1.0, 1.0, Path("/library/film.en.srt")))
    done = a.get(job.path)
    assert done is not None and (done.state, done.host) == ("done", "a")


def test_a_restarted_host_recovers_its_own_claims_only(
        hosts: dict[str, PostgresStore], postgres_url: str) -> None:
    a, b = hosts["a"], hosts["b"]
    a.enqueue_many([(Path(f"/library/{n}.mkv"), FP, PRIORITY_NEW) for n in "xy"])
    mine, theirs = _claimed(b), _claimed(a)
    restarted = PostgresStore(postgres_url, host="b")
    try:
        assert restarted.recover(max_attempts=3) == [mine.path]
        assert restarted.finish_written() == []
    finally:
        restarted.close()
    held = a.get(theirs.path)
    assert held is not None and (held.state, held.host) == ("running", "a")


def test_a_client_s_request_is_worked_on_and_dropped_by_its_own_host_only(
        hosts: dict[str, PostgresStore]) -> None:
    """Bazarr's upload lies in the state directory of the host it was sent to, and its
    client waits there."""
    a, b = hosts["a"], hosts["b"]
    requests = Path("/var/lib/subtitled/requests")  # the same folder name on every host
    a.enqueue_request(requests / "0123.asr.transcribe.auto.wav", FP, '{"kind": "asr"}')
    assert b.claim() is None
    assert b.drop_requests(requests) == []  # b restarting drops its own requests alone
    job = _claimed(a)
    assert job.request is not None and job.host == "a"
    a.release(job)
    assert a.drop_requests(requests) == [job.path]


def test_hosts_that_mount_the_library_at_different_folders_name_its_files_alike(
        postgres_url: str) -> None:
    a = PostgresStore(postgres_url, host="a", path_map=(
        PathMapping(remote="/library", local="/mnt/nas/media"),))
    b = PostgresStore(postgres_url, host="b", path_map=(
        PathMapping(remote="/library", local="/srv/media"),))
    try:
        assert a.enqueue(Path("/mnt/nas/media/Show/e1.mkv"), FP, PRIORITY_NEW)
        assert not b.enqueue(Path("/srv/media/Show/e1.mkv"), FP, PRIORITY_NEW)  # the same
        job = _claimed(b)
        assert job.path == Path("/srv/media/Show/e1.mkv")
        b.writing(job, Path("/srv/media/Show/e1.en.srt"), 1, "0" * 64)
        seen = a.get(Path("/mnt/nas/media/Show/e1.mkv"))
        assert seen is not None and seen.output == "/mnt/nas/media/Show/e1.en.srt"
        b.release(job)
        assert a.forget_queued(Path("/mnt/nas/media/Show")) == 1
        assert b.counts()["queued"] == 0
    finally:
        a.close()
        b.close()
