"""Language identification, clip by clip: subtitled's detection (both engines, as the
daemon runs it) against Whisper's own `detect_language` on the first 30 s in full
precision (openai-whisper, FP32), with the same weights, and against the truth.

    .venv/bin/python -m bench.languages [--model base] [--workdir DIR]

Clips: every corpus clip of at least 2 s with speech, and espeak-ng speech (bench.voices)
in every language it has a text for. Prints a table per clip and a summary per language.
"""

from __future__ import annotations

import argparse
import logging
import platform
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from bench import programme, voices
from subtitled.config import ModelSettings, TranscribeSettings
from subtitled.engines import Transcriber, build_transcriber
from subtitled.pipeline.sampling import sample_language
from subtitled.wiring import real_tools

ENGINES = ("openai-whisper", "faster-whisper")


@dataclass(frozen=True)
class Clip:
    path: Path
    truth: tuple[str, ...]  # Whisper codes; a mixed clip counts either
    kind: str  # corpus | espeak-ng


def clips(workdir: Path) -> list[Clip]:
    found = []
    for name, row in sorted(programme.manifest().items()):
        if row["lang"] != "none" and float(row["duration_s"]) >= 2.0:
            found.append(Clip(programme.CORPUS / name, tuple(row["lang"].split("+")),
                              "corpus"))
    if voices.available():
        workdir.mkdir(parents=True, exist_ok=True)
        for voice in voices.VOICES:
            path = voices.speak(voice, workdir / f"espeak_{voice.whisper}.wav")
            found.append(Clip(path, (voice.whisper,), "espeak-ng"))
    return found


def ours(path: Path, transcriber: Transcriber) -> str:
    """What the daemon decides for the file: the pipeline's own sample and vote."""
    settings = TranscribeSettings()
    tools = real_tools(settings, transcriber)
    guess = sample_language(path, tools.probe(path), settings, tools, (), lambda _: None)
    return guess.code if guess else "-"


def whisper_own(path: Path, model: object) -> str:
    """openai-whisper's detect_language on the first 30 s, as `whisper.transcribe` does."""
    return whisper_ranking(path, model)[0]


def whisper_ranking(path: Path, model: object) -> list[str]:
    """The languages of openai-whisper's detect_language on the first 30 s, likeliest
    first."""
    import whisper

    audio = whisper.pad_or_trim(whisper.load_audio(str(path)))
    mel = whisper.log_mel_spectrogram(audio, model.dims.n_mels)  # type: ignore[attr-defined]
    _, probabilities = model.detect_language(mel)  # type: ignore[attr-defined]
    return [str(code) for code in sorted(probabilities, key=probabilities.get, reverse=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="base")
    parser.add_argument("--workdir", type=Path, default=Path("bench/results/languages"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    loaded = {engine: build_transcriber(ModelSettings(
        name=args.model, engine=engine, device="cpu", offline=True))  # type: ignore[arg-type]
        for engine in ENGINES}
    reference = loaded["openai-whisper"].model  # type: ignore[attr-defined]
    found = clips(args.workdir.resolve())
    print(f"model {args.model}, {platform.machine()}, Python {platform.python_version()}; "
          f"{len(found)} clips")
    print()
    print("| clip | truth | Whisper detect_language (FP32) | "
          + " | ".join(f"subtitled {e}" for e in ENGINES) + " |")
    print("|---|---|---|" + "---|" * len(ENGINES))
    right: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for clip in found:
        own = whisper_own(clip.path, reference)
        heard = [ours(clip.path, loaded[engine]) for engine in ENGINES]
        print(f"| {clip.path.name} | {'+'.join(clip.truth)} | {own} | " + " | ".join(
            f"{code}{'' if code in clip.truth or code == own else ' ✗'}" for code in heard)
            + " |", flush=True)
        tally = right[clip.truth[0] if len(clip.truth) == 1 else "+".join(clip.truth)]
        tally[0] += 1
        tally[1] += own in clip.truth
        for index, code in enumerate(heard):
            tally[2 + index] += code in clip.truth
            tally[4] += code not in clip.truth and code != own  # the rule broken
    print()
    print("| language | clips | Whisper right | " + " | ".join(
        f"subtitled {e} right" for e in ENGINES) + " | ours neither Whisper's nor right |")
    print("|---|---|---|" + "---|" * len(ENGINES) + "---|")
    totals = [0, 0, 0, 0, 0]
    for language in sorted(right):
        tally = right[language]
        totals = [a + b for a, b in zip(totals, tally, strict=True)]
        print(f"| {language} | " + " | ".join(str(n) for n in tally) + " |")
    print("| all | " + " | ".join(str(n) for n in totals) + " |")


if __name__ == "__main__":
    main()
