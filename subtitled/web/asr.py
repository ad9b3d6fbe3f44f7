"""Bazarr's Whisper provider (`whisperai`), served as whisper-asr-webservice serves it:
GET /status, and POST /asr and /detect-language with the whole file's audio in the
multipart part `audio_file` (raw 16 kHz PCM with encode=false). The work goes through the
daemon's queue ahead of the library, and the request waits for it; identical requests
share one job. Bazarr takes any body of /asr for the subtitle, so a failure of the work is
a non-2xx with an empty body; a request it should not have sent gets a 4xx and a line."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from subtitled import languages
from subtitled.config import TASKS
from subtitled.service.requests import Request as Work
from subtitled.service.requests import RequestKind
from subtitled.store import Job
from subtitled.web.access import Access
from subtitled.web.replies import check_access, refuse
from subtitled.web.upload import UploadRefused, drain, receive

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.25
# Requests waiting at once; more get a 503 (each may hold gigabytes of spooled audio).
MAX_WAITING_REQUESTS = 8
# Room left in the state directory after an upload: the job store needs it.
_RESERVE_BYTES = 1 << 30
_GONE = "its job is gone (its file vanished before it was worked on)"
_TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class AsrServices:
    folder: Path  # where uploads are spooled, in the state directory
    submit: Callable[[Path, Work], None]  # queue it (an identical one shares the job)
    job: Callable[[Path], Job | None]
    finished: Callable[[Path], None]  # answered: the job and its files go
    stopping: Callable[[], bool]
    # Bazarr's video_file as a file here, inside a watched folder, or None; and the
    # subtitle already written for such a file in a language (None: its own), if any.
    video: Callable[[str], Path | None]
    subtitle_of: Callable[[Path, str | None], str | None]
    version: str
    idle_client_seconds: float
    # Why the model in use cannot do it (an English-only model asked for German), or None.
    cannot: Callable[[Work], str | None] = lambda work: None
    # Why no work is taken now (`subtitled pause`, a fault that pauses everything), or None.
    held: Callable[[], str | None] = lambda: None


@dataclass
class _Waiting:
    """The requests waiting on each spool file's job, and a lock per file that its making
    and its removal take (all on the server's one event loop)."""

    count: dict[Path, int] = field(default_factory=dict)
    locks: dict[Path, asyncio.Lock] = field(default_factory=dict)

    def total(self) -> int:
        return sum(self.count.values())


def routes(services: AsrServices, access: Access) -> list[Route]:
    waiting = _Waiting()

    async def status(request: Request) -> Response:
        return JSONResponse({"version": services.version})

    async def asr(request: Request) -> Response:
        return await _serve(request, "asr", services, access, waiting)

    async def detect(request: Request) -> Response:
        return await _serve(request, "detect", services, access, waiting)

    return [Route("/status", status, methods=["GET"]),
            Route("/asr", asr, methods=["POST"]),
            Route("/detect-language", detect, methods=["POST"])]


def asked(request: Request, kind: RequestKind, what: str) -> tuple[Work, bool]:
    """The work the query asks for, and whether the audio comes encoded (any container)
    or as raw PCM (encode=false)."""
    query = request.query_params
    encode = query.get("encode", "true").lower()
    task = query.get("task", "transcribe")
    output = query.get("output", "srt")
    if encode not in ("true", "false"):
        raise refuse(400, what, f"encode={encode!r}: true or false")
    if task not in TASKS:
        raise refuse(400, what, f"task={task!r}: transcribe or translate")
    if kind == "asr" and output != "srt":
        raise refuse(400, what, f"output={output!r}: this server answers srt")
    code = query.get("language") or None
    language = None
    if code is not None:
        language = languages.from_whisper(code) if code in languages.WHISPER_LANGUAGES \
            else languages.normalize(code)
        if language is None or not languages.whisper_knows(language):
            raise refuse(400, what, f"language={code!r} is not a language Whisper knows")
    return Work(kind, task, language), encode == "true"


async def _serve(request: Request, kind: RequestKind, services: AsrServices, access: Access,
                 waiting: _Waiting) -> Response:
    video_file = request.query_params.get("video_file")
    what = f"{request.url.path}" + (f" for {video_file!r}" if video_file else "")
    check_access(request, access, what)
    work, encoded = asked(request, kind, what)
    impossible = services.cannot(work)
    if impossible is not None:
        raise refuse(400, what, impossible)
    if waiting.total() >= MAX_WAITING_REQUESTS:
        raise refuse(503, what, f"{waiting.total()} requests wait already; ask again later")
    await run_in_threadpool(_room_for, request, services.folder, what)
    video = await run_in_threadpool(services.video, video_file) if video_file else None
    try:
        if video is None:
            upload = await receive(request, "audio_file", services.folder,
                                   raw_pcm=not encoded, idle_seconds=services.idle_client_seconds)
        else:  # the file itself is read, with the daemon's own choice of track
            await drain(request, "audio_file", raw_pcm=not encoded,
                        idle_seconds=services.idle_client_seconds)
    except UploadRefused as err:
        raise refuse(err.status, what, err.reason) from None
    if video is not None and work.kind == "asr" and work.task == "transcribe":
        ours = await run_in_threadpool(services.subtitle_of, video, work.language)
        if ours is not None:
            logger.info("%s: answered with the subtitle already written for it", what)
            return PlainTextResponse(ours, media_type=_TEXT)
    # Named by what was sent and asked: an identical request finds the same job.
    sent = hashlib.sha256(str(video).encode()).hexdigest() if video else upload.sha256
    source = f"video{video.suffix}" if video else "media" if encoded else "wav"
    path = services.folder / (f"{sent[:40]}.{work.kind}.{work.task}."
                              f"{work.language or 'auto'}.{source}")
    waiting.count[path] = waiting.count.get(path, 0) + 1
    lock = waiting.locks.setdefault(path, asyncio.Lock())
    try:
        async with lock:  # not while an identical request's answer is being cleared away
            await run_in_threadpool(_spool, path, video, None if video else upload.path,
                                    services.folder)
            await run_in_threadpool(services.submit, path, work)
        logger.info("%s: queued (%s)", what, f"from {video}" if video else
                    f"{upload.size_bytes / 1e6:.1f} MB of audio")
        ended = await _finished(path, services, request)
        if isinstance(ended, str):
            logger.warning("%s: not answered: %s", what, ended)
            return Response(status_code=503 if ended != _GONE else 500)
        return await run_in_threadpool(_answer, ended, work, what)
    finally:
        waiting.count[path] -= 1
        if not waiting.count[path]:
            async with lock:
                if not waiting.count[path]:  # nobody came for it meanwhile
                    await run_in_threadpool(services.finished, path)
                    del waiting.count[path], waiting.locks[path]


def _room_for(request: Request, folder: Path, what: str) -> None:
    """Refuse an upload the state directory has no room for (a full state directory
    would pause the whole library)."""
    declared = request.headers.get("content-length", "")
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if declared.isdigit() and int(declared) + _RESERVE_BYTES > free:
        raise refuse(507, what, f"{int(declared) / 1e9:.1f} GB to spool and "
                                f"{free / 1e9:.1f} GB free in {folder}")


def _spool(path: Path, video: Path | None, upload: Path | None, folder: Path) -> None:
    """The job's file: the upload under its name, or a link to the library file."""
    if upload is not None:
        upload.unlink() if path.exists() else upload.rename(path)
    elif video is not None and not path.is_symlink():
        folder.mkdir(parents=True, exist_ok=True)
        path.symlink_to(video)


async def _finished(path: Path, services: AsrServices, request: Request) -> Job | str:
    """The job once it has ended, or why the request is not answered: the daemon stops,
    or is paused, the job is gone, or the client left."""
    while True:
        if services.stopping():
            return "the daemon is stopping"
        held = services.held()
        if held is not None:
            return held
        job = await run_in_threadpool(services.job, path)
        if job is None:
            return _GONE
        if job.state in ("done", "skipped", "failed", "dead"):
            return job
        if await request.is_disconnected():
            return "the client went away"
        await asyncio.sleep(_POLL_SECONDS)


def _answer(job: Job, work: Work, what: str) -> Response:
    if job.state in ("failed", "dead"):
        logger.warning("%s: failed: %s", what, job.last_error)
        return Response(status_code=500)  # empty: Bazarr would take a body for a subtitle
    if work.kind == "detect":
        if job.state != "done" or job.language is None:  # no speech
            return JSONResponse({"detected_language": "undetermined",
                                 "language_code": "und", "confidence": 0.0})
        code = languages.to_whisper(job.language)
        return JSONResponse({"detected_language": languages.WHISPER_LANGUAGE_NAMES[code],
                             "language_code": code, "confidence": job.confidence or 0.0})
    if job.written_path is None:  # no speech: no cues
        return PlainTextResponse("", media_type=_TEXT)
    try:
        text = Path(job.written_path).read_text(encoding="utf-8")
    except OSError as err:
        logger.warning("%s: its subtitle cannot be read: %s", what, err)
        return Response(status_code=500)
    return PlainTextResponse(text, media_type=_TEXT)
