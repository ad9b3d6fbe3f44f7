"""The job store, on a real SQLite file and on a real PostgreSQL server: every test of its
rules runs against both; SQLite's file, pragmas and releases have tests of their own."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import pytest

from subtitled.errors import ConfigError
from subtitled.store import (
    PRIORITY_BACKFILL,
    PRIORITY_NEW,
    SCHEMA_VERSION,
    Fingerprint,
    Job,
    JobStore,
    LeaseLost,
    Result,
    SqliteStore,
    text_sha256,
)
from subtitled.store.postgres import PostgresStore
from tests.integration.conftest import DATA

if TYPE_CHECKING:
    from tests.integration.postgres_server import PostgresServer

FP = Fingerprint(100, 1, 1)


class Retry(TypedDict):
    budget_seconds: float
    backoff_seconds: float
    backoff_max_seconds: float


RETRY = Retry(budget_seconds=3600.0, backoff_seconds=0.0, backoff_max_seconds=0.0)


class Backend:
    """Stores of one kind: `new()` opens a fresh, empty database; `again()` opens the last
    one once more (a restart). Every store opened is closed after the test."""

    def __init__(self, kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.kind, self.tmp_path, self.request = kind, tmp_path, request
        self.opened: list[JobStore] = []
        self.database = ""

    def new(self) -> JobStore:
        if self.kind == "sqlite":
            self.database = str(self.tmp_path / f"jobs-{len(self.opened)}.sqlite3")
        else:
            server: PostgresServer = self.request.getfixturevalue("postgres_server")
            self.database = server.new_database()
        return self.again()

    def again(self) -> JobStore:
        opened: JobStore = SqliteStore(Path(self.database)) if self.kind == "sqlite" else \
            PostgresStore(self.database, host="this-host", lease_seconds=60)
        self.opened.append(opened)
        return opened


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The job-store tests run against both stores."""
    made = Backend(request.param, tmp_path, request)
    yield made
    for opened in made.opened:
        opened.close()


@pytest.fixture
def store(backend: Backend) -> JobStore:
    return backend.new()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqliteStore]:
    """For what is SQLite's alone: its file, pragmas, plans and releases."""
    opened = SqliteStore(tmp_path / "jobs.sqlite3")
    yield opened
    opened.close()


def test_the_database_is_wal_with_full_sync(sqlite_store: SqliteStore, tmp_path: Path) -> None:
    store = sqlite_store
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


def test_the_backlog_is_the_probed_lengths_over_the_recent_realtime_factor(
        store: JobStore) -> None:
    for name in ("a", "b", "c", "d"):
        store.enqueue(Path(f"/m/{name}.mkv"), FP, 0)
    assert store.backlog().audio_seconds is None  # nothing probed yet
    job = store.claim()
    assert job is not None and job.path.name == "a.mkv"
    store.set_progress(job, 30.0, 120.0)
    store.finish(job, "done", Result("en", 3, 120.0, 40.0, Path("/m/a.en.srt")))
    sample = store.unprobed(10)
    assert sorted(j.path.name for j in sample) == ["b.mkv", "c.mkv", "d.mkv"]
    lengths = {"b.mkv": 600.0, "c.mkv": 1200.0}
    for job in sample:
        if job.path.name in lengths:
            store.set_length(job, lengths[job.path.name])
    assert [j.path.name for j in store.unprobed(10)] == ["d.mkv"]
    running = store.claim()
    assert running is not None and running.path.name == "b.mkv"
    store.set_progress(running, 150.0, 600.0)
    backlog = store.backlog()
    # c probed at 1200 s, d counted at that mean; 450 s left of b; 3x realtime.
    assert (backlog.files, backlog.probed_files) == (2, 1)
    assert backlog.audio_seconds == pytest.approx(450.0 + 2 * 1200.0)
    assert backlog.realtime_factor == pytest.approx(3.0)
    assert backlog.eta_seconds == pytest.approx((450.0 + 2400.0) / 3.0)
    # A length is the file's: a changed file is probed anew, and a length probed before
    # the change is not kept.
    stale = store.get(Path("/m/c.mkv"))
    assert stale is not None
    store.enqueue(Path("/m/c.mkv"), Fingerprint(300, 3, 1), 0)
    store.set_length(stale, 5.0)
    assert sorted(j.path.name for j in store.unprobed(10)) == ["c.mkv", "d.mkv"]
    assert store.backlog().audio_seconds is None  # neither queued file probed now
    store.set_length(store.get(Path("/m/d.mkv")), 60.0)  # type: ignore[arg-type]
    assert store.backlog().audio_seconds == pytest.approx(450.0 + 2 * 60.0)


