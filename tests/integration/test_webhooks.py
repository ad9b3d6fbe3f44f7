"""Webhooks into the real daemon over real sockets: payloads as Sonarr, Radarr, Emby and
Tautulli send them (field names from ../shared/integrations.md) queue the file they name,
ahead of any scan, through the path map; everything else gets a 4xx and one line."""

from __future__ import annotations

import json
import re
import signal
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from subtitled.service import control
from subtitled.web.access import CREDENTIAL_NAME, Access
from subtitled.web.app import IDLE_CLIENT_SECONDS, Services, build_app
from subtitled.web.server import HttpServer
from tests.integration.daemon_harness import DaemonRun, make_video
from tests.integration.standin import StandIn

REMOTE = "/data/media"  # the library as Sonarr's container sees it


def base_url(daemon: DaemonRun) -> str:
    found = re.search(r"HTTP on (http://\S+/)", daemon.log_file.read_text())
    assert found, daemon.log_file.read_text()
    return found.group(1)


def post(daemon: DaemonRun, path: str, body: bytes | dict[str, Any], *,
         headers: dict[str, str] | None = None, method: str = "POST") -> tuple[int, str]:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(base_url(daemon) + path.lstrip("/"), data=data,
                                     method=method, headers={
                                         "Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def multipart(name: str, value: str) -> tuple[bytes, dict[str, str]]:
    """One form field, as Emby and Plex send their JSON."""
    boundary = "----subtitled-test"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
            f"{value}\r\n--{boundary}--\r\n").encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def library_left_alone(tmp_path: Path, model_dir: Path, **http: Any) -> DaemonRun:
    """A daemon whose backfill leaves the library alone: only a webhook queues its files."""
    return DaemonRun(tmp_path, model_dir, scan={"backfill": "none"}, http={
        "enabled": True, "port": 0, **http})


def test_an_import_webhook_queues_the_file_it_names_through_the_path_map(
        tmp_path: Path, model_dir: Path) -> None:
    daemon = library_left_alone(tmp_path, model_dir, path_map=[
        {"remote": REMOTE, "local": str(tmp_path / "media")}])
    (daemon.media / "Show" / "Season 01").mkdir(parents=True)
    episode = make_video(daemon.media / "Show" / "Season 01" / "Show - S01E01.mkv", 4.0)
    film = make_video(daemon.media / "Film (2020).mkv", 3.0)
    daemon.start()
    try:
        daemon.wait_ready()
        time.sleep(3)  # past the settle time: the library was left alone
        assert daemon.rows() == []
        assert post(daemon, "/webhooks/sonarr", {"eventType": "Test"})[0] == 200
        code, text = post(daemon, "/webhooks/sonarr", {
            "eventType": "Download", "isUpgrade": False,
            "episodeFile": {"path": f"{REMOTE}/Show/Season 01/Show - S01E01.mkv"}})
        assert code == 202 and json.loads(text)["queued"] == [str(episode)]
        daemon.wait_until(episode.with_suffix(".en.srt").exists)
        body, headers = multipart("data", json.dumps({
            "Event": "library.new", "Item": {"Path": f"{REMOTE}/Film (2020).mkv"}}))
        assert post(daemon, "/webhooks/emby", body, headers=headers)[0] == 202
        daemon.wait_until(film.with_suffix(".en.srt").exists)
        assert [(r["path"], r["state"]) for r in daemon.rows()] == [
            (str(episode), "done"), (str(film), "done")]
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    assert "webhook sonarr: Test event" in daemon.logs[-1]


def test_whatever_a_webhook_should_not_do_is_refused_with_a_4xx_and_one_line(
        tmp_path: Path, model_dir: Path) -> None:
    daemon = library_left_alone(tmp_path, model_dir)
    (daemon.media / "notes.txt").write_text("not a video")
    daemon.start()
    try:
        daemon.wait_ready()
        plex_form = multipart("payload", "{}")  # Plex's part name, not Emby's
        download = {"eventType": "Download", "movieFile": {"path": "/elsewhere/Film.mkv"}}
        refusals = [
            (post(daemon, "/webhooks/radarr", download),
             (422, "/elsewhere/Film.mkv: outside every watched folder")),
            (post(daemon, "/webhooks/radarr", {**download, "movieFile": {
                "path": str(daemon.media / "Gone.mkv")}}), (422, "no such file here")),
            (post(daemon, "/webhooks/path", {"path": str(daemon.media / "notes.txt")}),
             (422, "not a file the daemon subtitles")),
            (post(daemon, "/webhooks/path", {"path": "relative/Film.mkv"}),
             (422, "not an absolute path")),
            (post(daemon, "/webhooks/sonarr", b"eventType=Download"), (400, "not JSON")),
            (post(daemon, "/webhooks/sonarr", {"eventType": "Download"}),
             (400, "a Download event without a file path")),
            (post(daemon, "/webhooks/emby", {"Event": "library.new"}),
             (415, "expected multipart/form-data with a 'data' part")),
            (post(daemon, "/webhooks/emby", plex_form[0], headers=plex_form[1]),
             (400, "no 'data' text part in the form")),
            (post(daemon, "/webhooks/sabnzbd", download), (404, "no such sender")),
            (post(daemon, "/webhooks/sonarr", b"", method="GET"), (405, "")),
            (post(daemon, "/webhooks/path", b"{}", headers={
                "Content-Length": str(10 * 1024 ** 3)}), (413, "a body of 10737418240 bytes")),
        ]
        for (code, text), (want_code, want_text) in refusals:
            assert code == want_code and want_text in text, (code, text)
            assert text.count("\n") <= 1, text
        started = time.monotonic()
        assert stalled_post(daemon).startswith("HTTP/1.1 408")
        assert time.monotonic() - started < IDLE_CLIENT_SECONDS + 15
        assert daemon.rows() == []
    finally:
        assert daemon.finish(signal.SIGTERM) == 0


def stalled_post(daemon: DaemonRun) -> str:
    """A client that announces 1000 bytes, sends ten and falls silent."""
    url = urlsplit(base_url(daemon))
    with socket.create_connection((url.hostname, url.port), timeout=IDLE_CLIENT_SECONDS + 20) \
            as client:
        client.sendall(b"POST /webhooks/path HTTP/1.1\r\nHost: x\r\nContent-Type: "
                       b"application/json\r\nContent-Length: 1000\r\n\r\n{\"path\": \"")
        return client.recv(4096).decode()


def test_a_storm_of_webhooks_for_100_files_is_100_jobs(tmp_path: Path,
                                                         model_dir: Path) -> None:
    daemon = library_left_alone(tmp_path, model_dir)
    control.pause(daemon.state)  # the queue is counted, not worked
    films = []
    for index in range(100):
        films.append(daemon.media / f"Film {index:03d}.mkv")
        films[-1].write_bytes(b"\0" * 1000)
    daemon.start()
    try:
        daemon.wait_ready()
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda i: post(daemon, "/webhooks/path", {
                "path": str(films[i % 100])})[0], range(1000)))
        assert codes == [202] * 1000
        daemon.wait_until(lambda: len(daemon.rows()) >= 100)
        time.sleep(3)  # past another settle time: nothing more comes
        assert sorted(r["path"] for r in daemon.rows()) == [str(f) for f in films]
    finally:
        assert daemon.finish(signal.SIGTERM) == 0


