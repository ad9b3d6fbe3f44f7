"""Jellyfin, Emby and Plex as the daemon talks to them: each call their documentation names
(../shared/integrations.md) built as data, and the one place they are sent."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from subtitled.config import MediaServer
from subtitled.errors import ConfigError
from subtitled.paths import local_path
from subtitled.web.access import read_token

_TIMEOUT_SECONDS = 15.0


class ServerError(Exception):
    """The server did not answer, or not with what was asked; the message is one line."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status it answered, if it answered


@dataclass(frozen=True)
class Call:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None


def describe(server: MediaServer) -> str:
    return f"{server.kind} {server.url}"


# --- the calls, as data ----------------------------------------------------------------


def media_updated(server: MediaServer, token: str, path: str) -> Call:
    """Jellyfin's and Emby's POST /Library/Media/Updated: the video's path as the server
    names it; the server refreshes the item that holds it."""
    body = {"Updates": [{"Path": path, "UpdateType": "Modified"}]}
    return Call("POST", f"{server.url}/Library/Media/Updated",
                {**_auth(server, token), "Content-Type": "application/json"},
                json.dumps(body).encode())


def plex_sections(server: MediaServer, token: str) -> Call:
    return Call("GET", f"{server.url}/library/sections", _auth(server, token))


def plex_section_for(sections: Any, folder: str) -> str | None:
    """The key of the library section whose location holds `folder` (the longest)."""
    try:
        directories = sections["MediaContainer"]["Directory"]
        places = [(str(location["path"]).rstrip("/"), str(directory["key"]))
                  for directory in directories for location in directory.get("Location", [])]
    except (KeyError, TypeError, AttributeError):
        return None
    holding = [(len(place), key) for place, key in places
               if folder == place or folder.startswith(place + "/")]
    return max(holding)[1] if holding else None


def plex_partial_scan(server: MediaServer, token: str, section: str, folder: str) -> Call:
    """Plex scans one folder of one section: the video's, not the whole library."""
    return Call("GET", f"{server.url}/library/sections/{section}/refresh?"
                       f"{urlencode({'path': folder})}", _auth(server, token))


def identity(server: MediaServer, token: str) -> Call:
    """A call that needs the token and changes nothing, for `subtitled doctor`."""
    if server.kind == "plex":
        return plex_sections(server, token)
    return Call("GET", f"{server.url}/System/Info", _auth(server, token))


# --- the one place they are sent ---------------------------------------------------------


def send(call: Call) -> bytes:
    request = urllib.request.Request(call.url, data=call.body, headers=call.headers,
                                     method=call.method)
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_SECONDS) as reply:
            return bytes(reply.read())
    except urllib.error.HTTPError as err:
        raise ServerError(f"{call.method} {call.url.split('?')[0]} answered {err.code} "
                            f"{err.reason}", err.code) from err
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise ServerError(f"{call.method} {call.url.split('?')[0]}: {reason}") from err




# --- what a webhook's item is: the path its server knows ---------------------------------


def _auth(server: MediaServer, token: str) -> dict[str, str]:
    if server.kind == "plex":
        return {"X-Plex-Token": token, "Accept": "application/json"}
    if server.kind == "jellyfin":
        return {"Authorization": f'MediaBrowser Token="{token}"'}
    return {"X-Emby-Token": token}


def jellyfin_users(server: MediaServer, token: str) -> Call:
    return Call("GET", f"{server.url}/Users", _auth(server, token))


def jellyfin_item(server: MediaServer, token: str, item: str, user: str) -> Call:
    """An API key has no user of its own: the item is read as `user` (an administrator)."""
    return Call("GET", f"{server.url}/Items/{quote(item, safe='')}?"
                       f"{urlencode({'userId': user})}", _auth(server, token))


def plex_metadata(server: MediaServer, token: str, key: str, leaves: bool = False) -> Call:
    """An item's metadata; with `leaves`, that of every episode under a show or season."""
    return Call("GET", f"{server.url}/library/metadata/{quote(key, safe='')}"
                       f"{'/allLeaves' if leaves else ''}", _auth(server, token))


def jellyfin_administrator(users: Any) -> str | None:
    """The first administrator's id (any user's, if none says so)."""
    if not isinstance(users, list):
        return None
    ids = [(not bool((u.get("Policy") or {}).get("IsAdministrator")), str(u["Id"]))
           for u in users if isinstance(u, dict) and u.get("Id")]
    return min(ids)[1] if ids else None


def plex_files(metadata: Any) -> list[str]:
    """Every file of every part of every item in a MediaContainer."""
    try:
        items = metadata["MediaContainer"].get("Metadata", [])
        return [str(part["file"]) for item in items for media in item.get("Media", [])
                for part in media.get("Part", []) if part.get("file")]
    except (KeyError, TypeError, AttributeError):
        return []


def item_paths(server: MediaServer, token: str, item: str) -> list[str]:
    """The files of a Jellyfin or Plex item, as the server names them."""
    if server.kind == "jellyfin":
        user = jellyfin_administrator(json_of(jellyfin_users(server, token)))
        if user is None:
            raise ServerError(f"{describe(server)} has no user to look items up as")
        found = json_of(jellyfin_item(server, token, item, user))
        path = found.get("Path") if isinstance(found, dict) else None
        if not isinstance(path, str) or not path:
            raise ServerError(f"{describe(server)}: item {item} has no file")
        return [path]
    files = plex_files(json_of(plex_metadata(server, token, item)))
    # A show or a season added at once: its episodes.
    files = files or plex_files(json_of(plex_metadata(server, token, item, leaves=True)))
    if not files:
        raise ServerError(f"{describe(server)}: item {item} has no file")
    return files


def json_of(call: Call) -> Any:
    """The call's answer, read as JSON."""
    try:
        return json.loads(send(call))
    except ValueError as err:
        raise ServerError(f"{call.method} {call.url.split('?')[0]}: not JSON: {err}") from err


class ItemPaths:
    """Looks webhook items up on the first configured server of the sender's kind."""

    def __init__(self, servers: tuple[MediaServer, ...]) -> None:
        self._servers = servers

    def __call__(self, kind: str, item: str) -> list[str]:
        server = next((s for s in self._servers if s.kind == kind), None)
        if server is None:
            raise LookupError(f"a {kind} webhook names an item, not a file: add the {kind} "
                              "server to media_servers so that its path can be looked up")
        try:
            token = read_token(server.token_file)
        except ConfigError as err:  # it was there at the start
            raise ServerError(err.message) from err
        return [local_path(path, server.path_map) for path in item_paths(server, token, item)]
