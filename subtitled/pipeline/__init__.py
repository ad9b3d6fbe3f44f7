"""One media file → one subtitle file. Imports none of ffmpeg, whisper or torch: the probe,
the audio source, the transcriber and the writer are passed in (`Tools`).

The parts: `job` (the order of things), `sampling` (the file's language), `decoder` (speech
chunks → words, in batches), `engine_calls` (engine calls the caller can watch and stop),
`checkpoints` (decoded words kept between batches).
"""

from __future__ import annotations

import time
from pathlib import Path

from subtitled.config import TranscribeSettings
from subtitled.errors import SubtitledError
from subtitled.pipeline.decoder import skipped_pieces
from subtitled.pipeline.job import MediaJob
from subtitled.pipeline.tools import (
    Checkpoints,
    Hooks,
    OpenAudio,
    Outcome,
    Probe,
    Progress,
    Resume,
    Role,
    Status,
    Tools,
    Write,
)

__all__ = ["Checkpoints", "Hooks", "OpenAudio", "Outcome", "Probe", "Progress", "Resume",
           "Role", "Status", "Tools", "Write", "process_media_file", "skipped_pieces"]


def process_media_file(path: Path, settings: TranscribeSettings, tools: Tools,
                       hooks: Hooks | None = None) -> Outcome:
    """Transcribe one file and write its subtitle, or say why not (SubtitledError)."""
    started = time.monotonic()
    try:
        return MediaJob(path, settings, tools, hooks or Hooks(), started).run()
    except SubtitledError as err:
        if err.path is None:
            err.path = path
        raise