def test_outside_the_trusted_networks_the_key_from_systemd_s_credentials_is_needed(
        tmp_path: Path, model_dir: Path) -> None:
    key = "0123456789abcdef0123"
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / CREDENTIAL_NAME).write_text(key + "\n")
    daemon = library_left_alone(tmp_path, model_dir, trusted_networks=["192.0.2.0/24"])
    daemon.start(env={"CREDENTIALS_DIRECTORY": str(credentials)})
    try:
        daemon.wait_ready()
        test = {"eventType": "Test"}
        assert post(daemon, "/webhooks/sonarr", test) == (
            401, "an API key is needed (header X-Api-Key, or ?apikey=)\n")
        assert post(daemon, "/webhooks/sonarr", test,
                    headers={"X-Api-Key": "wrong"}) == (403, "wrong API key\n")
        assert post(daemon, "/webhooks/sonarr", test, headers={"X-Api-Key": key})[0] == 200
        assert post(daemon, f"/webhooks/sonarr?apikey={key}", test)[0] == 200
        # Behind a reverse proxy on loopback, the client is the one the proxy names.
        assert post(daemon, "/webhooks/sonarr", test,
                    headers={"X-Forwarded-For": "192.0.2.7"})[0] == 200
        assert post(daemon, "/webhooks/sonarr", test,
                    headers={"X-Forwarded-For": "198.51.100.7"})[0] == 401
        # Reading needs no key: monitors scrape /health and /metrics as before.
        with urllib.request.urlopen(base_url(daemon) + "health", timeout=10) as reply:
            assert reply.status == 200
    finally:
        assert daemon.finish(signal.SIGTERM) == 0