def test_what_the_web_page_reads_and_skips(store: JobStore) -> None:
    names = ["50% off_sale!.mkv", "plain.mkv", "Ünïcode.mkv", "later.mkv"]
    for name in names:
        store.enqueue(Path(f"/m/{name}"), FP, 0)
    store.enqueue(Path("/m/urgent.mkv"), FP, PRIORITY_NEW)
    assert [j.path.name for j, _ in store.next_queued(3)] == ["urgent.mkv", *names[:2]]
    for _ in range(4):
        job = store.claim()
        assert job is not None
        store.finish(job, "done", Result("en", 3, 60.0, 6.0, job.path.with_suffix(".en.srt")))
    # A path holding LIKE's own characters is found by them as plain text.
    assert [j.path.name for j, _ in store.history(10, "50% off_")] == ["50% off_sale!.mkv"]
    # As wildcards, "_" and "%" would match "off" and "50% o"; as text they match nothing.
    assert [j.path.name for j, _ in store.history(10, "o_f")] == []
    assert [j.path.name for j, _ in store.history(10, "5%o")] == []
    assert [j.path.name for j, _ in store.history(10, "Ünï")] == ["Ünïcode.mkv"]
    assert [j.path.name for j, cues in store.history(2)] == ["Ünïcode.mkv", "plain.mkv"]
    assert all(cues == 3 for _, cues in store.history(10))
    later = store.get(Path("/m/later.mkv"))
    assert later is not None and store.skip(later.id, "skipped from the web page")
    assert store.get(Path("/m/later.mkv")).state == "skipped"  # type: ignore[union-attr]
    assert store.claim() is None
    done = store.get(Path("/m/plain.mkv"))
    assert done is not None and not store.skip(done.id, "no")  # done stays done


def test_likely_bad_subtitles_are_listed_the_last_first_until_done_well(
        store: JobStore) -> None:
    for name in ("noise.mkv", "fine.mkv", "music.mkv"):
        store.enqueue(Path(f"/m/{name}"), FP, 0)
    for why in ("improbable text", None, "music or noise?"):
        job = store.claim()
        assert job is not None
        store.finish(job, "done", Result("en", 3, 60.0, 6.0, None, quality=why))
    assert [(j.path.name, j.quality) for j in store.flagged()] == [
        ("music.mkv", "music or noise?"), ("noise.mkv", "improbable text")]
    assert store.flagged_count() == 2
    # Changed: queued again, no longer listed; done well this time, its flag is gone.
    changed = Fingerprint(200, 2, 1)
    store.enqueue(Path("/m/noise.mkv"), changed, 0)
    assert [j.path.name for j in store.flagged()] == ["music.mkv"]
    job = store.claim()
    assert job is not None and job.path.name == "noise.mkv"
    store.finish(job, "done", Result("en", 3, 60.0, 6.0, None))
    assert store.get(Path("/m/noise.mkv")).quality is None  # type: ignore[union-attr]
    assert store.flagged_count() == 1


def test_a_quiet_file_keeps_its_dialogue_s_level_until_done_again(store: JobStore) -> None:
    store.enqueue(FILM, FP, 0)
    job = store.claim()
    assert job is not None
    said = "dialogue at -24 dBFS (3 dB above the sound under it), its loudest passages at -19 dBFS"
    store.finish(job, "done", Result("en", 3, 60.0, 6.0, None, quiet=said))
    assert store.get(FILM).quiet == said  # type: ignore[union-attr]
    store.enqueue(FILM, Fingerprint(200, 2, 1), 0)  # changed: done again, at full level
    job = store.claim()
    assert job is not None
    store.finish(job, "done", Result("en", 3, 60.0, 6.0, None))
    assert store.get(FILM).quiet is None  # type: ignore[union-attr]


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
    new = "1\n00:00:00,000 --> 00:00:01,000\nnew\n"
    (tmp_path / "stale.en.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nold\n")
    for _ in range(3):
        job = store.claim()
        assert job is not None
        store.writing(job, tmp_path / f"{job.path.stem}.en.srt", 7, text_sha256(new))
    (tmp_path / "written.en.srt").write_text(new)  # stale.en.srt: another text, not ours

    assert store.finish_written() == [tmp_path / "written.mkv"]
    assert sorted(store.recover(max_attempts=3)) == [tmp_path / "not yet.mkv",
                                                      tmp_path / "stale.mkv"]
    done = store.get(tmp_path / "written.mkv")
    assert done is not None and done.state == "done" and done.attempts == 1
    assert store.counts()["queued"] == 2


