"""Work a client asked for over HTTP (Bazarr's Whisper provider): what it asked, as the job
row keeps it, the settings it runs with, and a detection on its own."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

from subtitled import media
from subtitled.config import Task, TranscribeSettings
from subtitled.engines.base import Transcriber
from subtitled.pipeline import Tools
from subtitled.pipeline.engine_calls import Alive
from subtitled.pipeline.sampling import sample_language
from subtitled.pipeline.tools import Outcome
from subtitled.store import Fingerprint, JobStore
from subtitled.subtitles import is_review

RequestKind = Literal["asr", "detect"]
# Uploads that clients wait for, in the state directory; their jobs come before every
# watched root's (whose priorities go up to 100).
REQUESTS_FOLDER = "requests"
PRIORITY_REQUESTS = 101

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    kind: RequestKind
    task: Task = "transcribe"
    language: str | None = None  # ISO 639-1; None: detected

    def dumps(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def loads(cls, text: str) -> Request:
        return cls(**json.loads(text))


def settings_for(settings: TranscribeSettings, request: Request) -> TranscribeSettings:
    """The library's settings, with what the client asked: its language (or detection,
    over the whole upload), its task, and none of the library's reasons to skip a file
    (the client wants this one); a likely bad subtitle is flagged, never held back (the
    client judges what it gets: Bazarr scores subtitles itself). It gets the one subtitle
    it asked for: no translation, forced subtitle or other track's subtitle beside it."""
    language = replace(settings.language, language=request.language or "auto",
                       task=request.task, mode="vote", allowed=(), trust_track_tags=False,
                       also_translate=False, forced_subtitles=False,
                       each_audio_language=False)
    skip = replace(settings.skip, existing_sidecar=False, embedded_text_subtitles=False,
                   marker_file="", min_duration_seconds=0.0, audio_languages=())
    output = replace(settings.output, template="{stem}.{lang}.srt", overwrite=True,
                     formats=("srt",))
    # In a library file, the track in the language asked for (Bazarr asks per language).
    tracks = (request.language, *settings.preferred_audio_languages) if request.language \
        else settings.preferred_audio_languages
    quality = replace(settings.quality, gate="off" if settings.quality.gate == "off"
                      else "flag")
    return replace(settings, language=language, skip=skip, output=output, quality=quality,
                   preferred_audio_languages=tracks)


def tools_for(tools: Tools, settings: TranscribeSettings) -> Tools:
    """The daemon's tools, with the track chosen by the request's settings."""
    def probe(path: Path) -> media.MediaInfo:
        return media.probe(path, settings.preferred_audio_languages,
                           timeout_seconds=settings.stall_seconds)

    return replace(tools, probe=probe)


def detect(path: Path, settings: TranscribeSettings, tools: Tools, alive: Alive) -> Outcome:
    """The file's language by the daemon's vote over windows spread over all of it."""
    started = time.monotonic()
    media = tools.probe(path)
    guess = sample_language(path, media, settings, tools, (), alive)
    audio = media.duration_seconds or 0.0
    return Outcome(path, "detected" if guess else "no-speech", None,
                   guess.iso_code if guess else None, guess.confidence if guess else None,
                   0, audio, 0.0, time.monotonic() - started)


class Requests:
    """The requests' jobs in the store, and their files in the state directory."""

    def __init__(self, store: JobStore, folder: Path) -> None:
        self.store, self.folder = store, folder

    def submit(self, path: Path, request: Request) -> None:
        self.store.enqueue_request(path, Fingerprint.of(path), request.dumps())

    def answered(self, path: Path) -> None:
        """A client has its answer: the request's job and files go."""
        job = self.store.get(path)
        if job is not None and job.state != "running":
            self.store.forget(job)
        for file in (path, *([Path(job.written_path)] if job and job.written_path else [])):
            file.unlink(missing_ok=True)

    def subtitle_of(self, video: Path, language: str | None) -> str | None:
        """The subtitle already written for a library file, in `language` (None: in the
        file's own), if there is one and it is an SRT (what Bazarr is answered); not one
        written for review or held back (quality.gate), nor an older one left behind."""
        job = self.store.get(video)
        if job is None or job.state != "done" or job.written_path is None or \
                job.output != job.written_path or \
                (language is not None and job.language != language) or \
                Path(job.written_path).suffix.lower() != ".srt" or \
                is_review(Path(job.written_path)):
            return None
        try:
            return Path(job.written_path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def drop(self) -> None:
        """Requests of a process that ended: nobody waits for them any more."""
        dropped = self.store.drop_requests(self.folder)
        for leftover in self.folder.glob("*") if self.folder.is_dir() else ():
            leftover.unlink(missing_ok=True)
        if dropped:
            logger.info("dropped %d requests of the last run; their clients have gone",
                        len(dropped))


def cannot(transcriber: Transcriber | None, request: Request) -> str | None:
    """Why the model in use cannot do what a client asks, or None."""
    if transcriber is None or transcriber.multilingual:
        return None
    if request.task == "translate":
        return f"{transcriber.description} knows only English: it cannot translate"
    if request.language not in (None, "en"):
        return f"{transcriber.description} knows only English, not {request.language}"
    return None
