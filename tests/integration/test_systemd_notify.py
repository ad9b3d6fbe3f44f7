"""The real daemon talking to a real Unix datagram socket standing in for systemd."""

from __future__ import annotations

import itertools
import re
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.daemon_harness import DaemonRun, make_video


class NotifySocket:
    """Collects (monotonic time, message) pairs sent to NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[tuple[float, str]] = []
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(str(path))
        self._socket.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._socket.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close()

    def fields(self) -> list[tuple[float, str]]:
        """Each line of each message, with its arrival time."""
        return [(t, line) for t, message in self.messages for line in message.split("\n")]

    def first(self, prefix: str, after: float = 0.0) -> float:
        return next(t for t, line in self.fields() if line.startswith(prefix) and t >= after)

    def wait_for(self, prefix: str, seconds: float = 120, after: float = 0.0) -> float:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                return self.first(prefix, after)
            except StopIteration:
                time.sleep(0.1)
        raise AssertionError(f"no {prefix!r} in {self.messages}")

    def pings(self) -> list[float]:
        return [t for t, line in self.fields() if line == "WATCHDOG=1"]


def http_get(daemon: DaemonRun, path: str) -> tuple[int, str]:
    """GET from the daemon's listener (its port, 0 in the config, is read from its log)."""
    found = re.search(r"HTTP on (http://\S+/)", daemon.log_file.read_text())
    assert found, daemon.log_file.read_text()
    try:
        with urllib.request.urlopen(found.group(1) + path.lstrip("/"), timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def samples(metrics_text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(metrics_text) for s in family.samples}


HTTP = {"enabled": True, "port": 0}


def test_readiness_status_heartbeat_reload_and_stop_reach_systemd(
        tmp_path: Path, model_dir: Path, notify_socket: NotifySocket) -> None:
    interval = 15.0
    daemon = DaemonRun(tmp_path, model_dir, http=HTTP)
    daemon.start({"NOTIFY_SOCKET": str(notify_socket.path),
                  "WATCHDOG_USEC": str(int(interval * 1e6))}, own_watchdog_pid=True)
    try:
        ready = notify_socket.wait_for("READY=1")
        assert notify_socket.first("EXTEND_TIMEOUT_USEC=") < ready
        assert notify_socket.first("STATUS=loading model tiny.en") < ready
        make_video(daemon.media / "clip.mkv", seconds=5.0)
        working = notify_socket.wait_for("STATUS=transcribing clip.mkv")
        daemon.wait_until((daemon.media / "clip.en.srt").exists)
        notify_socket.wait_for("STATUS=idle, 0 queued", after=working)
        assert http_get(daemon, "/health") == (200, "ok\n")
        code, text = http_get(daemon, "/metrics")
        found = samples(text)
        assert code == 200
        assert found[("subtitled_jobs", (("state", "done"),))] == 1.0
        assert found[("subtitled_outcomes_total", (("outcome", "done"),))] == 1.0
        assert found[("subtitled_audio_seconds_total", ())] == pytest.approx(5.0, abs=0.2)
        assert found[("subtitled_realtime_factor_count", ())] == 1.0
        assert found[("subtitled_model_load_seconds", ())] > 0
        assert found[("subtitled_current_file_progress_ratio", ())] == 0.0
        assert daemon.process is not None
        reload_sent = time.monotonic()
        daemon.process.send_signal(signal.SIGHUP)
        reloading = notify_socket.wait_for("RELOADING=1", after=reload_sent)
        assert notify_socket.first("MONOTONIC_USEC=", after=reload_sent) == reloading
        assert notify_socket.wait_for("READY=1", after=reloading) >= reloading
        time.sleep(interval)  # a few more pings while idle
        stop_sent = time.monotonic()
    finally:
        code = daemon.finish(signal.SIGTERM)
    assert code == 0
    assert notify_socket.first("STOPPING=1", after=stop_sent) >= stop_sent
    pings = [t for t in notify_socket.pings() if t > ready]
    assert len(pings) >= 4
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert max(gaps) <= interval / 2, gaps


def test_readiness_comes_with_the_model_while_the_watches_are_still_being_set_up(
        tmp_path: Path, model_dir: Path, notify_socket: NotifySocket) -> None:
    """Counting and watching the folders of a big library on a cold disk can outlast
    TimeoutStartSec: READY=1 waits for the model alone, and STATUS= says what goes on."""
    daemon = DaemonRun(tmp_path, model_dir)
    make_video(daemon.media / "early.mkv", seconds=3.0)
    daemon.start({"NOTIFY_SOCKET": str(notify_socket.path),
                  "SUBTITLED_FAILPOINTS": "slow-watch"})
    try:
        ready = notify_socket.wait_for("READY=1")
        assert notify_socket.first("STATUS=idle, 0 queued; setting up watches on 1 folder",
                                   after=ready) == ready
        assert "watching " not in daemon.log_file.read_text()
        daemon.wait_until((daemon.media / "early.en.srt").exists)  # the scan that follows
        make_video(daemon.media / "late.mkv", seconds=3.0)
        daemon.wait_until((daemon.media / "late.en.srt").exists)  # and the watches
        daemon.wait_until(lambda: any(line == "STATUS=idle, 0 queued" and t > ready
                                      for t, line in notify_socket.fields()))
    finally:
        assert daemon.finish(signal.SIGTERM) == 0


def test_a_hung_engine_stops_the_pings_within_one_interval(
        tmp_path: Path, model_dir: Path, notify_socket: NotifySocket) -> None:
    interval = 4.0
    daemon = DaemonRun(tmp_path, model_dir, http=HTTP)
    make_video(daemon.media / "stuck.mkv", seconds=3.0)
    daemon.start({"NOTIFY_SOCKET": str(notify_socket.path),
                  "WATCHDOG_USEC": str(int(interval * 1e6)),
                  "SUBTITLED_FAILPOINTS": "hang-in-engine"}, own_watchdog_pid=True)
    try:
        started = notify_socket.wait_for("STATUS=transcribing stuck.mkv")
        notify_socket.wait_for("STATUS=degraded: no progress for", seconds=3 * interval)
        code, reasons = http_get(daemon, "/health")
        assert code == 503 and reasons.startswith("no progress for")
        time.sleep(2 * interval)
    finally:
        daemon.kill()
    late = [t for t in notify_socket.pings() if t > started + interval]
    assert late == [], "the heartbeat went on while the engine hung"
    assert "unhealthy, withholding the watchdog ping" in daemon.logs[-1]


def test_a_dead_observer_thread_stops_the_pings_and_fails_health(
        tmp_path: Path, model_dir: Path, notify_socket: NotifySocket) -> None:
    interval = 4.0
    daemon = DaemonRun(tmp_path, model_dir, http=HTTP)
    daemon.start({"NOTIFY_SOCKET": str(notify_socket.path),
                  "WATCHDOG_USEC": str(int(interval * 1e6)),
                  "SUBTITLED_FAILPOINTS": "observer-dies:die-now"}, own_watchdog_pid=True)
    try:
        ready = notify_socket.wait_for("READY=1")
        notify_socket.wait_for("WATCHDOG=1", after=ready)
        (daemon.media / "die-now.txt").write_text("an event the observer will not survive")
        killed = time.monotonic()
        notify_socket.wait_for("STATUS=degraded: a folder observer thread died",
                               seconds=3 * interval, after=killed)
        code, reasons = http_get(daemon, "/health")
        assert code == 503 and reasons == "a folder observer thread died\n"
        time.sleep(2 * interval)
    finally:
        daemon.kill()
    assert [t for t in notify_socket.pings() if t > killed + interval / 2] == []


def test_a_watchdog_meant_for_another_process_gets_no_pings(
        tmp_path: Path, model_dir: Path, notify_socket: NotifySocket) -> None:
    daemon = DaemonRun(tmp_path, model_dir)
    daemon.start({"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "1000000",
                  "WATCHDOG_PID": "1"})
    try:
        notify_socket.wait_for("READY=1")
        time.sleep(3)
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    assert notify_socket.pings() == []


def test_without_systemd_python_readiness_and_pings_still_reach_systemd(
        tmp_path: Path, model_dir: Path, notify_socket: NotifySocket) -> None:
    # A package named systemd whose daemon module cannot be imported, ahead of the real
    # one on the path: what a plain install without systemd-python looks like.
    shim = tmp_path / "no-systemd-python" / "systemd"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("")
    (shim / "daemon.py").write_text("raise ImportError('systemd-python is not installed')\n")
    daemon = DaemonRun(tmp_path, model_dir)
    daemon.start({"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "2000000",
                  "PYTHONPATH": str(shim.parent)}, own_watchdog_pid=True)
    try:
        ready = notify_socket.wait_for("READY=1")
        notify_socket.wait_for("WATCHDOG=1", after=ready)
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    assert notify_socket.first("STOPPING=1") > ready
    assert "systemd-python is not installed; notifying systemd over" in daemon.logs[-1]


def test_a_reload_whose_model_does_not_load_keeps_the_running_one(
        tmp_path: Path, model_dir: Path, notify_socket: NotifySocket) -> None:
    daemon = DaemonRun(tmp_path, model_dir)
    daemon.start({"NOTIFY_SOCKET": str(notify_socket.path)})
    try:
        ready = notify_socket.wait_for("READY=1")
        document = yaml.safe_load(daemon.config.read_text())
        document["model"]["name"] = "tiny.em"  # a typo
        document["scan"]["settle_seconds"] = 1
        daemon.config.write_text(yaml.safe_dump(document))
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGHUP)
        failed = notify_socket.wait_for("STATUS=idle, 0 queued; reload failed: model tiny.em",
                                        after=ready)
        make_video(daemon.media / "after.mkv", seconds=3.0)
        daemon.wait_until((daemon.media / "after.en.srt").exists)
        assert daemon.process.poll() is None
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    log = daemon.logs[-1]
    assert "reload failed, keeping the running configuration and model: model tiny.em " \
           "did not load" in log
    assert "configuration reloaded" not in log
    assert failed > ready