def test_transient_failures_retry_within_their_time_budget_not_a_count(
        store: JobStore) -> None:
    store.enqueue(Path("/m/busy.mkv"), FP, 0)
    states = []
    for _ in range(5):  # more than any attempt limit: the budget is time
        job = store.claim()
        assert job is not None
        states.append(store.fail(job, "GPU busy", "TransientError", transient=True, **RETRY))
    assert states == ["queued"] * 5
    waiting = store.get(Path("/m/busy.mkv"))
    assert waiting is not None and waiting.attempts == 0  # a retry is not a crash
    job = store.claim()
    assert job is not None
    # The budget counts from the first failure: with none left, the file is dead.
    assert store.fail(job, "GPU busy", "TransientError", transient=True, budget_seconds=0,
                      backoff_seconds=0, backoff_max_seconds=0) == "dead"


def test_a_deferred_job_keeps_its_attempts_and_waits(store: JobStore) -> None:
    store.enqueue(Path("/m/share/a.mkv"), FP, 0)
    job = store.claim()
    assert job is not None and job.attempts == 1
    store.defer(job, "/m/share/a.mkv: extract: Transport endpoint is not connected",
                "EnvironmentFault", time.time() + 3600)
    deferred = store.get(job.path)
    assert deferred is not None and deferred.state == "queued" and deferred.attempts == 0
    assert deferred.last_error is not None and "not connected" in deferred.last_error
    assert store.claim() is None  # not before its time
    assert store.wake(Path("/m/elsewhere")) == 0
    assert store.wake(Path("/m/share")) == 1
    again = store.claim()
    assert again is not None and again.path == job.path


