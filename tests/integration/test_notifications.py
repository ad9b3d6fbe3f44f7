"""Notifications through Apprise, received by a local ntfy-compatible listener."""

from __future__ import annotations

import http.server
import json
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon_harness import DaemonRun
from tests.integration.test_environment_faults import Mount, fill, tmpfs  # noqa: F401


class Ntfy:
    """An ntfy server as Apprise's ntfy:// plugin talks to it: a JSON POST per message."""

    def __init__(self, *, fail: bool = False) -> None:
        self.messages: list[dict[str, Any]] = []
        received, answer_fail = self.messages, fail

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if answer_fail:
                    self.send_response(500)
                    self.end_headers()
                    return
                received.append(json.loads(body))
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"id": "1"}')

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"ntfy://127.0.0.1:{self.server.server_port}/subtitled"

    def wait_for(self, title_part: str, seconds: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for message in self.messages:
                if title_part in message.get("title", ""):
                    return message
            time.sleep(0.2)
        raise AssertionError(f"no message titled *{title_part}*: {self.messages}")


@pytest.fixture
def ntfy() -> Iterator[Ntfy]:
    server = Ntfy()
    yield server
    server.server.shutdown()


def test_a_file_given_up_on_and_a_pause_and_its_end_are_notified(
        tmp_path: Path, model_dir: Path, clip: Path, tmpfs: Mount, ntfy: Ntfy) -> None:  # noqa: F811
    disk = tmpfs(tmp_path / "small disk", "4m")
    urls = tmp_path / "notify-urls"
    urls.write_text(f"# where the admin reads\n{ntfy.url}\n")
    daemon = DaemonRun(tmp_path, model_dir, notifications={"urls_file": str(urls)},
                       watch=[{"path": str(tmp_path / "media")}, {"path": str(disk)}],
                       retry={"max_attempts": 1})
    (daemon.media / "broken.mkv").write_bytes(b"not a video at all\n" * 100)
    shutil.copyfile(clip, disk / "film.mkv")
    filler = fill(disk)
    daemon.start()
    try:
        gave_up = ntfy.wait_for("gave up on broken.mkv")
        assert "broken.mkv" in gave_up["message"] and "subtitled retry" in gave_up["message"]
        paused = ntfy.wait_for(f": paused {disk}")
        assert "no space left" in paused["message"]
        filler.unlink()
        resumed = ntfy.wait_for(f": resumed {disk}")
        assert "space fault has cleared" in resumed["message"]
        daemon.wait_until((disk / "film.en.srt").exists)
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    # Done files are not announced unless asked for.
    assert not [m for m in ntfy.messages if "subtitle written" in m["title"]]
    assert all(m["topic"] == "subtitled" for m in ntfy.messages)


def test_a_failing_notifier_never_affects_the_work(tmp_path: Path, model_dir: Path,
                                                   clip: Path) -> None:
    refusing = Ntfy(fail=True)
    urls = tmp_path / "notify-urls"
    urls.write_text(f"{refusing.url}\nntfy://127.0.0.1:9/nobody-listens\n")
    daemon = DaemonRun(tmp_path, model_dir, notifications={
        "urls_file": str(urls), "events": ["done", "failed"]})
    shutil.copyfile(clip, daemon.media / "film.mkv")
    (daemon.media / "broken.mkv").write_bytes(b"not a video at all\n" * 100)
    daemon.start()
    try:
        daemon.wait_until(lambda: daemon.all_settled(2))
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    refusing.server.shutdown()
    assert (daemon.media / "film.en.srt").exists()
    assert {r["state"] for r in daemon.rows()} == {"done", "failed"}
    assert "did not reach every service" in daemon.logs[-1]


def test_a_url_apprise_does_not_know_is_refused_with_its_line(tmp_path: Path) -> None:
    from tests.integration.test_daemon import run_check

    urls = tmp_path / "notify-urls"
    urls.write_text("ntfy://localhost/topic\n\nnotaservice://secret-token@host\n")
    daemon = DaemonRun(tmp_path, tmp_path / "models",
                       notifications={"urls_file": str(urls)})
    checked = run_check(daemon.config)
    assert checked.returncode == 2
    assert f"{urls}, line 3: Apprise does not understand this URL (notaservice://...)" \
        in checked.stderr
    assert "secret-token" not in checked.stderr


def test_a_file_dead_after_its_crashes_is_notified(tmp_path: Path, model_dir: Path,
                                                  clip: Path, ntfy: Ntfy) -> None:
    urls = tmp_path / "notify-urls"
    urls.write_text(f"{ntfy.url}\n")
    daemon = DaemonRun(tmp_path, model_dir, notifications={"urls_file": str(urls)},
                       retry={"max_attempts": 1})
    shutil.copyfile(clip, daemon.media / "poison.mkv")
    daemon.start({"SUBTITLED_FAILPOINTS": "after-claim:poison"})  # killed on claiming it
    assert daemon.finish(timeout=120) == -signal.SIGKILL
    daemon.start()
    try:
        dead = ntfy.wait_for("gave up on poison.mkv")
        assert "died while working on it once" in dead["message"]
        assert "(dead;" in dead["message"]
        daemon.wait_until(lambda: [r["state"] for r in daemon.rows()] == ["dead"])
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    assert "poison.mkv: dead-lettered" in daemon.logs[-1]
