"""Where the time of one `subtitled transcribe` goes, stage by stage, with the faster-whisper
engine at its auto settings: probe, the language sample, the encoder passes, the search
(greedy or beam), the word alignment, cue shaping and writing; extraction and speech
detection run in a thread ahead of the model, and what the model waited for them is shown.

    .venv/bin/python -m bench.stages [--programme dense-en] [--minutes 10] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import collections
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import programme
from subtitled import cues, prefetch
from subtitled.config import ModelSettings, TranscribeSettings
from subtitled.engines import build_transcriber
from subtitled.pipeline import job, process_media_file
from subtitled.wiring import real_tools

Seconds = collections.defaultdict[str, float]


def _timed(spent: Seconds, stage: str, call: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **options: Any) -> Any:
        started = time.monotonic()
        try:
            return call(*args, **options)
        finally:
            spent[stage] += time.monotonic() - started
    return wrapper


class _TimedCT2:
    """The CTranslate2 model with its encoder, search and alignment timed."""

    def __init__(self, model: Any, spent: Seconds) -> None:
        self._model = model
        self.encode = _timed(spent, "encoder passes", model.encode)
        self.generate = _timed(spent, "search (decoder)", model.generate)
        self.align = _timed(spent, "word alignment", model.align)
        self.detect_language = _timed(spent, "language detection", model.detect_language)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--programme", choices=programme.KINDS, default="dense-en")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--model", default="base")
    parser.add_argument("--workdir", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    media = args.workdir.resolve() / f"programme-{args.programme}-{args.minutes:g}min.mkv"
    programme.build(media, args.minutes, kind=args.programme)
    spent: Seconds = collections.defaultdict(float)
    started = time.monotonic()
    transcriber = build_transcriber(ModelSettings(name=args.model, engine="faster-whisper",
                                                  offline=True))
    spent["model load"] = time.monotonic() - started
    model: Any = getattr(transcriber, "model")  # noqa: B009
    model.model = _TimedCT2(model.model, spent)
    settings = TranscribeSettings()
    settings = replace(settings, output=replace(settings.output, overwrite=True))
    tools = real_tools(settings, transcriber)
    tools = replace(tools, probe=_timed(spent, "probe", tools.probe),
                    write=_timed(spent, "writing", tools.write))
    job.shape_cues = _timed(spent, "cue shaping", cues.shape_cues)  # type: ignore[attr-defined]
    prefetch.Prefetch._next = _timed(  # type: ignore[method-assign]
        spent, "waiting for extraction and VAD", prefetch.Prefetch._next)
    begun = time.monotonic()
    outcome = process_media_file(media, settings, tools)
    job_seconds = time.monotonic() - begun
    inside = sum(v for k, v in spent.items() if k != "model load")
    spent["the rest (filters, second pass bookkeeping, checkpoints, features)"] = \
        job_seconds - inside
    print(f"{args.programme}, {outcome.audio_seconds:.0f} s of audio, "
          f"{outcome.windows_decoded} windows decoded, job {job_seconds:.1f} s "
          f"(+ model load {spent['model load']:.1f} s)")
    print()
    print("| stage | seconds | share of the job |")
    print("|---|---|---|")
    for stage, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        if stage != "model load":
            print(f"| {stage} | {seconds:.1f} | {seconds / job_seconds:.0%} |")


if __name__ == "__main__":
    main()
