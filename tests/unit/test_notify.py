from __future__ import annotations

import pytest

from subtitled.health import Health
from subtitled.notify import Notifier, watchdog_seconds


@pytest.mark.parametrize(
    ("environ", "expected"),
    [({"WATCHDOG_USEC": "4000000"}, 4.0),
     ({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "123"}, 4.0),
     ({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "999"}, None),
     ({"WATCHDOG_USEC": "0"}, None), ({"WATCHDOG_USEC": "soon"}, None), ({}, None)],
)
def test_watchdog_interval_follows_sd_watchdog_enabled(environ: dict[str, str],
                                                      expected: float | None) -> None:
    assert watchdog_seconds(environ, 123) == expected


def test_outside_systemd_nothing_is_sent_and_no_watchdog() -> None:
    notifier = Notifier({"WATCHDOG_USEC": "1000000"})
    assert not notifier.enabled and notifier.watchdog_seconds is None
    notifier.ready("idle")
    with notifier.extending_timeout("loading"):
        pass


def test_health_reports_a_silent_worker_and_dead_parts() -> None:
    now = [0.0]
    health = Health(10.0, clock=lambda: now[0])
    assert health.problems(observers_alive=True, database_writable=True) == []
    health.beat("transcribing a.mkv")
    now[0] = 11.0
    assert health.problems(observers_alive=False, database_writable=False) == [
        "no progress for 11 s (transcribing a.mkv)", "a folder observer thread died",
        "the job database cannot be written"]
    health.beat()
    assert health.problems(observers_alive=True, database_writable=True) == []
