"""A job let go while the job database failed is owed its attempt: the daemon gives it
back before its next claim, once the database answers (a real SQLite store; one closed
under the daemon fails as a broken state directory does)."""

from __future__ import annotations

import threading
from pathlib import Path

from subtitled.config import DaemonSettings
from subtitled.health import Health
from subtitled.notify import Notifier
from subtitled.service.breaker import Breaker
from subtitled.service.daemon import Daemon
from subtitled.service.worker import Worker
from subtitled.store import Fingerprint, SqliteStore

FILM = Path("/media/Film.mkv")


def test_the_attempt_owed_is_given_back_once_the_database_answers_and_not_before(
        tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "config.yaml", DaemonSettings(watch=(), state_dir=tmp_path))
    store = SqliteStore(tmp_path / "jobs.sqlite3")
    store.enqueue(FILM, Fingerprint(1, 1, 1), 0)
    job = store.claim()
    assert job is not None and job.attempts == 1
    worker = Worker(store, Health(60.0), Notifier({}), None, threading.Event(), 0.0,
                    Breaker([]))
    worker.owed.append(job)
    failing = SqliteStore(tmp_path / "jobs.sqlite3")
    failing.close()
    daemon.store = failing
    daemon._give_back_owed(worker)
    # Kept for later, and the state pause holds every claim back meanwhile.
    assert worker.owed == [job] and daemon.breaker.paused_everything()
    daemon.store = store
    daemon._give_back_owed(worker)
    assert worker.owed == []
    row = store.get(FILM)
    assert row is not None and (row.state, row.attempts) == ("queued", 0)
    store.close()
