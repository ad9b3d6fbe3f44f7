"""The web page at /: what the daemon does now, what comes next, what went wrong (with
Retry and Skip), and what it has done, searchable by path. Served by the daemon's HTTP
server, rendered on the server (Jinja2, every value escaped), readable without
JavaScript; a few lines of it refresh the page every few seconds. Reading it and acting
on it (form posts) follow the access rule of the other endpoints (a trusted network, or
the API key as ?apikey=), and every form carries a token that only the page knows, so
that another site cannot post them from an admin's browser (CSRF)."""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from subtitled import eta
from subtitled.store import STORE_ERRORS, JobStore
from subtitled.web.access import Access
from subtitled.web.replies import check_access, refuse

_ROWS = 50  # per list
_ACTIONS = ("retry", "retry-all", "skip", "pause", "resume")


@dataclass(frozen=True)
class Now:
    """The daemon's state, as it knows it: the job in hand and why work is held."""

    held: list[str]  # a pause by the admin, pauses for faults, each one line
    degraded: list[str]  # watching degraded, a reload that failed
    # A job of this host: its phase and its language once known.
    running_phase: Callable[[int], tuple[str, str | None] | None]
    admin_paused: bool


@dataclass(frozen=True)
class PageServices:
    store: Callable[[], JobStore]
    now: Callable[[], Now]
    pause: Callable[[], str]  # what was done, one line
    resume: Callable[[], str]
    host: str


def routes(services: PageServices, access: Access) -> list[Route]:
    templates = Environment(loader=PackageLoader("subtitled.web"),
                            autoescape=select_autoescape(default=True))
    token = secrets.token_urlsafe(24)  # per process: a page from before a restart is stale

    async def page(request: Request) -> Response:
        check_access(request, access, "page")
        found = request.query_params.get("q", "")[:200]
        try:
            context = await run_in_threadpool(_context, services, found)
        except STORE_ERRORS as err:  # the daemon is paused on it, and says so in /health
            raise refuse(503, "page", f"the job database cannot be read: {err}") from None
        key = request.query_params.get("apikey")
        html = templates.get_template("page.html").render(
            **context, token=token, q=found, apikey=key,
            key=f"?{urlencode({'apikey': key})}" if key else "",
            request_done=request.query_params.get("done", "")[:300],
            refresh=request.query_params.get("refresh", "5"))
        return Response(html, media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-store",
                                 "Content-Security-Policy": _POLICY,
                                 "X-Content-Type-Options": "nosniff",
                                 "Referrer-Policy": "no-referrer"})

    async def subtitle(request: Request) -> Response:
        check_access(request, access, "subtitle")
        job_id = _id(request.path_params["job"], "subtitle")
        job = await run_in_threadpool(lambda: services.store().get_by_id(job_id))
        if job is None or job.output is None:
            raise refuse(404, f"subtitle of job {job_id}", "no such job, or no subtitle")
        try:
            text = await run_in_threadpool(Path(job.output).read_text, "utf-8", "replace")
        except OSError as err:
            raise refuse(404, f"subtitle of job {job_id}",
                         f"cannot read it: {err.strerror or err}") from None
        return PlainTextResponse(text, headers={"X-Content-Type-Options": "nosniff"})

    async def act(request: Request) -> Response:
        action = request.path_params["action"]
        what = f"action {action}"
        check_access(request, access, what)
        if action not in _ACTIONS:
            raise refuse(404, what, f"no such action; the actions are {', '.join(_ACTIONS)}")
        # More than the page's form (files, many fields) is a 400 from Starlette itself.
        form = await request.form(max_files=0, max_fields=8)
        given = str(form.get("token", ""))
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise refuse(403, what, "the form's token is not this page's (reload the page)")
        job = _id(str(form.get("job", "0")), what) if action in ("retry", "skip") else None
        try:
            said = await run_in_threadpool(_act, services, action, job)
        except STORE_ERRORS as err:
            raise refuse(503, what, f"the job database cannot be written: {err}") from None
        back = request.url_for("page").include_query_params(done=said)
        key = request.query_params.get("apikey")
        if key:
            back = back.include_query_params(apikey=key)
        return RedirectResponse(str(back), status_code=303)

    return [Route("/", page, methods=["GET"], name="page"),
            Route("/subtitles/{job}", subtitle, methods=["GET"]),
            Route("/actions/{action}", act, methods=["POST"])]


# Scripts and styles from the page itself only: an escaped path can never run as code.
_POLICY = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; " \
          "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"


def _id(text: str, what: str) -> int:
    if not text.isdigit():
        raise refuse(400, what, f"job {text!r} is not a job number")
    return int(text)


def _act(services: PageServices, action: str, job: int | None) -> str:
    store = services.store()
    if action == "pause":
        return services.pause()
    if action == "resume":
        return services.resume()
    if action == "retry-all":
        return f"queued again: {store.retry()}"
    found = store.get_by_id(job or 0)
    if found is None:
        return f"no job {job}"
    if action == "retry":
        count = store.retry(found.path)
        return f"queued again: {found.path.name}" if count else \
            f"{found.path.name} is running; not queued again"
    done = store.skip(found.id, "skipped from the web page")
    return f"skipped: {found.path.name}" if done else \
        f"{found.path.name} is {found.state}; not skipped"


def _context(services: PageServices, query: str) -> dict[str, Any]:
    store, now = services.store(), services.now()
    counts = store.counts()
    backlog = store.backlog()
    hosts = store.hosts()
    running = []
    for job in store.in_state("running", limit=max(1, len(hosts)) * 4):
        done, total = store.progress(job)
        mine = job.host in (None, services.host) or not hosts
        phase, language = (now.running_phase(job.id) if mine else None) or \
            ("decoding" if done else "starting", job.language)
        running.append({"job": job, "phase": phase, "language": language, "done": done,
                        "total": total,
                        "share": done / total if done is not None and total else None,
                        "elapsed": time.time() - (job.started or time.time())})
    problems = sorted(store.in_state("failed", limit=_ROWS) + store.in_state("dead", limit=_ROWS),
                      key=lambda j: -j.updated)[:_ROWS]
    history = []
    for job, cues in store.history(_ROWS, query):
        factor = (job.audio_seconds or 0) / job.wall_seconds if job.wall_seconds else None
        history.append({"job": job, "cues": cues, "factor": factor})
    return {"counts": counts, "backlog": backlog, "eta_line": backlog.describe(),
            "hosts": hosts, "running": running, "queue": store.next_queued(_ROWS),
            "problems": problems, "history": history, "now": now,
            "flagged": store.flagged(_ROWS), "flagged_count": store.flagged_count(),
            "duration": eta.duration, "host": services.host}
