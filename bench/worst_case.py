"""The worst case: hard audio (espeak-ng speech in low-resource languages, clean and under
loud pink noise), each clip through subtitled (its auto settings) and through the engine's
own `transcribe` with the same weights and its defaults (openai-whisper's
`whisper.transcribe`, faster-whisper's `WhisperModel.transcribe`): wall time and windows
decoded (every decode of a 30 s window, every temperature of the fallback counted).

    .venv/bin/python -m bench.worst_case [--model base] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import voices
from subtitled.config import ModelSettings, TranscribeSettings
from subtitled.engines import Transcriber, build_transcriber, on_a_thread_that_ends
from subtitled.pipeline import process_media_file
from subtitled.wiring import real_tools

HARD_LANGUAGES = ("te", "ta", "bn", "hi", "ko", "sw")


def hard_clips(workdir: Path, languages: tuple[str, ...] = HARD_LANGUAGES) -> list[Path]:
    """Each language spoken by espeak-ng, clean and under pink noise about as loud."""
    workdir.mkdir(parents=True, exist_ok=True)
    clips = []
    for language in languages:
        clean = voices.speak(voices.BY_LANGUAGE[language], workdir / f"{language}.wav")
        noisy = workdir / f"{language}-noise.wav"
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(clean), "-f",
                        "lavfi", "-i", "anoisesrc=color=pink:amplitude=0.3:sample_rate=16000",
                        "-filter_complex", "[0][1]amix=inputs=2:duration=first:normalize=0",
                        "-ac", "1", "-ar", "16000", str(noisy)], check=True)
        clips += [clean, noisy]
    return clips


class Windows:
    """Counts the windows an engine decodes while `counting()`."""

    def __init__(self) -> None:
        self.count = 0

    @contextlib.contextmanager
    def counting(self, transcriber: Transcriber) -> Iterator[Windows]:
        model: Any = getattr(transcriber, "model")  # noqa: B009 - both engines have one
        self.count = 0
        if hasattr(model, "feature_extractor"):  # faster-whisper: CTranslate2's generate
            ct2 = model.model
            model.model = _CountedGenerate(ct2, self)
            try:
                yield self
            finally:
                model.model = ct2
            return
        from whisper.decoding import DecodingTask

        run = DecodingTask.run

        def counted(task: Any, mel: Any) -> Any:
            self.count += int(mel.shape[0])
            return run(task, mel)

        DecodingTask.run = counted
        try:
            yield self
        finally:
            DecodingTask.run = run


class _CountedGenerate:
    def __init__(self, model: Any, windows: Windows) -> None:
        self._model, self._windows = model, windows

    def generate(self, features: Any, prompts: Any, *args: Any, **options: Any) -> Any:
        self._windows.count += len(prompts)
        return self._model.generate(features, prompts, *args, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def subtitled_run(path: Path, transcriber: Transcriber) -> tuple[float, int]:
    """(wall seconds, windows) for one file through the whole pipeline."""
    settings = TranscribeSettings()
    settings = replace(settings, output=replace(settings.output, overwrite=True))
    windows = Windows()
    started = time.monotonic()
    with windows.counting(transcriber):
        process_media_file(path, settings, real_tools(settings, transcriber))
    return time.monotonic() - started, windows.count


def engine_run(path: Path, transcriber: Transcriber) -> tuple[float, int]:
    """(wall seconds, windows) for the engine's own transcribe, its defaults. On a thread
    that ends, as subtitled's engine calls run: torch's OpenMP team left on the main
    thread would slow every later call on other threads (subtitled.engines)."""
    model: Any = getattr(transcriber, "model")  # noqa: B009

    def run() -> None:
        if hasattr(model, "feature_extractor"):
            segments, _ = model.transcribe(str(path))
            list(segments)
        else:
            import whisper

            whisper.transcribe(model, str(path), fp16=False)

    windows = Windows()
    started = time.monotonic()
    with windows.counting(transcriber):
        on_a_thread_that_ends(run)
    return time.monotonic() - started, windows.count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="base")
    parser.add_argument("--workdir", type=Path, default=Path("bench/results/worst-case"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    clips = hard_clips(args.workdir.resolve())
    print("| engine | clip | subtitled s | engine's own s | time ratio | subtitled windows "
          "| engine's own windows |")
    print("|---|---|---|---|---|---|---|")
    for engine in ("openai-whisper", "faster-whisper"):
        transcriber = build_transcriber(ModelSettings(
            name=args.model, engine=engine, device="cpu", offline=True))
        engine_run(clips[0], transcriber)  # warm up: the first call pays for allocations
        worst = 0.0
        for clip in clips:
            ours, ours_windows = subtitled_run(clip, transcriber)
            own, own_windows = engine_run(clip, transcriber)
            worst = max(worst, ours / own)
            print(f"| {engine} | {clip.name} | {ours:.1f} | {own:.1f} | {ours / own:.2f} | "
                  f"{ours_windows} | {own_windows} |", flush=True)
        print(f"| {engine} | worst | | | {worst:.2f} | | |", flush=True)


if __name__ == "__main__":
    main()