def test_the_server_stops_with_its_threads_and_a_port_in_use_is_refused() -> None:
    app = build_app(Services(lambda: ["paused: the share is down"], lambda: b"",
                             lambda _: None, lambda *_: None, Access((), None), ()))
    server = HttpServer("127.0.0.1", 0, app)
    server.start()
    try:
        with pytest.raises(OSError):
            HttpServer("127.0.0.1", server.port, app)
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/health", timeout=10)
        assert (caught.value.code, caught.value.read()) == (503, b"paused: the share is down\n")
    finally:
        server.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5)


def test_a_refusal_before_the_body_is_read_reaches_the_client_whole() -> None:
    """Refused on its key before its 4 MB body is read, the client still sends it all and
    reads the answer: the server takes the rest of the body first, or closing on unread
    bytes would reset the connection and lose the reply (as a Bazarr request saw it:
    "connection reset by peer")."""
    app = build_app(Services(lambda: [], lambda: b"", lambda _: None, lambda *_: None,
                             Access((), None), ()))
    server = HttpServer("127.0.0.1", 0, app)
    server.start()
    body = b"{" + b" " * (4 * 1024 * 1024) + b"}"
    try:
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", server.port), timeout=30) as client:
                client.sendall(b"POST /webhooks/sonarr HTTP/1.1\r\nHost: subtitled\r\n"
                               b"Connection: close\r\nContent-Type: application/json\r\n"
                               b"Content-Length: %d\r\n\r\n" % len(body) + body)
                time.sleep(0.5)  # the server has answered by now
                reply = b""
                while chunk := client.recv(65536):
                    reply += chunk
            assert reply.startswith(b"HTTP/1.1 403 "), reply
            assert reply.endswith(b"is not in http.trusted_networks, and no API key is set "
                                  b"(http.api_key_file)\n"), reply
    finally:
        server.stop()


JELLYFIN_ITEM = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
USERS = [{"Id": "f00d", "Name": "viewer", "Policy": {"IsAdministrator": False}},
         {"Id": "beef", "Name": "admin", "Policy": {"IsAdministrator": True}}]


