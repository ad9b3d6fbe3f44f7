"""The one-shot `transcribe` command: load the model once, then each file in turn."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from subtitled.config import TranscribeSettings
from subtitled.engines import build_transcriber
from subtitled.errors import SubtitledError
from subtitled.pipeline import Outcome, process_media_file
from subtitled.progress import ProgressBar
from subtitled.wiring import real_tools

logger = logging.getLogger(__name__)


def describe(outcome: Outcome) -> str:
    """The one result line for a file."""
    if outcome.status == "exists":
        return f"{outcome.path}: {outcome.output} already exists (--force replaces it)"
    if outcome.status == "no-speech":
        return f"{outcome.path}: no speech found, no subtitle written " \
               f"({outcome.audio_seconds:.1f} s audio)"
    confidence = f" {outcome.language_confidence:.0%}" if outcome.language_confidence else ""
    return (f"{outcome.path} -> {outcome.output} ({outcome.language}{confidence}, "
            f"{outcome.cue_count} cues, {outcome.audio_seconds:.1f} s audio in "
            f"{outcome.wall_seconds:.1f} s, {outcome.realtime_factor:.1f}x realtime)")


def transcribe(settings: TranscribeSettings, paths: Sequence[Path]) -> int:
    """Returns the exit status: 0 when every file succeeded or was skipped, else 1."""
    transcriber = build_transcriber(settings.model)
    tools = real_tools(settings, transcriber)
    failures = 0
    for path in paths:
        bar = ProgressBar(sys.stderr, path.name) if sys.stderr.isatty() else None
        try:
            outcome = process_media_file(path, settings, tools, bar)
        except SubtitledError as err:
            failures += 1
            _clear(bar)
            print(f"subtitled: error: {err.one_line()}", file=sys.stderr)
            continue
        except Exception:  # a bug must not cost the user the other files
            failures += 1
            _clear(bar)
            logger.exception("%s: unexpected failure", path)
            continue
        _clear(bar)
        logger.info("%s", describe(outcome))
        print(describe(outcome), flush=True)
    return 1 if failures else 0


def _clear(bar: ProgressBar | None) -> None:
    if bar is not None:
        bar.clear()
