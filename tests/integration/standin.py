"""A local HTTP server standing in for Jellyfin, Emby or Plex (which cannot be installed
here): it records every request exactly as it arrived and answers as it is told."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    method: str
    target: str  # path and query, as sent
    headers: dict[str, str]
    body: bytes


class StandIn:
    """Answers `status` (204 by default) to everything, or `replies[path]` (a JSON body
    with 200) to a path it knows."""

    def __init__(self, status: int = 204, replies: dict[str, Any] | None = None) -> None:
        self.status, self.replies = status, replies or {}
        self.received: list[Received] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                stand_in.received.append(Received(self.command, self.path,
                                                  dict(self.headers.items()),
                                                  self.rfile.read(length)))
                known = stand_in.replies.get(self.path.split("?")[0])
                body = json.dumps(known).encode() if known is not None else b""
                self.send_response(200 if known is not None else stand_in.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="stand-in")

    def __enter__(self) -> StandIn:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()
