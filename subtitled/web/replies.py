"""Refusals as every endpoint gives them: a 4xx with a one-line reason, logged with the
request it answers; and the access check before any work is queued."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request

from subtitled.web.access import Access

logger = logging.getLogger("subtitled.web")


def refuse(status: int, what: str, reason: str) -> HTTPException:
    logger.warning("%s: refused (%d): %s", what, status, reason)
    return HTTPException(status, reason)


def check_access(request: Request, access: Access, what: str) -> None:
    client = request.client.host if request.client else None
    refusal = access.refusal(client, request.headers, request.query_params)
    if refusal is not None:
        raise refuse(refusal[0], f"{what} from {client}", refusal[1])