def test_claim_passes_over_paused_folders(store: JobStore) -> None:
    for name in ("/m/nas/a.mkv", "/m/nas2/b.mkv", "/m/local/c.mkv"):
        store.enqueue(Path(name), FP, 0)
    first = store.claim([Path("/m/nas")])
    second = store.claim([Path("/m/nas")])
    assert first is not None and second is not None
    assert {first.path, second.path} == {Path("/m/nas2/b.mkv"), Path("/m/local/c.mkv")}
    assert store.claim([Path("/m/nas")]) is None
    last = store.claim()
    assert last is not None and last.path == Path("/m/nas/a.mkv")


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
    store.fail(job, "disk full", "TransientError", transient=True, budget_seconds=3600,
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
    # Names that sort next to the folder's range: '-' before '/', '0' just after it.
    beside = [Path("/m/Shower.mkv"), Path("/m/Show-x.mkv"), Path("/m/Show0.mkv"),
              Path("/m/Show"[:-1]), Path(os.fsdecode(b"/m/Show0/\xe9.mkv"))]
    for path in (Path("/m/Show/e1.mkv"), latin1, Path("/m/Show/S1/e2.mkv"), *beside):
        store.enqueue(path, FP, 0)
    assert store.forget_queued(Path("/m/Show")) == 3
    assert all(store.get(path) is not None for path in beside)
    assert store.counts()["queued"] == len(beside)
    latin1_folder = Path(os.fsdecode(b"/m/caf\xe9"))
    store.enqueue(latin1_folder / "e1.mkv", FP, 0)
    assert store.forget_queued(latin1_folder) == 1


def test_a_delete_is_a_lookup_in_the_path_index_not_a_scan(sqlite_store: SqliteStore) -> None:
    """The observer thread forgets deleted files one event at a time: on a library of
    100,000 queued files each must be a range of the path index."""
    store = sqlite_store
    plans: list[str] = []
    real = store._db  # the store's own connection, to ask SQLite its plan

    class Explaining:
        def execute(self, sql: str, args: Any = ()) -> Any:
            if sql.startswith(("DELETE", "SELECT")):
                plans.extend(row[3] for row in real.execute(f"EXPLAIN QUERY PLAN {sql}",
                                                            args))
            return real.execute(sql, args)

    store._db = Explaining()  # type: ignore[assignment]
    try:
        store.forget_queued(Path("/m/Show"))
    finally:
        store._db = real
    assert plans and not any(plan.startswith("SCAN jobs") or "jobs_next" in plan
                             for plan in plans), plans


def test_a_library_found_at_once_is_queued_in_few_transactions(
        sqlite_store: SqliteStore) -> None:
    store = sqlite_store
    commits: list[str] = []
    store._db.set_trace_callback(
        lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    files = [(Path(f"/m/Show {n // 50}/e{n % 50}.mkv"), FP, 0) for n in range(1_200)]
    assert len(store.enqueue_many(files)) == 1_200
    assert len(commits) == 3  # 500 a transaction
    assert store.enqueue_many(files) == []  # known, unchanged: nothing queued anew
    assert store.counts()["queued"] == 1_200


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


# --- checkpoints of decoded words -----------------------------------------------------------

FILM = Path("/m/a three hour film.mkv")
CHANGED = Fingerprint(200, 2, 1)


def _running(store: JobStore, path: Path = FILM) -> Job:
    store.enqueue(path, FP, 0)
    job = store.claim()
    assert job is not None and job.path == path
    return job


def _stored_checkpoints(store: JobStore) -> int:
    return int(store._query("SELECT COUNT(*) FROM checkpoints")[0][0])


def test_checkpoints_come_back_in_order_with_the_newest_reach(store: JobStore) -> None:
    job = _running(store)
    assert store.checkpoint(job) == (0.0, [])
    for seconds, data in ((30.0, '["one"]'), (60.5, '["two"]'), (90.0, '["three"]')):
        store.add_checkpoint(job, seconds, data)
    assert store.checkpoint(job) == (90.0, ['["one"]', '["two"]', '["three"]'])


def test_checkpoints_of_a_file_whose_name_is_not_utf8_round_trip(store: JobStore) -> None:
    job = _running(store, Path(os.fsdecode(b"/m/caf\xe9 \xe0 la carte.mkv")))
    store.add_checkpoint(job, 12.0, '[{"word": "caf\\u00e9"}]')
    assert store.checkpoint(job) == (12.0, ['[{"word": "caf\\u00e9"}]'])


def _reclaimed_after_the_file_changed(store: JobStore, job: Job) -> Job:
    store.release(job)
    assert store.enqueue(job.path, CHANGED, 0)
    again = store.claim()
    assert again is not None and again.fingerprint == CHANGED
    return again


def _asked_with_another_fingerprint(store: JobStore, job: Job) -> Job:
    return replace(job, fingerprint=CHANGED)


@pytest.mark.parametrize("asked_as", [_reclaimed_after_the_file_changed,
                                      _asked_with_another_fingerprint])
def test_checkpoints_of_another_fingerprint_are_deleted_not_returned(
        store: JobStore, tmp_path: Path, asked_as: Callable[[JobStore, Job], Job]) -> None:
    job = _running(store)
    store.add_checkpoint(job, 30.0, "[]")
    assert store.checkpoint(asked_as(store, job)) == (0.0, [])
    assert _stored_checkpoints(store) == 0


def _finish_written(store: JobStore, job: Job) -> None:
    target = job.path.with_suffix(".en.srt")
    text = "1\n00:00:00,000 --> 00:00:01,000\nhello\n"
    store.writing(job, target, 1, text_sha256(text))
    target.write_text(text)
    assert store.finish_written() == [job.path]


def _enqueue_changed(store: JobStore, job: Job) -> None:
    store.release(job)
    assert store.enqueue(job.path, CHANGED, 0)


def _forget_queued(store: JobStore, job: Job) -> None:
    store.release(job)
    assert store.forget_queued(job.path.parent) == 1


def _retry_queued(store: JobStore, job: Job) -> None:
    store.release(job)
    assert store.retry(job.path) == 1


LIFECYCLE: list[tuple[str, Callable[[JobStore, Job], object], bool]] = [
    ("a clean stop (release)", lambda s, j: s.release(j), True),
    ("a transient failure that retries", lambda s, j: s.fail(
        j, "GPU busy", "TransientError", transient=True, **RETRY), True),
    ("an enqueue of the unchanged file", lambda s, j: s.enqueue(j.path, FP, 0), True),
    ("done", lambda s, j: s.finish(j, "done", Result("en", 1, 1.0, 1.0, None)), False),
    ("skipped", lambda s, j: s.finish(j, "skipped", None, "no speech"), False),
    ("a written subtitle found after a crash", _finish_written, False),
    ("a permanent failure", lambda s, j: s.fail(
        j, "bad data", "MediaError", transient=False, **RETRY), False),
    ("a transient failure out of time (dead)", lambda s, j: s.fail(
        j, "GPU busy", "TransientError", transient=True, budget_seconds=0,
        backoff_seconds=0, backoff_max_seconds=0), False),
    ("forget (the file is gone)", lambda s, j: s.forget(j), False),
    ("requeue_changed", lambda s, j: s.requeue_changed(j, CHANGED, 0), False),
    ("an enqueue of the changed file", _enqueue_changed, False),
    ("forget_queued (the folder moved away)", _forget_queued, False),
    ("an explicit retry", _retry_queued, False),
]


@pytest.mark.parametrize(("event", "act", "kept"), LIFECYCLE, ids=[e[0] for e in LIFECYCLE])
def test_checkpoints_outlive_a_retry_or_stop_but_not_the_end_of_the_job(
        store: JobStore, tmp_path: Path, event: str, act: Callable[[JobStore, Job], object],
        kept: bool) -> None:
    job = _running(store, tmp_path / "film.mkv")
    store.add_checkpoint(job, 30.0, '["a"]')
    store.add_checkpoint(job, 60.0, '["b"]')
    act(store, job)
    assert _stored_checkpoints(store) == (2 if kept else 0), event
    if kept:
        assert store.checkpoint(job) == (60.0, ['["a"]', '["b"]'])


REFUSED: list[tuple[str, Callable[[JobStore, Job], object]]] = [
    ("released", lambda s, j: s.release(j)),
    ("requeued after a transient failure", lambda s, j: s.fail(
        j, "GPU busy", "TransientError", transient=True, **RETRY)),
    ("done", lambda s, j: s.finish(j, "done", None)),
    ("forgotten", lambda s, j: s.forget(j)),
    ("claimed again after the file changed", _reclaimed_after_the_file_changed),
]


@pytest.mark.parametrize(("event", "act"), REFUSED, ids=[e[0] for e in REFUSED])
def test_a_checkpoint_from_a_job_no_longer_running_is_refused(
        store: JobStore, tmp_path: Path, caplog: pytest.LogCaptureFixture, event: str,
        act: Callable[[JobStore, Job], object]) -> None:
    job = _running(store)
    store.add_checkpoint(job, 30.0, '["kept"]')
    act(store, job)
    before = _stored_checkpoints(store)
    with caplog.at_level(logging.WARNING, logger="subtitled.store.base"):
        store.add_checkpoint(job, 60.0, '["late"]')
    assert _stored_checkpoints(store) == before, event
    assert "refused" in caplog.text


def _crash_loop(backend: Backend, reached_per_claim: list[float | None],
                max_attempts: int) -> JobStore:
    """Claim, maybe checkpoint, then die (close without a word) and recover, per claim."""
    store = backend.new()
    store.enqueue(FILM, FP, 0)
    for reached in reached_per_claim:
        job = store.claim()
        assert job is not None
        if reached is not None:
            store.add_checkpoint(job, reached, f'["up to {reached}"]')
        store.close()
        store = backend.again()
        assert store.recover(max_attempts) == [FILM]
    return store


@pytest.mark.parametrize(("reached_per_claim", "state", "attempts"), [
    ([60.0, 120.0], "queued", 0),  # progress every time: a long film, killed twice
    ([60.0, 120.0, 180.0, 240.0, 300.0], "queued", 0),  # ...never dies
    ([None, 60.0], "queued", 1),  # the first crash counts, the second is refunded
    ([None, None], "dead", 2),  # a file that kills the process, as before
    ([60.0, None], "queued", 1),  # progress, then none: the second crash counts
    ([60.0, None, None], "dead", 2),
    ([60.0, 60.0], "queued", 1),  # saving the same reach again is no progress
])
def test_a_crash_counts_as_an_attempt_only_without_checkpointed_progress(
        backend: Backend, reached_per_claim: list[float | None], state: str,
        attempts: int) -> None:
    store = _crash_loop(backend, reached_per_claim, max_attempts=2)
    job = store.get(FILM)
    assert job is not None and (job.state, job.attempts) == (state, attempts)
    reach = max((r for r in reached_per_claim if r is not None), default=0.0)
    assert store.checkpoint(job)[0] == (reach if state == "queued" else 0.0)


def test_checkpoints_survive_a_crash_and_the_next_claim_resumes_from_them(
        backend: Backend) -> None:
    store = _crash_loop(backend, [45.0], max_attempts=2)
    job = store.claim()
    assert job is not None
    assert store.checkpoint(job) == (45.0, ['["up to 45.0"]'])


def test_a_crash_after_progress_requeues_even_a_job_past_its_attempts(store: JobStore) -> None:
    """max_attempts lowered in the config while a job had used more than the new limit."""
    job = _running(store)
    for _ in range(2):
        store.recover(max_attempts=10)  # a crash before any progress: the attempt counts
        claimed = store.claim()
        assert claimed is not None
        job = claimed
    assert job.attempts == 3
    store.add_checkpoint(job, 60.0, "[]")
    store.recover(max_attempts=2)
    recovered = store.get(FILM)
    assert recovered is not None and (recovered.state, recovered.attempts) == ("queued", 2)


# The schema of the first release, as users' databases have it.
OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued','running','done','failed','skipped','dead')),
    priority INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    error_class TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    started REAL,
    language TEXT,
    cue_count INTEGER,
    audio_seconds REAL,
    wall_seconds REAL,
    output TEXT,
    progress_seconds REAL,
    total_seconds REAL
);
CREATE INDEX IF NOT EXISTS jobs_next ON jobs (state, priority DESC, id);
"""


def test_a_database_from_the_first_release_is_migrated_with_its_rows_intact(
        tmp_path: Path) -> None:
    database = tmp_path / "jobs.sqlite3"
    with sqlite3.connect(database) as db:
        db.executescript(OLD_SCHEMA)
        db.execute("INSERT INTO jobs (path, size, mtime_ns, inode, state, attempts, created,"
                   " updated, language, output) VALUES ('/m/done.mkv', 100, 1, 1, 'done', 1,"
                   " 0, 0, 'en', '/m/done.en.srt')")
        db.execute("INSERT INTO jobs (path, size, mtime_ns, inode, state, attempts, created,"
                   " updated) VALUES (?, 100, 1, 1, 'running', 2, 0, 0)", (str(FILM),))
    db.close()

    store = SqliteStore(database)
    done = store.get(Path("/m/done.mkv"))
    assert done is not None and (done.state, done.language) == ("done", "en")
    assert done.output == "/m/done.en.srt"
    assert store.recover(max_attempts=2) == [FILM]  # no checkpoints then: the crash counts
    assert store.get(FILM).state == "dead"  # type: ignore[union-attr]
    assert store.retry(FILM) == 1
    job = store.claim()
    assert job is not None and job.path == FILM
    store.add_checkpoint(job, 60.0, '["resumed"]')
    assert store.checkpoint(job) == (60.0, ['["resumed"]'])
    store.close()
    SqliteStore(database).close()  # opening it again migrates nothing twice
    with sqlite3.connect(database) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(jobs)")]
    db.close()
    assert columns.count("claimed_seconds") == 1
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


# Databases made by `release_database` below with each schema version this project has had
# (jobs-schema-N.sqlite3, made at the commit that introduced version N): every one of them
# must keep opening, with its rows and work intact.
RELEASE_DATABASES = sorted(DATA.glob("jobs-schema-*.sqlite3"))


def release_database(database: Path) -> None:
    """What a deployment leaves behind: a done file, one killed mid-film with checkpoints,
    a dead one."""
    store = SqliteStore(database)
    for name in ("done.mkv", "film.mkv", "poison.mkv"):
        store.enqueue(Path("/media") / name, FP, PRIORITY_NEW)
    done = store.claim()
    assert done is not None
    store.finish(done, "done", Result("en", 12, 60.0, 5.0, Path("/media/done.en.srt")))
    film = store.claim()
    assert film is not None
    store.add_checkpoint(film, 120.0, '["words"]')
    poison = store.claim()
    assert poison is not None
    store.fail(poison, "decode: broken", "MediaError", transient=False, **RETRY)
    store.close()


def test_every_release_database_opens_with_its_rows_and_work_intact(tmp_path: Path) -> None:
    assert RELEASE_DATABASES, "tests/data holds a database made by each schema version"
    for made in RELEASE_DATABASES:
        database = tmp_path / made.name
        database.write_bytes(made.read_bytes())
        store = SqliteStore(database)
        counts = store.counts()
        assert (counts["done"], counts["running"], counts["failed"]) == (1, 1, 1), counts
        done = store.get(Path("/media/done.mkv"))
        assert done is not None and (done.language, done.output) == ("en", "/media/done.en.srt")
        assert store.recover(max_attempts=3) == [Path("/media/film.mkv")]
        film = store.claim()
        assert film is not None and store.checkpoint(film) == (120.0, ['["words"]'])
        assert film.attempts == 1  # the checkpoint was progress: the kill is not counted
        store.close()
        with sqlite3.connect(database) as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        db.close()


def test_a_postgresql_database_of_schema_2_is_migrated_with_its_rows_intact(
        postgres_server: PostgresServer) -> None:
    import psycopg

    from subtitled.store import postgres

    url = postgres_server.new_database()
    with psycopg.connect(url, autocommit=True) as db:  # as the release before made it
        for step in postgres._MIGRATIONS[:2]:
            db.execute(step)
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version VALUES (2)")
        db.execute("INSERT INTO jobs (path, size, mtime_ns, inode, state, language,"
                   " created, updated) VALUES (%s, 100, 1, 1, 'done', 'en', 0, 0)",
                   (b"/media/done.mkv",))
    store = PostgresStore(url, host="this-host", lease_seconds=60)
    try:
        done = store.get(Path("/media/done.mkv"))
        assert done is not None and (done.state, done.language, done.quality) == \
            ("done", "en", None)
        store.enqueue(FILM, FP, PRIORITY_NEW)
        job = store.claim()
        assert job is not None
        store.finish(job, "done", Result("en", 1, 5.0, 1.0, None, quality="improbable text"))
        assert [j.path for j in store.flagged()] == [FILM]
    finally:
        store.close()
    with psycopg.connect(url) as db:
        assert db.execute("SELECT version FROM schema_version").fetchone() == \
            (postgres.SCHEMA_VERSION,)


def test_a_new_database_starts_at_the_current_schema(sqlite_store: SqliteStore,
                                                     tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


def test_a_database_from_a_newer_release_is_refused_and_left_as_it_was(
        tmp_path: Path) -> None:
    database = tmp_path / "jobs.sqlite3"
    with sqlite3.connect(database) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        db.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, new_thing TEXT)")
    db.close()
    before = database.read_bytes()
    for read_only in (False, True):
        with pytest.raises(ConfigError, match=f"newer release of subtitled \\(schema "
                                              f"{SCHEMA_VERSION + 1}"):
            SqliteStore(database, read_only=read_only)
    assert database.read_bytes() == before


def test_a_read_only_store_reads_and_writes_nothing(sqlite_store: SqliteStore,
                                                   tmp_path: Path) -> None:
    sqlite_store.enqueue(FILM, FP, PRIORITY_NEW)
    reader = SqliteStore(tmp_path / "jobs.sqlite3", read_only=True)
    try:
        assert reader.counts()["queued"] == 1
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.retry()
    finally:
        reader.close()


def test_claim_takes_the_roots_priority_then_arrivals_then_the_newest(
        backend: Backend) -> None:
    films, tv = Path("/media/films"), Path("/media/tv")

    def order(name: str, **options: Any) -> list[str]:
        store = backend.new()
        store.enqueue(films / "old.mkv", Fingerprint(1, 100, 1), PRIORITY_BACKFILL)
        store.enqueue(films / "new.mkv", Fingerprint(1, 300, 2), PRIORITY_BACKFILL)
        store.enqueue(films / "arrived.mkv", Fingerprint(1, 50, 3), PRIORITY_NEW)
        store.enqueue(tv / "episode.mkv", Fingerprint(1, 10, 4), PRIORITY_BACKFILL)
        names = []
        while (job := store.claim(**options)) is not None:
            names.append(job.path.name)
        return names

    # New arrivals first; then the backfill in the order found...
    assert order("all") == ["arrived.mkv", "old.mkv", "new.mkv", "episode.mkv"]
    # ...or the most recently modified first...
    assert order("newest", newest_first=True) == \
        ["arrived.mkv", "new.mkv", "old.mkv", "episode.mkv"]
    # ...and before all that, the roots an admin put first, even over new arrivals.
    assert order("tv first", roots=[(tv, 5), (films, 0)], newest_first=True) == \
        ["episode.mkv", "arrived.mkv", "new.mkv", "old.mkv"]


def test_a_forced_redo_is_forgotten_once_the_job_ends_however_it_ends(
        store: JobStore, tmp_path: Path) -> None:
    for ending in ("finish", "fail", "written"):
        path = tmp_path / f"{ending}.mkv"
        store.enqueue(path, FP, PRIORITY_NEW)
        assert store.retry(path, force=True) == 1
        job = store.claim()
        assert job is not None and job.force
        if ending == "finish":
            store.finish(job, "done", Result("en", 1, 1.0, 1.0, Path("/media/finish.en.srt")))
        elif ending == "fail":
            store.fail(job, "decode: broken", "MediaError", transient=False, **RETRY)
        else:  # written, then the process died before it recorded so
            _finish_written(store, job)
        assert not store.get(path).force, ending  # type: ignore[union-attr]
    transient = Path("/media/transient.mkv")
    store.enqueue(transient, FP, PRIORITY_NEW)
    store.retry(transient, force=True)
    job = store.claim()
    assert job is not None
    store.fail(job, "probe: timeout", "TransientError", transient=True, **RETRY)
    assert store.get(transient).force  # type: ignore[union-attr]  # still to be done, forced


def test_a_renamed_done_file_keeps_its_job_and_a_queued_duplicate_gives_way(
        store: JobStore) -> None:
    old, new, subtitle = Path("/m/old.mkv"), Path("/m/New.mkv"), Path("/m/New.en.srt")
    assert not store.moved(old, new, subtitle)  # nothing known
    store.enqueue(old, FP, PRIORITY_NEW)
    job = store.claim()
    assert job is not None
    assert not store.moved(old, new, subtitle)  # not done yet
    store.finish(job, "done", Result("en", 3, 10.0, 2.0, Path("/m/old.en.srt")))
    store.enqueue(new, FP, PRIORITY_NEW)  # the move's own event, before the webhook
    assert store.moved(old, new, subtitle)
    (moved,) = store.in_state("done")
    assert (moved.path, moved.id, moved.written_path) == (new, job.id, str(subtitle))
    assert store.counts().get("queued", 0) == 0 and store.get(old) is None
    assert not store.enqueue(new, FP, PRIORITY_NEW)  # the same content: stays done


def test_a_rename_onto_a_running_job_is_left_to_it(store: JobStore) -> None:
    old, new = Path("/m/old.mkv"), Path("/m/new.mkv")
    store.enqueue(old, FP, PRIORITY_NEW)
    first = store.claim()
    assert first is not None
    store.finish(first, "done", Result("en", 3, 10.0, 2.0, Path("/m/old.en.srt")))
    store.enqueue(new, FP, PRIORITY_NEW)
    assert store.claim() is not None
    assert not store.moved(old, new, Path("/m/new.en.srt"))
    assert store.get(old) is not None


def test_a_client_s_request_is_never_a_twin_of_a_library_file(store: JobStore) -> None:
    # A request on a library file links to it: same size, mtime and inode, but its
    # subtitle is in the language and task the client asked for.
    request = store.enqueue_request(Path("/state/requests/x.asr.translate.ja.video.mkv"), FP,
                                    '{"kind": "asr", "language": "ja", "task": "translate"}')
    claimed = store.claim()
    assert claimed is not None and claimed.id == request.id
    store.finish(claimed, "done", Result("en", 3, 10.0, 2.0, Path("/state/requests/x.en.srt")))
    store.enqueue(Path("/media/Film.mkv"), FP, PRIORITY_NEW)
    film = store.claim()
    assert film is not None and store.twin(film) is None


def test_the_subtitles_a_job_writes_beside_its_own_are_known_by_hash_and_follow_a_rename(
        store: JobStore) -> None:
    old, new = Path("/m/old.mkv"), Path("/m/New.mkv")
    store.enqueue(old, FP, PRIORITY_NEW)
    job = store.claim()
    assert job is not None and job.beside == {}
    store.writing(job, Path("/m/old.de.srt"), 3, "transcript")
    store.writing_beside(job, Path("/m/old.en.srt"), "first")
    store.writing_beside(job, Path("/m/old.en.srt"), "second")
    store.writing_beside(job, Path("/m/old.en.srt"), "third")
    store.writing_beside(job, Path("/m/old.de.vtt"), "format")
    store.finish(job, "done", Result("de", 3, 10.0, 2.0, Path("/m/old.de.srt")))
    done = store.get(old)
    assert done is not None
    # The last hash and the one before it: a write that never happened leaves what is
    # there known for ours.
    assert done.wrote(Path("/m/old.en.srt")) == ("third", "second")
    assert done.wrote(Path("/m/old.de.vtt")) == ("format",)
    assert done.wrote(Path("/m/old.de.srt")) == ("transcript",)
    assert store.moved(old, new, Path("/m/New.de.srt"),
                       [(Path("/m/old.en.srt"), Path("/m/New.en.srt"))])
    moved = store.get(new)
    assert moved is not None and moved.wrote(Path("/m/New.en.srt")) == ("third", "second")
    assert moved.wrote(Path("/m/old.en.srt")) is None
    assert moved.wrote(Path("/m/old.de.vtt")) == ("format",)  # not moved: still there


def test_what_a_job_writes_beside_its_own_is_refused_once_the_claim_is_lost(
        store: JobStore) -> None:
    store.enqueue(FILM, FP, PRIORITY_NEW)
    job = store.claim()
    assert job is not None
    store.release(job)
    with pytest.raises(LeaseLost):
        store.writing_beside(job, FILM.with_suffix(".en.srt"), "late")
    again = store.get(FILM)
    assert again is not None and again.beside == {}
