"""Read what the client is still sending before answering it.

A refusal (a wrong key, a language the model lacks, too many waiting requests) is decided
before the body is read. If the server answered and closed with the body unread, the
kernel would reset the connection, and a reset can destroy the answer before the client
reads it: Bazarr would log "connection reset" instead of our one-line reason. So, as
nginx's lingering close does, the rest of the body is read and dropped first, within
bounds: a body declared larger than `limit_bytes` is not waited for, and a client silent
for `idle_seconds` is not waited for."""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class LingeringClose:
    def __init__(self, app: ASGIApp, *, limit_bytes: int, idle_seconds: float) -> None:
        self.app = app
        self.limit_bytes = limit_bytes
        self.idle_seconds = idle_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ended = False  # the body was read to its end, or the client went away

        async def tracked() -> Message:
            nonlocal ended
            message = await receive()
            ended = ended or not message.get("more_body", False)
            return message

        async def answer(message: Message) -> None:
            nonlocal ended
            # (Not after a 408: that client stopped sending.)
            if message["type"] == "http.response.start" and not ended \
                    and message["status"] != 408:
                ended = True
                await self._drop_rest(scope, receive)
            await send(message)

        await self.app(scope, tracked, answer)

    async def _drop_rest(self, scope: Scope, receive: Receive) -> None:
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit_bytes:
            return
        read = 0
        while read <= self.limit_bytes:
            try:
                message = await asyncio.wait_for(receive(), self.idle_seconds)
            except TimeoutError:
                return
            read += len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body", False):
                return