def test_jellyfin_and_plex_items_are_looked_up_on_their_servers_and_queued(
        tmp_path: Path, model_dir: Path) -> None:
    token = tmp_path / "token"
    token.write_text("0123456789abcdef")
    media = tmp_path / "media"
    replies = {"/Users": USERS,
               f"/Items/{JELLYFIN_ITEM}": {"Path": "/media/Film A.mkv", "Type": "Movie"},
               "/library/metadata/4711": {"MediaContainer": {"Metadata": [
                   {"type": "movie", "Media": [{"Part": [{"file": "/media/Film B.mkv"}]}]}]}},
               "/library/metadata/99": {"MediaContainer": {"Metadata": [{"type": "show"}]}},
               "/library/metadata/99/allLeaves": {"MediaContainer": {"Metadata": [
                   {"Media": [{"Part": [{"file": f"/media/Show/E0{n}.mkv"}]}]}
                   for n in (1, 2)]}}}
    server_map = [{"remote": "/media", "local": str(media)}]
    with StandIn(200, replies) as jellyfin, StandIn(200, replies) as plex, \
            StandIn(500) as broken:
        daemon = library_left_alone(tmp_path, model_dir)
        daemon.config.write_text(daemon.config.read_text() + yaml.safe_dump({
            "media_servers": [
                {"kind": "jellyfin", "url": jellyfin.url, "token_file": str(token),
                 "path_map": server_map},
                {"kind": "plex", "url": plex.url, "token_file": str(token),
                 "path_map": server_map}]}))
        (media / "Show").mkdir()
        for name in ("Film A.mkv", "Film B.mkv", "Show/E01.mkv", "Show/E02.mkv"):
            (media / name).write_bytes(b"\0" * 1000)
        control.pause(daemon.state)  # the queue is looked at, not worked
        daemon.start()
        try:
            daemon.wait_ready()
            added = {"NotificationType": "ItemAdded", "ItemType": "Movie",
                     "ItemId": JELLYFIN_ITEM}
            code, text = post(daemon, "/webhooks/jellyfin", added)
            assert (code, json.loads(text)["queued"]) == (202, [str(media / "Film A.mkv")])
            for key, files in (("4711", ["Film B.mkv"]), ("99", ["Show/E01.mkv",
                                                                  "Show/E02.mkv"])):
                body, headers = multipart("payload", json.dumps({
                    "event": "library.new", "Metadata": {"ratingKey": key}}))
                code, text = post(daemon, "/webhooks/plex", body, headers=headers)
                assert code == 202, text
                assert json.loads(text)["queued"] == [str(media / f) for f in files]
            daemon.wait_until(lambda: len(daemon.rows()) == 4)
        finally:
            assert daemon.finish(signal.SIGTERM) == 0
        targets = [(r.method, r.target) for r in jellyfin.received]
        assert targets == [("GET", "/Users"), ("GET", f"/Items/{JELLYFIN_ITEM}?userId=beef")]
        assert all(r.headers["Authorization"] == 'MediaBrowser Token="0123456789abcdef"'
                   for r in jellyfin.received)
        assert [(r.method, r.target) for r in plex.received] == [
            ("GET", "/library/metadata/4711"), ("GET", "/library/metadata/99"),
            ("GET", "/library/metadata/99/allLeaves")]
        assert all(r.headers["X-Plex-Token"] == "0123456789abcdef" for r in plex.received)

        # A server that fails, and a kind that is not configured: a line, no traceback.
        daemon = library_left_alone(tmp_path / "second", model_dir)
        daemon.config.write_text(daemon.config.read_text() + yaml.safe_dump({
            "media_servers": [{"kind": "jellyfin", "url": broken.url,
                               "token_file": str(token)}]}))
        daemon.start()
        try:
            daemon.wait_ready()
            code, text = post(daemon, "/webhooks/jellyfin", added)
            assert code == 502 and "answered 500" in text and text.count("\n") == 1
            body, headers = multipart("payload", json.dumps({
                "event": "library.new", "Metadata": {"ratingKey": "4711"}}))
            code, text = post(daemon, "/webhooks/plex", body, headers=headers)
            assert code == 422 and "add the plex server to media_servers" in text
        finally:
            assert daemon.finish(signal.SIGTERM) == 0


def test_a_rename_takes_our_subtitle_along_and_nothing_is_transcribed_again(
        tmp_path: Path, model_dir: Path) -> None:
    daemon = library_left_alone(tmp_path, model_dir, path_map=[
        {"remote": REMOTE, "local": str(tmp_path / "media")}])
    # With a WebVTT beside the SRT: both follow the file.
    daemon.config.write_text(daemon.config.read_text() + yaml.safe_dump({
        "output": {"formats": ["srt", "vtt"]}}))
    old = make_video(daemon.media / "show.s01e01.mkv", 3.0)
    new = daemon.media / "Show - S01E01 - Pilot.mkv"
    daemon.start()
    try:
        daemon.wait_ready()
        assert post(daemon, "/webhooks/path", {"path": str(old)})[0] == 202
        daemon.wait_until(lambda: daemon.all_settled(1))
        written = old.with_suffix(".en.srt").read_text()
        webvtt = old.with_suffix(".en.vtt").read_text()
        old.rename(new)  # as Sonarr renames, then tells
        code, text = post(daemon, "/webhooks/sonarr", {"eventType": "Rename", "series": {},
                                                       "renamedEpisodeFiles": [{
            "previousPath": f"{REMOTE}/show.s01e01.mkv",
            "path": f"{REMOTE}/Show - S01E01 - Pilot.mkv"}]})
        assert code == 202, text
        assert new.with_suffix(".en.srt").read_text() == written
        assert new.with_suffix(".en.vtt").read_text() == webvtt
        assert not old.with_suffix(".en.srt").exists() and not old.with_suffix(".en.vtt").exists()
        time.sleep(4)  # past the settle time of the move's own event
        (row,) = daemon.rows()
        assert (row["path"], row["state"], row["attempts"]) == (str(new), "done", 1)
        assert row["written_path"] == str(new.with_suffix(".en.srt"))
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    assert "renamed from show.s01e01.mkv" in daemon.logs[-1]
