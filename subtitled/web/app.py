"""The ASGI app: /health and /metrics for monitors, /webhooks/<sender> for the media stack,
the web page at / (web.page).
Every refusal is a 4xx with a one-line reason; nothing a client sends reaches a
traceback."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from subtitled.config import PathMapping
from subtitled.paths import local_path
from subtitled.web import asr, page, webhooks
from subtitled.web.access import Access
from subtitled.web.asr import AsrServices
from subtitled.web.linger import LingeringClose
from subtitled.web.media_servers import ServerError
from subtitled.web.page import PageServices
from subtitled.web.replies import check_access, refuse
from subtitled.web.upload import MAX_UPLOAD_BYTES, UploadRefused, paced

logger = logging.getLogger(__name__)

# A webhook is a few kB of JSON (Plex adds a poster); more is not a webhook.
MAX_WEBHOOK_BYTES = 16 * 1024 * 1024
# A client that sends nothing for this long in the middle of a body is dropped.
IDLE_CLIENT_SECONDS = 30.0
_TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Services:
    """What the app asks of the daemon."""

    problems: Callable[[], list[str]]  # liveness and pauses, for /health
    metrics: Callable[[], bytes]  # the Prometheus exposition
    queue: Callable[[Path], str | None]  # None when queued, else why not (one line)
    moved: Callable[[Path, Path], str | None]  # a rename: (previous, new), as queue
    access: Access
    path_map: tuple[PathMapping, ...]
    # A Jellyfin or Plex item's files, as this host names them (raises ServerError, or
    # LookupError when no such server is configured).
    item_paths: Callable[[str, str], list[str]] = lambda kind, item: []
    asr: AsrServices | None = None  # Bazarr's provider endpoints
    page: PageServices | None = None  # the web page


def build_app(services: Services) -> Starlette:
    async def health(request: Request) -> Response:
        problems = await run_in_threadpool(services.problems)
        body = "ok\n" if not problems else "\n".join(problems) + "\n"
        return PlainTextResponse(body, 503 if problems else 200, media_type=_TEXT)

    async def metrics(request: Request) -> Response:
        return Response(await run_in_threadpool(services.metrics), 200,
                        media_type="text/plain; version=0.0.4; charset=utf-8")

    async def webhook(request: Request) -> Response:
        return await _webhook(request, services)

    async def refused(request: Request, err: Exception) -> Response:
        assert isinstance(err, HTTPException)
        return PlainTextResponse(f"{err.detail}\n", err.status_code, media_type=_TEXT)

    async def failed(request: Request, err: Exception) -> Response:
        # A bug of ours (logged with its traceback): an empty 500, which no client (Bazarr
        # reads any body of /asr as the subtitle) can take for an answer.
        return Response(status_code=500)

    return Starlette(routes=[
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/webhooks/{source}", webhook, methods=["POST"]),
        *(asr.routes(services.asr, services.access) if services.asr else []),
        *(page.routes(services.page, services.access) if services.page else []),
    ], exception_handlers={HTTPException: refused, Exception: failed},
        middleware=[Middleware(LingeringClose, limit_bytes=MAX_UPLOAD_BYTES,
                               idle_seconds=IDLE_CLIENT_SECONDS)])


async def _webhook(request: Request, services: Services) -> Response:
    source = request.path_params["source"]
    what = f"webhook {source}"
    check_access(request, services.access, what)
    if source not in webhooks.SOURCES:
        raise refuse(404, what, f"no such sender; the senders are "
                                 f"{', '.join(sorted(webhooks.SOURCES))}")
    body = await read_body(request, MAX_WEBHOOK_BYTES, what)
    try:
        part = webhooks.FORM_PARTS.get(source)
        payload = webhooks.parse_json(await _form_part(request, body, part, what)
                                      if part else body)
        hook = webhooks.SOURCES[source](payload)
    except webhooks.BadPayload as err:
        raise refuse(400, what, str(err)) from None
    if hook.test or hook.ignored:
        logger.info("%s: %s event%s", what, hook.event, "" if hook.test else ", nothing to do")
        return JSONResponse({"event": hook.event, "queued": []})
    queued, refused = [], []
    paths = [local_path(sent, services.path_map) for sent in hook.paths]
    for item in hook.items:
        paths += await _looked_up(services, source, item, what)
    before = [Path(local_path(sent, services.path_map)) for sent in hook.renamed_from]
    for index, found in enumerate(paths):
        path = Path(found)
        reason = await run_in_threadpool(services.moved, before[index], path) \
            if before else await run_in_threadpool(services.queue, path)
        if reason is None:
            logger.info("%s: %s queued", what, path)
            queued.append(str(path))
        else:
            logger.warning("%s: %s: %s", what, path, reason)
            refused.append(f"{path}: {reason}")
    if not queued:
        raise HTTPException(422, "; ".join(refused))
    return JSONResponse({"event": hook.event, "queued": queued, "refused": refused}, 202)


async def _looked_up(services: Services, kind: str, item: str, what: str) -> list[str]:
    try:
        return await run_in_threadpool(services.item_paths, kind, item)
    except LookupError as err:
        raise refuse(422, what, str(err)) from None
    except ServerError as err:
        raise refuse(502, what, f"item {item}: {err}") from None


async def read_body(request: Request, limit_bytes: int, what: str) -> bytes:
    """The whole body, at most `limit_bytes`, from a client that keeps sending."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit_bytes):
        raise refuse(413, what, f"a body of {declared} bytes; at most {limit_bytes}")
    chunks, size = [], 0
    try:
        async for chunk in paced(request.stream(), IDLE_CLIENT_SECONDS):
            size += len(chunk)
            if size > limit_bytes:
                raise refuse(413, what, f"a body of more than {limit_bytes} bytes")
            chunks.append(chunk)
    except UploadRefused as err:
        raise refuse(err.status, what, err.reason) from None
    return b"".join(chunks)


async def _form_part(request: Request, body: bytes, name: str, what: str) -> str:
    """A text part of a multipart/form-data body."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise refuse(415, what, f"expected multipart/form-data with a {name!r} part")

    async def once() -> AsyncGenerator[bytes, None]:
        yield body

    try:
        form = await MultiPartParser(request.headers, once(), max_files=4,
                                     max_fields=64).parse()
    except MultiPartException as err:
        raise refuse(400, what, f"a malformed multipart body: {err.message}") from None
    value = form.get(name)
    if not isinstance(value, str):
        raise refuse(400, what, f"no {name!r} text part in the form")
    return value
