"""What each sender's webhook says, as the paths of files to queue: Sonarr and Radarr
(import, upgrade, rename, test), Emby (library.new), Tautulli (a recipe's `added`), a
generic {"path": ...}, and the items of Jellyfin (ItemAdded) and Plex (library.new),
whose paths their servers know. Field names as `../shared/integrations.md` gives them from the
senders' source. Pure: the daemon decides what a path means here."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class BadPayload(ValueError):
    """The body is not what that sender sends; the message is the one-line reason."""


@dataclass(frozen=True)
class Hook:
    event: str
    paths: tuple[str, ...] = ()  # as the sender names them
    test: bool = False  # the sender's "Test" button: answered, nothing queued
    ignored: bool = False  # an event that asks nothing of us (a playback, a delete)
    items: tuple[str, ...] = ()  # ids whose files the sender's server knows
    renamed_from: tuple[str, ...] = ()  # for a rename: each path's previous one


def sonarr_or_radarr(body: Any) -> Hook:
    """Download (an import or an upgrade: `episodeFile`, `movieFile`, or Sonarr's "Import
    Complete" with `episodeFiles[]`) and Rename (`renamed…Files[].path`, the new names)."""
    event = _text(_field(body, "eventType"), "eventType")
    if event == "Test":
        return Hook(event, test=True)
    if event == "Download":
        files = [body[key] for key in ("episodeFile", "movieFile") if key in body]
        files += _list(body.get("episodeFiles", []), "episodeFiles")
    elif event == "Rename":
        files = _list(body.get("renamedEpisodeFiles", []), "renamedEpisodeFiles") + \
            _list(body.get("renamedMovieFiles", []), "renamedMovieFiles")
    else:
        return Hook(event, ignored=True)
    paths = tuple(_text(_field(f, "path"), "path") for f in files)
    if not paths:
        raise BadPayload(f"a {event} event without a file path")
    if event == "Rename":
        return Hook(event, paths, renamed_from=tuple(
            _text(_field(f, "previousPath"), "previousPath") for f in files))
    return Hook(event, paths)


def emby(body: Any) -> Hook:
    """Emby's multipart `data` part, already read as JSON."""
    event = _text(_field(body, "Event"), "Event")
    if event == "system.notificationtest":
        return Hook(event, test=True)
    if event != "library.new":
        return Hook(event, ignored=True)
    return Hook(event, (_text(_field(_field(body, "Item"), "Path"), "Item.Path"),))


def tautulli(body: Any) -> Hook:
    """Tautulli's Webhook agent with the recipe in the README: {"event": "added",
    "file": "{file}"}."""
    event = _text(_field(body, "event"), "event")
    if event != "added":
        return Hook(event, ignored=True)
    return Hook(event, (_text(_field(body, "file"), "file"),))


def generic(body: Any) -> Hook:
    """{"path": "/srv/media/Movie.mkv"} or {"paths": [...]}, from a script or a tool."""
    if isinstance(body, dict) and "paths" in body:
        paths = tuple(_text(p, "paths[]") for p in _list(body["paths"], "paths"))
    else:
        paths = (_text(_field(body, "path"), "path"),)
    if not paths:
        raise BadPayload("an empty list of paths")
    return Hook("path", paths)


# Jellyfin's item types that are one file to subtitle (a series or a season is not).
_JELLYFIN_FILES = ("Movie", "Episode", "Video", "MusicVideo")


def jellyfin(body: Any) -> Hook:
    """Jellyfin's Webhook plugin (Generic destination, "Send All Properties"): ItemAdded
    with an `ItemId`; the path is looked up on the server."""
    event = _text(_field(body, "NotificationType"), "NotificationType")
    if event != "ItemAdded" or body.get("ItemType") not in _JELLYFIN_FILES:
        return Hook(event, ignored=True)
    item = _text(_field(body, "ItemId"), "ItemId")
    if not all(c in "0123456789abcdefABCDEF-" for c in item):
        raise BadPayload(f"'ItemId' {item[:40]!r} is not an item id")
    return Hook(event, items=(item,))


def plex(body: Any) -> Hook:
    """Plex's multipart `payload` part: library.new with `Metadata.ratingKey`; the files
    are looked up on the server."""
    event = _text(_field(body, "event"), "event")
    if event != "library.new":
        return Hook(event, ignored=True)
    key = _field(_field(body, "Metadata"), "ratingKey")
    key = _text(str(key) if type(key) is int else key, "Metadata.ratingKey")
    if not key.isdigit():
        raise BadPayload(f"'Metadata.ratingKey' {key[:40]!r} is not a number")
    return Hook(event, items=(key,))


SOURCES: dict[str, Callable[[Any], Hook]] = {
    "sonarr": sonarr_or_radarr, "radarr": sonarr_or_radarr, "emby": emby,
    "tautulli": tautulli, "path": generic, "jellyfin": jellyfin, "plex": plex,
}
# Senders whose body is multipart/form-data, and the part that holds the JSON.
FORM_PARTS = {"emby": "data", "plex": "payload"}


def parse_json(raw: bytes | str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise BadPayload(f"the body is not JSON: {err}") from None


def _field(body: Any, name: str) -> Any:
    if not isinstance(body, dict):
        raise BadPayload(f"expected a JSON object with {name!r}")
    if name not in body:
        raise BadPayload(f"no {name!r} in the payload")
    return body[name]


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadPayload(f"{name!r} is not a non-empty string")
    return value


def _list(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise BadPayload(f"{name!r} is not a list")
    return value
