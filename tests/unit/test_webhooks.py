"""What each sender's webhook means, from payloads built with the field names its source
uses (../shared/integrations.md), and who may send one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.exceptions import HTTPException
from starlette.requests import Request

from subtitled.config import HttpSettings, PathMapping
from subtitled.errors import ConfigError
from subtitled.paths import local_path, remote_path
from subtitled.web import asr, media_servers, webhooks
from subtitled.web.access import (
    CREDENTIAL_NAME,
    Access,
    api_key_file,
    read_api_key,
    read_token,
)
from subtitled.web.webhooks import BadPayload, Hook

EPISODE = "/data/media/tv/Show/Season 01/Show - S01E01.mkv"
MOVIE = "/data/media/films/Film (2020)/Film (2020).mkv"

PAYLOADS: list[tuple[str, Any, Hook]] = [
    ("sonarr", {"eventType": "Test", "instanceName": "Sonarr"}, Hook("Test", test=True)),
    ("sonarr", {"eventType": "Download", "isUpgrade": False, "series": {"path": "/x"},
                "episodeFile": {"id": 7, "relativePath": "Season 01/Show - S01E01.mkv",
                                "path": EPISODE}}, Hook("Download", (EPISODE,))),
    ("sonarr", {"eventType": "Download", "episodeFiles": [{"path": EPISODE},
                                                         {"path": EPISODE + "2"}],
                "sourcePath": "/downloads/x", "destinationPath": "/data/media/tv/Show"},
     Hook("Download", (EPISODE, EPISODE + "2"))),  # "On Import Complete"
    ("sonarr", {"eventType": "Rename", "renamedEpisodeFiles": [
        {"previousPath": "/data/media/tv/Show/old.mkv", "path": EPISODE}]},
     Hook("Rename", (EPISODE,), renamed_from=("/data/media/tv/Show/old.mkv",))),
    ("sonarr", {"eventType": "Grab", "release": {}}, Hook("Grab", ignored=True)),
    ("radarr", {"eventType": "Download", "isUpgrade": True, "movie": {"folderPath": "/x"},
                "movieFile": {"path": MOVIE}, "deletedFiles": []}, Hook("Download", (MOVIE,))),
    ("radarr", {"eventType": "Rename", "renamedMovieFiles": [
        {"previousPath": "/data/media/films/old.mkv", "path": MOVIE}]},
     Hook("Rename", (MOVIE,), renamed_from=("/data/media/films/old.mkv",))),
    ("radarr", {"eventType": "MovieFileDelete"}, Hook("MovieFileDelete", ignored=True)),
    ("emby", {"Event": "library.new", "Item": {"Path": MOVIE, "Type": "Movie"}},
     Hook("library.new", (MOVIE,))),
    ("emby", {"Event": "system.notificationtest"}, Hook("system.notificationtest", test=True)),
    ("emby", {"Event": "playback.start", "Item": {"Path": MOVIE}},
     Hook("playback.start", ignored=True)),
    ("tautulli", {"event": "added", "file": MOVIE, "filename": "Film (2020).mkv",
                  "mediatype": "movie"}, Hook("added", (MOVIE,))),
    ("tautulli", {"event": "played", "file": MOVIE}, Hook("played", ignored=True)),
    ("jellyfin", {"NotificationType": "ItemAdded", "ItemType": "Movie",
                  "ItemId": "a1b2c3d4e5f60718293a4b5c6d7e8f90", "ServerUrl": "http://jf"},
     Hook("ItemAdded", items=("a1b2c3d4e5f60718293a4b5c6d7e8f90",))),
    ("jellyfin", {"NotificationType": "ItemAdded", "ItemType": "Season", "ItemId": "ab"},
     Hook("ItemAdded", ignored=True)),  # a season is no file: its episodes come one by one
    ("jellyfin", {"NotificationType": "PlaybackStart", "ItemType": "Movie", "ItemId": "ab"},
     Hook("PlaybackStart", ignored=True)),
    ("plex", {"event": "library.new", "Metadata": {"ratingKey": "4711", "type": "movie"}},
     Hook("library.new", items=("4711",))),
    ("plex", {"event": "library.new", "Metadata": {"ratingKey": 4711}},
     Hook("library.new", items=("4711",))),
    ("plex", {"event": "media.play", "Metadata": {"ratingKey": "4711"}},
     Hook("media.play", ignored=True)),
    ("path", {"path": MOVIE}, Hook("path", (MOVIE,))),
    ("path", {"paths": [MOVIE, EPISODE]}, Hook("path", (MOVIE, EPISODE))),
]


@pytest.mark.parametrize(("source", "body", "hook"), PAYLOADS)
def test_each_sender_s_events_name_the_files_to_queue(source: str, body: Any,
                                                        hook: Hook) -> None:
    assert webhooks.SOURCES[source](body) == hook


@pytest.mark.parametrize(("source", "body", "reason"), [
    ("sonarr", [], "expected a JSON object with 'eventType'"),
    ("sonarr", {"event": "Download"}, "no 'eventType' in the payload"),
    ("sonarr", {"eventType": "Download"}, "a Download event without a file path"),
    ("radarr", {"eventType": "Download", "movieFile": {"path": 3}}, "'path' is not a"),
    ("radarr", {"eventType": "Download", "movieFile": {"relativePath": "x"}}, "no 'path'"),
    ("sonarr", {"eventType": "Download", "episodeFiles": {"path": EPISODE}},
     "'episodeFiles' is not a list"),
    ("emby", {"Event": "library.new"}, "no 'Item' in the payload"),
    ("emby", {"Event": "library.new", "Item": {"Path": ""}}, "'Item.Path' is not a"),
    ("tautulli", {"event": "added"}, "no 'file'"),
    ("path", {"paths": []}, "an empty list of paths"),
    ("jellyfin", {"NotificationType": "ItemAdded", "ItemType": "Movie"}, "no 'ItemId'"),
    ("jellyfin", {"NotificationType": "ItemAdded", "ItemType": "Movie",
                  "ItemId": "../../Users"}, "is not an item id"),
    ("plex", {"event": "library.new", "Metadata": {}}, "no 'ratingKey'"),
    ("plex", {"event": "library.new", "Metadata": {"ratingKey": "4/refresh"}},
     "is not a number"),
    ("path", "just a string", "expected a JSON object with 'path'"),
])
def test_a_malformed_payload_is_refused_with_its_reason(source: str, body: Any,
                                                        reason: str) -> None:
    with pytest.raises(BadPayload, match=reason.replace("(", r"\(")):
        webhooks.SOURCES[source](body)


def test_a_body_that_is_not_json_is_refused() -> None:
    with pytest.raises(BadPayload, match="not JSON"):
        webhooks.parse_json(b"eventType=Download")
    assert webhooks.parse_json(b'{"path": "/a"}') == {"path": "/a"}


MAP = (PathMapping("/data/media", "/srv/media"), PathMapping("/data", "/mnt/other"),
       PathMapping("/tv", "/srv/media/tv"))


@pytest.mark.parametrize(("sent", "here"), [
    (MOVIE, "/srv/media/films/Film (2020)/Film (2020).mkv"),  # the longest match wins
    ("/data/other/x.mkv", "/mnt/other/other/x.mkv"),
    ("/data/media2/x.mkv", "/mnt/other/media2/x.mkv"),  # whole folder names only
    ("/tv/Show/x.mkv", "/srv/media/tv/Show/x.mkv"),
    ("/srv/media/x.mkv", "/srv/media/x.mkv"),  # no mapping: as sent
    ("/data/media", "/srv/media"),
])
def test_path_map_rewrites_the_sender_s_folders(sent: str, here: str) -> None:
    assert local_path(sent, MAP) == here


def test_a_root_mapping_maps_everything() -> None:
    assert local_path("/a/b.mkv", (PathMapping("/", "/srv"),)) == "/srv/a/b.mkv"


KEY = "k" * 24


@pytest.mark.parametrize(("client", "headers", "query", "answer"), [
    ("127.0.0.1", {}, {}, None),  # loopback is trusted by default
    ("::1", {}, {}, None),
    ("::ffff:127.0.0.1", {}, {}, None),
    ("172.17.0.5", {}, {}, None),  # the Docker bridge, added here
    ("192.168.1.20", {}, {}, (401, "an API key is needed (header X-Api-Key, or ?apikey=)")),
    ("192.168.1.20", {"x-api-key": "wrong"}, {}, (403, "wrong API key")),
    ("192.168.1.20", {}, {"apikey": "wrong" * 6}, (403, "wrong API key")),
    ("192.168.1.20", {"x-api-key": KEY}, {}, None),
    ("192.168.1.20", {}, {"apikey": KEY}, None),  # Plex and Emby cannot set headers
    (None, {"x-api-key": KEY}, {}, None),
    (None, {}, {}, (401, "an API key is needed (header X-Api-Key, or ?apikey=)")),
])
def test_a_client_needs_a_trusted_address_or_the_key(
        client: str | None, headers: dict[str, str], query: dict[str, str],
        answer: tuple[int, str] | None) -> None:
    access = Access.of(HttpSettings(trusted_networks=("127.0.0.0/8", "::1/128",
                                                      "172.17.0.0/16")), {})
    access = Access(access.trusted, KEY)
    assert access.refusal(client, headers, query) == answer


def test_without_a_key_only_trusted_networks_may_send() -> None:
    access = Access.of(HttpSettings(), {})
    assert access.key is None
    refusal = access.refusal("10.1.2.3", {"x-api-key": KEY}, {})
    assert refusal is not None and refusal[0] == 403
    assert "not in http.trusted_networks, and no API key is set" in refusal[1]


def test_the_key_comes_from_its_file_or_systemd_s_credentials(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / CREDENTIAL_NAME).write_text(KEY + "\n")
    environ = {"CREDENTIALS_DIRECTORY": str(credentials)}
    assert read_api_key(api_key_file(HttpSettings(), environ)) == KEY
    own = tmp_path / "key"
    own.write_text("x" * 20)
    assert read_api_key(api_key_file(HttpSettings(api_key_file=own), environ)) == "x" * 20
    assert api_key_file(HttpSettings(), {"CREDENTIALS_DIRECTORY": str(tmp_path)}) is None
    bom = tmp_path / "token"
    bom.write_text("\ufeffabcdef0123456789\n", encoding="utf-8")  # as Notepad saves it
    assert read_token(bom) == "abcdef0123456789"
    bom.write_text("jellyfin-tök", encoding="utf-8")
    with pytest.raises(ConfigError, match="one word of plain ASCII"):
        read_token(bom)


@pytest.mark.parametrize(("text", "reason"), [
    (None, "cannot read the API key from"),
    ("short", "at least 16 characters"),
    ("two words of a key here", "one word"),
])
def test_a_bad_key_file_is_a_configuration_error(tmp_path: Path, text: str | None,
                                                 reason: str) -> None:
    path = tmp_path / "key"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=reason):
        read_api_key(path)


def test_our_paths_as_another_side_names_them() -> None:
    assert remote_path("/srv/media/films/Film.mkv", MAP) == "/data/media/films/Film.mkv"
    assert remote_path("/srv/media/tv/x.mkv", MAP) == "/tv/x.mkv"  # the longest local
    assert remote_path("/elsewhere/x.mkv", MAP) == "/elsewhere/x.mkv"


@pytest.mark.parametrize(("sections", "folder", "key"), [
    ({"MediaContainer": {"Directory": [{"key": 4, "Location": [{"path": "/m/tv/"}]}]}},
     "/m/tv/Show", "4"),
    ({"MediaContainer": {"Directory": [{"key": 4, "Location": [{"path": "/m/tv"}]}]}},
     "/m/tv2/Show", None),  # whole folder names only
    ({"MediaContainer": {"Directory": [{"key": 4}]}}, "/m/tv/Show", None),  # no Location
    ({"MediaContainer": {}}, "/m", None),
    ([], "/m", None),
])
def test_plex_s_section_is_the_one_whose_location_holds_the_folder(
        sections: Any, folder: str, key: str | None) -> None:
    assert media_servers.plex_section_for(sections, folder) == key


def bazarr_request(query: str) -> Request:
    return Request({"type": "http", "method": "POST", "path": "/asr",
                    "query_string": query.encode(), "headers": []})


@pytest.mark.parametrize(("query", "language", "task", "encoded"), [
    ("task=transcribe&language=en&output=srt&encode=false", "en", "transcribe", False),
    ("task=translate&language=ja&output=srt&encode=false", "ja", "translate", False),
    ("language=haw&encode=false", "haw", "transcribe", False),  # Bazarr's Whisper codes
    ("language=jw", "jv", "transcribe", True),  # Whisper's jw is ISO 639-1 jv
    ("language=ger", "de", "transcribe", True),  # an ISO 639-2 code, taken too
    ("", None, "transcribe", True),  # whisper-asr-webservice's defaults
])
def test_bazarr_s_query_becomes_the_work_it_asks_for(
        query: str, language: str | None, task: str, encoded: bool) -> None:
    work, encode = asr.asked(bazarr_request(query), "asr", "/asr")
    assert (work.language, work.task, encode) == (language, task, encoded)


@pytest.mark.parametrize(("query", "reason"), [
    ("language=xx", "language='xx' is not a language Whisper knows"),
    ("language=und", "language='und' is not a language Whisper knows"),
    ("task=summarize", "task='summarize': transcribe or translate"),
    ("output=vtt", "output='vtt': this server answers srt"),
    ("encode=0", "encode='0': true or false"),
])
def test_a_query_bazarr_would_not_send_is_refused(query: str, reason: str) -> None:
    with pytest.raises(HTTPException) as refused:
        asr.asked(bazarr_request(query), "asr", "/asr")
    assert (refused.value.status_code, refused.value.detail) == (400, reason)
