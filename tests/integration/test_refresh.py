"""Media-server refresh over real sockets: a stand-in for Jellyfin, Emby and Plex asserts
each call exactly as the servers document it (../shared/integrations.md); a server that is
down or failing never costs the subtitle."""

from __future__ import annotations

import json
import logging
import signal
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter

from subtitled.config import MediaServer, PathMapping
from subtitled.web import refresh
from subtitled.web.refresh import Refresher
from tests.integration.daemon_harness import DaemonRun, make_video
from tests.integration.standin import StandIn

TOKEN = "0123456789abcdef"
VIDEO = Path("/srv/media/tv/Show/Season 01/Show - S01E01.mkv")
AS_THE_SERVER_SEES_IT = "/media/tv/Show/Season 01/Show - S01E01.mkv"
MAP = (PathMapping(remote="/media", local="/srv/media"),)
PLEX_SECTIONS = {"MediaContainer": {"Directory": [
    {"key": "1", "type": "movie", "Location": [{"id": 1, "path": "/media/films"}]},
    {"key": "2", "type": "show", "Location": [{"id": 2, "path": "/media"}]},
    {"key": "3", "type": "show", "Location": [{"id": 3, "path": "/media/tv"}]},
]}}


def server(kind: str, url: str, tmp_path: Path) -> MediaServer:
    token_file = tmp_path / f"{kind}-token"
    token_file.write_text(TOKEN + "\n")
    return MediaServer(kind=kind, url=url, token_file=token_file,  # type: ignore[arg-type]
                       path_map=MAP)


def counter() -> Counter:
    return Counter("refreshes", "", ["server", "result"], registry=CollectorRegistry())


def refreshed(servers: list[MediaServer], videos: list[Path], expected_calls: int,
              stand_ins: list[StandIn], metric: Counter | None = None) -> None:
    refresher = Refresher(tuple(servers), metric)
    refresher.start()
    try:
        for video in videos:
            refresher.written(video)
        deadline = time.monotonic() + 30
        while sum(len(s.received) for s in stand_ins) < expected_calls:
            assert time.monotonic() < deadline, [s.received for s in stand_ins]
            time.sleep(0.05)
        time.sleep(0.3)  # and nothing more
    finally:
        refresher.stop()


@pytest.mark.parametrize(("kind", "auth"), [
    ("jellyfin", ("Authorization", f'MediaBrowser Token="{TOKEN}"')),
    ("emby", ("X-Emby-Token", TOKEN)),
])
def test_jellyfin_and_emby_hear_of_the_video_s_path_as_they_name_it(
        kind: str, auth: tuple[str, str], tmp_path: Path) -> None:
    with StandIn(204 if kind == "jellyfin" else 200) as stand_in:
        refreshed([server(kind, stand_in.url, tmp_path)], [VIDEO], 1, [stand_in])
    (call,) = stand_in.received
    assert (call.method, call.target) == ("POST", "/Library/Media/Updated")
    assert call.headers[auth[0]] == auth[1]
    assert call.headers["Content-Type"] == "application/json"
    assert json.loads(call.body) == {"Updates": [{"Path": AS_THE_SERVER_SEES_IT,
                                                  "UpdateType": "Modified"}]}


def test_plex_scans_the_video_s_folder_in_the_section_that_holds_it(tmp_path: Path) -> None:
    with StandIn(200, {"/library/sections": PLEX_SECTIONS}) as stand_in:
        refreshed([server("plex", stand_in.url, tmp_path)], [VIDEO], 2, [stand_in])
    sections, scan = stand_in.received
    assert (sections.method, sections.target) == ("GET", "/library/sections")
    assert sections.headers["X-Plex-Token"] == TOKEN
    assert sections.headers["Accept"] == "application/json"
    # Section 3 (/media/tv) is the longest location that holds the folder.
    assert (scan.method, scan.target) == (
        "GET", "/library/sections/3/refresh?path=%2Fmedia%2Ftv%2FShow%2FSeason+01")
    assert scan.headers["X-Plex-Token"] == TOKEN


def test_a_failing_server_is_retried_then_counted_and_logged_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(refresh, "BACKOFF_SECONDS", (0.1, 0.1))
    metric = counter()
    with StandIn(500) as failing, StandIn(204) as working:
        servers = [server("jellyfin", failing.url, tmp_path),
                   server("emby", working.url, tmp_path)]
        with caplog.at_level(logging.INFO, logger="subtitled.web.refresh"):
            refreshed(servers, [VIDEO, VIDEO.with_name("Show - S01E02.mkv")], 3 * 2 + 2,
                      [failing, working], metric)
    assert len(failing.received) == 6 and len(working.received) == 2  # 3 tries each
    failed = metric.labels(f"jellyfin {failing.url}", "failed")._value.get()
    ok = metric.labels(f"emby {working.url}", "ok")._value.get()
    assert (failed, ok) == (2, 2)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "answered 500" in warnings[0], warnings


def test_a_subtitle_is_written_and_the_server_told_or_not_when_it_is_down(
        tmp_path: Path, model_dir: Path) -> None:
    with StandIn(204) as jellyfin:
        down = "http://127.0.0.1:9"  # discard: nothing listens
        token = tmp_path / "token"
        token.write_text(TOKEN)
        daemon = DaemonRun(tmp_path, model_dir, media_servers=[
            {"kind": "jellyfin", "url": jellyfin.url, "token_file": str(token)},
            {"kind": "emby", "url": down, "token_file": str(token)}])
        film = make_video(daemon.media / "Film.mkv", 3.0)
        daemon.start()
        try:
            daemon.wait_until(lambda: daemon.all_settled(1) and len(jellyfin.received) == 1)
            assert film.with_suffix(".en.srt").exists()
            assert [r["state"] for r in daemon.rows()] == ["done"]
        finally:
            assert daemon.finish(signal.SIGTERM) == 0
    (call,) = jellyfin.received
    assert json.loads(call.body)["Updates"][0]["Path"] == str(film)
    assert call.headers["Authorization"] == f'MediaBrowser Token="{TOKEN}"'
