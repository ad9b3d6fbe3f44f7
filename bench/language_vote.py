"""The language of files longer than one Whisper window: our vote (each window heard on its
own, weighed by its speech) against speech from every window glued into one Whisper window
and detected once (what the pipeline did up to 5851509), and Whisper's own detection of
the first 30 s, with the same weights.

    .venv/bin/python -m bench.language_vote [--engine faster-whisper] [--workdir DIR]

Files, 1 to 8 minutes: the four programmes of bench.programme (2 and 8 minutes each),
dense scenes of one language followed by more of another (six pairs, the second the
longer), real English (the corpus) followed by espeak-ng German, and espeak-ng speech in
each language of bench.voices read at four speeds. Prints one row per file: the truth,
then each detection with its confidence and seconds.
"""

from __future__ import annotations

import argparse
import logging
import time
import wave
from pathlib import Path

import numpy as np

from bench import programme, voices
from bench.languages import whisper_own
from subtitled.config import ModelSettings, TranscribeSettings
from subtitled.engines import Transcriber, build_transcriber
from subtitled.language import MIN_VOTE_SPEECH_SECONDS, LanguageGuess, vote, window_starts
from subtitled.pipeline.sampling import sample_language, speech_from_onset
from subtitled.pipeline.tools import Tools
from subtitled.wiring import real_tools

RATE = 16_000


def _write(path: Path, audio: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def files(workdir: Path) -> list[tuple[Path, str, str]]:
    """(file, its language or its majority language, kind)."""
    workdir.mkdir(parents=True, exist_ok=True)
    found: list[tuple[Path, str, str]] = []
    for kind in ("mixed", "dense-en", "dense-de", "dense-fr"):
        for minutes in (2, 8):
            path = workdir / f"{kind}-{minutes}.mkv"
            programme.build(path, minutes, seed=3, kind=kind)
            found.append((path, "en" if kind == "mixed" else kind[-2:], "one language"))
    scenes = {language: programme.assemble_scenes(language, 6, seed=5)[0]
              for language in ("en", "de", "fr")}
    for first, second, first_s, second_s in (("en", "de", 35, 122), ("en", "de", 60, 240),
                                             ("de", "fr", 40, 150), ("fr", "en", 30, 120),
                                             ("en", "fr", 50, 200), ("de", "en", 90, 300)):
        path = workdir / f"{first}{first_s}-{second}{second_s}.wav"
        if not path.exists():
            _write(path, np.concatenate([scenes[first][:first_s * RATE],
                                         scenes[second][10 * RATE:(10 + second_s) * RATE]]))
        found.append((path, second, "two languages"))
    english = np.concatenate([programme.decode(programme.CORPUS / name) for name in
                              ("en_jfk_inaugural.flac", "en_librispeech_quilter_leopard.wav")])
    german = np.concatenate([programme.decode(voices.speak(
        voices.BY_LANGUAGE["de"], workdir / f"de{i}.wav", text=text,
        words_per_minute=150 + 5 * i)) for i, text in enumerate(voices.LINES["de"])])
    for english_s, german_s in ((35, 122), (60, 240), (90, 400)):
        path = workdir / f"real-en{english_s}-espeak-de{german_s}.wav"
        if not path.exists():
            _write(path, np.concatenate([np.resize(english, english_s * RATE),
                                         np.resize(german, german_s * RATE)]))
        found.append((path, "de", "two languages"))
    for voice in voices.VOICES:
        path = workdir / f"espeak-{voice.whisper}.wav"
        if not path.exists():
            parts = []
            for speed in (130, 150, 170, 190):
                spoken = voices.speak(voice, workdir / "line.wav", words_per_minute=speed)
                parts += [programme.decode(spoken), np.zeros(RATE // 2, np.float32)]
            _write(path, np.concatenate(parts * 2))
        found.append((path, voice.whisper, "espeak-ng"))
    return found


def glued(path: Path, tools: Tools, settings: TranscribeSettings) -> LanguageGuess | None:
    """28 s of speech, a share from each vote window, glued half a second apart and
    detected once (the pipeline's way for files under 30 minutes up to 5851509)."""
    media = tools.probe(path)
    options = settings.language
    starts = window_starts(media.duration_seconds, options.vote_windows,
                           options.vote_window_seconds)
    samples = [sample for sample in (
        speech_from_onset(tools, settings, tools.open_audio(media, start,
                                                            options.vote_window_seconds),
                          28.0 / len(starts)) for start in starts)
        if sample.speech_seconds >= MIN_VOTE_SPEECH_SECONDS]
    if not samples:
        return None
    gap = np.zeros(RATE // 2, dtype=np.float32)
    audio = np.concatenate([part for sample in samples for part in (sample.audio, gap)][:-1])
    return vote([(tools.transcriber.detect_language(audio),
                  sum(sample.speech_seconds for sample in samples))])


def _timed(guess: object, started: float) -> str:
    if not isinstance(guess, LanguageGuess):
        return "- | - | -"
    return f"{guess.code} | {guess.confidence:.2f} | {time.monotonic() - started:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", default="faster-whisper",
                        choices=("faster-whisper", "openai-whisper"))
    parser.add_argument("--model", default="base")
    parser.add_argument("--workdir", type=Path, default=Path("bench/results/language-vote"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    transcriber: Transcriber = build_transcriber(ModelSettings(
        name=args.model, engine=args.engine, device="cpu", offline=True))
    reference = build_transcriber(ModelSettings(
        name=args.model, engine="openai-whisper", device="cpu", offline=True))
    settings = TranscribeSettings()
    tools = real_tools(settings, transcriber)
    print(f"engine {args.engine}, model {args.model}; Whisper's own: openai-whisper FP32")
    print("| kind | file | s | truth | Whisper's own, first 30 s | glued | conf | s "
          "| ours | conf | s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    right = {"own": 0, "glued": 0, "ours": 0}
    listed = files(args.workdir.resolve())
    for path, truth, kind in listed:
        own = whisper_own(path, reference.model)  # type: ignore[attr-defined]
        started = time.monotonic()
        first = _timed(guess := glued(path, tools, settings), started)
        right["glued"] += bool(guess and guess.code == truth)
        started = time.monotonic()
        media = tools.probe(path)
        ours = sample_language(path, media, settings, tools, (), lambda _: None)
        second = _timed(ours, started)
        right["ours"] += bool(ours and ours.code == truth)
        right["own"] += own == truth
        print(f"| {kind} | {path.name} | {media.duration_seconds or 0:.0f} | {truth} | {own} "
              f"| {first} | {second} |", flush=True)
    print(f"right of {len(listed)}: Whisper's own {right['own']}, glued {right['glued']}, "
          f"ours {right['ours']}")


if __name__ == "__main__":
    main()
