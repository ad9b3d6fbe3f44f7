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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from subtitled import languages
from subtitled.config import TASKS
from subtitled.jobs import Job
from subtitled.service.requests import Request as Work
from subtitled.service.requests import RequestKind
from subtitled.web.access import Access
from subtitled.web.replies import check_access, refuse
from subtitled.web.upload import UploadRefused, drain, receive

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.25
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


def routes(services: AsrServices, access: Access) -> list[Route]:
    waiting: dict[Path, int] = {}  # requests waiting on each upload's job

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
                 waiting: dict[Path, int]) -> Response:
    video_file = request.query_params.get("video_file")
    what = f"{request.url.path}" + (f" for {video_file}" if video_file else "")
    check_access(request, access, what)
    work, encoded = asked(request, kind, what)
    impossible = services.cannot(work)
    if impossible is not None:
        raise refuse(400, what, impossible)
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
    waiting[path] = waiting.get(path, 0) + 1
    try:
        if video is None:
            upload.path.unlink() if path.exists() else upload.path.rename(path)
        elif not path.is_symlink():
            services.folder.mkdir(parents=True, exist_ok=True)
            path.symlink_to(video)
        logger.info("%s: queued (%s)", what, f"from {video}" if video else
                    f"{upload.size_bytes / 1e6:.1f} MB of audio")
        await run_in_threadpool(services.submit, path, work)
        job = await _finished(path, services)
        if job is None:
            logger.warning("%s: not answered: the daemon is stopping", what)
            return Response(status_code=503)
        return await run_in_threadpool(_answer, job, work, what)
    finally:
        waiting[path] -= 1
        if not waiting[path]:
            del waiting[path]
            await run_in_threadpool(services.finished, path)


async def _finished(path: Path, services: AsrServices) -> Job | None:
    """The job once it has ended; None when the daemon stops first."""
    while not services.stopping():
        job = await run_in_threadpool(services.job, path)
        if job is not None and job.state in ("done", "skipped", "failed", "dead"):
            return job
        await asyncio.sleep(_POLL_SECONDS)
    return None


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
