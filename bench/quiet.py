"""Quiet dialogue (issue 19), in two tables.

The levels (the default): what `subtitled.levels` says of each programme, computed as a
job computes it (the audio read in blocks, silero's chunks measured as they are cut):
its dialogue's level, how far that stands above the sound under it, its loudest passages,
whether it is quiet (then a second look runs over it), and the seconds the level work
itself took.

    .venv/bin/python -m bench.quiet [PROGRAMME.mkv ...]

One line under a bed (--line): the JFK clip laid `gain` dB under its own level over
32 s of bench.programme's music at -20 dBFS (as tests/integration/test_quiet_dialogue.py
mixes it, with pydub), decoded with `base` at beam 5 in the whole first 30 s window, and
alone (9.5 s to 21.5 s: what the second look's closer decode hears), each with its WER.

    .venv/bin/python -m bench.quiet --line [--engine faster-whisper] [--seeds 1 2 3]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np
from pydub import AudioSegment

from bench.programme import CORPUS, RATE_HZ, decode, manifest, music
from subtitled.config import ModelSettings, TranscribeSettings
from subtitled.evaluation import word_error_rate
from subtitled.levels import Dialogue, Levels, samples, segment
from subtitled.speech import SileroSpeechProbabilities, SpeechChunker

JFK = "en_jfk_inaugural.flac"
_BLOCK_SECONDS = 5
T = TypeVar("T")


def dialogue_of(path: Path) -> tuple[Dialogue, float]:
    """What the levels say of a programme, and the seconds their own work took (speech
    detection and decoding apart)."""
    settings = TranscribeSettings().speech
    levels = Levels(settings.quiet_margin_db, settings.bed_margin_db)
    chunker = SpeechChunker(SileroSpeechProbabilities(), settings)
    audio = decode(path)
    spent = 0.0

    def timed(step: Callable[[], T]) -> T:
        nonlocal spent
        began = time.perf_counter()
        try:
            return step()
        finally:
            spent += time.perf_counter() - began

    for start in range(0, len(audio), _BLOCK_SECONDS * RATE_HZ):
        block = audio[start:start + _BLOCK_SECONDS * RATE_HZ]
        timed(partial(levels.add_block, block))
        for chunk in chunker.feed(block):
            timed(partial(levels.add_chunk, chunk))
    for chunk in chunker.finish():
        timed(partial(levels.add_chunk, chunk))
    found = timed(levels.finish)
    return found, spent


def levels_table(paths: list[Path]) -> None:
    print("| programme | dialogue dBFS | above the sound under it dB | loudest dBFS | quiet |"
          " level work s |")
    print("|---|---|---|---|---|---|")
    for path in paths:
        found, spent = dialogue_of(path)
        said = "-" if found.dialogue_dbfs is None else f"{found.dialogue_dbfs:.0f}"
        above = "-" if found.above_bed_db is None else f"{found.above_bed_db:.0f}"
        print(f"| {path.name} | {said} | {above} | {found.loud_dbfs:.0f} | "
              f"{'yes' if found.quiet else 'no'} | {spent:.2f} |", flush=True)


def line_over_music(gain_db: float, seed: int = 1, clip: Path = CORPUS / JFK
                    ) -> AudioSegment:
    """32 s of bench.programme's music at -20 dBFS with `clip` (the JFK line) laid over it
    at 10 s, `gain_db` from its own level (tests/integration/test_quiet_dialogue.py mixes
    it so too, from its own copy of the clip)."""
    bed = segment(music(32.0, random.Random(seed)))
    bed = bed.apply_gain(-20.0 - bed.dBFS)
    voice = AudioSegment.from_file(clip).set_channels(1).set_frame_rate(RATE_HZ) \
        .set_sample_width(2)
    return bed.overlay(voice.apply_gain(gain_db), position=10_000)


def line_table(engine: str, seeds: list[int], gains: list[float]) -> None:
    from subtitled.engines import build_transcriber

    transcriber = build_transcriber(ModelSettings(
        name="base", engine=engine, device="cpu", offline=True,  # type: ignore[arg-type]
        beam_size=5, batch_size=8))
    said = manifest()[JFK]["transcript"]
    print(f"engine {engine}, model base, beam 5")
    print()
    print("| music seed | the line's gain dB | WER, whole window | WER, alone | alone says |")
    print("|---|---|---|---|---|")
    for seed in seeds:
        for gain in gains:
            mix = samples(line_over_music(gain, seed))
            window = mix[:30 * RATE_HZ]
            alone = np.ascontiguousarray(mix[int(9.5 * RATE_HZ):int(21.5 * RATE_HZ)])
            texts = [" ".join(s.text.strip() for s in found) for found in
                     transcriber.transcribe_batch([window, alone], language="en",
                                                  task="transcribe")]
            print(f"| {seed} | {gain:g} | {word_error_rate(said, texts[0]):.2f} | "
                  f"{word_error_rate(said, texts[1]):.2f} | {texts[1]} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("programmes", nargs="*", type=Path)
    parser.add_argument("--line", action="store_true")
    parser.add_argument("--engine", default="faster-whisper",
                        choices=("faster-whisper", "openai-whisper"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--gains", type=float, nargs="+", default=[0, -20, -25, -30])
    args = parser.parse_args()
    if args.line:
        line_table(args.engine, args.seeds, args.gains)
    elif args.programmes:
        levels_table(args.programmes)
    else:
        sys.exit("name the programmes, or --line")


if __name__ == "__main__":
    main()
