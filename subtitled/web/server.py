"""One uvicorn server on a thread of the daemon's process, on a socket bound up front (so
that a port in use is the daemon's configuration error, not a log line on a thread)."""

from __future__ import annotations

import logging
import socket
import threading
import time

import uvicorn
from starlette.types import ASGIApp

logger = logging.getLogger(__name__)

# A request still running at shutdown gets this long to finish (then its connection ends).
_GRACE_SECONDS = 5
_START_SECONDS = 10.0


class HttpServer:
    def __init__(self, host: str, port: int, app: ASGIApp) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.create_server((host, port), family=family)
        self.port = int(self._socket.getsockname()[1])
        # uvicorn's own lines (started, stopping) are its business; ours say what matters.
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
        # X-Forwarded-For is believed from a proxy on loopback only, whatever
        # FORWARDED_ALLOW_IPS says: it decides who counts as a trusted network.
        config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False,
                                server_header=False, timeout_graceful_shutdown=_GRACE_SECONDS,
                                proxy_headers=True, forwarded_allow_ips="127.0.0.1,::1")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="http", daemon=True)

    def _serve(self) -> None:
        try:
            self._server.run(sockets=[self._socket])
        except BaseException:  # uvicorn exits on some failures: the daemon goes on
            logger.exception("the HTTP server stopped")

    def start(self) -> None:
        """Returns once the server accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + _START_SECONDS
        while not self._server.started and self._thread.is_alive() \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._server.started:
            self.stop()
            raise OSError("the HTTP server did not start")

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=_GRACE_SECONDS + 5)
        self._socket.close()
