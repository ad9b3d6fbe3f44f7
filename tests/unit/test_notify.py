from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

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


def test_without_systemd_python_the_datagram_protocol_reaches_the_socket(
        tmp_path: Path) -> None:
    for address, bound in ((str(tmp_path / "notify.sock"), str(tmp_path / "notify.sock")),
                           (f"@subtitled-test-{os.getpid()}",
                            f"\0subtitled-test-{os.getpid()}")):
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
            systemd.bind(bound)
            systemd.settimeout(5)
            notifier = Notifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "4000000"},
                                library=lambda: None)
            assert notifier.enabled and notifier.watchdog_seconds == 4.0
            notifier.ready("idle, 0 queued")
            notifier.watchdog()
            assert systemd.recv(4096) == b"READY=1\nSTATUS=idle, 0 queued"
            assert systemd.recv(4096) == b"WATCHDOG=1"


def test_a_socket_that_is_gone_is_named_once_and_never_raises(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}, library=lambda: None)
    for _ in range(3):
        notifier.watchdog()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "gone.sock" in warnings[0].getMessage()


def test_a_socket_only_libsystemd_speaks_is_an_error_not_silence(
        caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": "vsock:2:1234"}, library=lambda: None)
    assert not notifier.enabled
    assert any(r.levelno == logging.ERROR and "systemd-python" in r.getMessage()
               for r in caplog.records)


def test_a_file_name_cannot_break_a_field_or_the_encoding(tmp_path: Path) -> None:
    sent: list[str] = []
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "s")}, library=lambda: sent.append)
    notifier.status("transcribing evil\nWATCHDOG=trigger.mkv")
    notifier.status("transcribing caf\udce9.mkv")  # a Latin-1 name, as os.fsdecode gives it
    assert sent[0] == "STATUS=transcribing evil WATCHDOG=trigger.mkv"
    assert sent[1] == "STATUS=transcribing caf?.mkv"
    sent[1].encode("utf-8")
