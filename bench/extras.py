"""What the subtitles beside the transcript cost: an English translation
(`language.also_translate`, on a programme not in English: target at most 1.0x the
decoding time) and a forced subtitle (`language.forced_subtitles`, on an English
programme, where finding the foreign stretches is the work: target at most 0.3x). The
same programme is transcribed plainly and with the extra, in turns, with the
faster-whisper engine at its auto settings. Reported: the job's wall time each way, the
engine's time (encoder passes, search, word alignment) of the plain run, and what the
extra adds, as a multiple of that decoding time.

    .venv/bin/python -m bench.extras [--extra translation|forced] \
        [--programme dense-de] [--minutes 10] [--repeat 3] [--model base] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import collections
import logging
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import srt

from bench import programme, voices
from bench.stages import Seconds, _TimedCT2
from subtitled.config import ModelSettings, TranscribeSettings
from subtitled.engines import build_transcriber
from subtitled.evaluation import word_error_rate
from subtitled.pipeline import Outcome, process_media_file
from subtitled.wiring import real_tools

_ENGINE = ("encoder passes", "search (decoder)", "word alignment")
# Each extra, the setting that makes it, and the programme it is measured on by default.
EXTRAS = {"translation": ("also_translate", "dense-de"), "forced": ("forced_subtitles", "mixed")}


def translation_wer(subtitle: Path, truth: programme.Truth, language: str) -> float | None:
    """The translation's word error rate against the English of the lines espeak-ng read
    (bench.voices.LINES holds each line in every language): the words of the cues over
    each such line, against its English. None when the programme has no such line."""
    english = dict(zip(voices.LINES.get(language, ()), voices.LINES["en"], strict=False))
    cues = list(srt.parse(subtitle.read_text(encoding="utf-8")))
    references, hypotheses = [], []
    for said in truth.speech:
        if said.text not in english:
            continue  # a corpus recording: no English of it
        references.append(english[said.text])
        hypotheses += [cue.content for cue in cues if said.onset_seconds - 0.5 <= (
            cue.start.total_seconds() + cue.end.total_seconds()) / 2 <= said.end_seconds + 0.5]
    if not references:
        return None
    return word_error_rate(" ".join(references), " ".join(hypotheses))


def _run(media: Path, settings: TranscribeSettings, transcriber: Any,
         spent: Seconds) -> tuple[float, float, Outcome]:
    """The job's wall time, the engine's time inside it, and the outcome."""
    spent.clear()
    started = time.monotonic()
    outcome = process_media_file(media, settings, real_tools(settings, transcriber))
    return time.monotonic() - started, sum(spent[k] for k in _ENGINE), outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extra", choices=sorted(EXTRAS), default="translation")
    parser.add_argument("--programme", choices=programme.KINDS)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", default="base")
    parser.add_argument("--workdir", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    setting, kind = EXTRAS[args.extra]
    args.programme = args.programme or kind
    logging.basicConfig(level=logging.WARNING)
    media = args.workdir.resolve() / f"programme-{args.programme}-{args.minutes:g}min.mkv"
    truth = programme.build(media, args.minutes, kind=args.programme)
    spent: Seconds = collections.defaultdict(float)
    transcriber = build_transcriber(ModelSettings(name=args.model, engine="faster-whisper",
                                                  offline=True))
    model: Any = getattr(transcriber, "model")  # noqa: B009
    model.model = _TimedCT2(model.model, spent)
    plain = TranscribeSettings()
    plain = replace(plain, output=replace(plain.output, overwrite=True))
    extra = replace(plain, language=replace(plain.language,
                                            also_translate=setting == "also_translate",
                                            forced_subtitles=setting == "forced_subtitles"))
    rows: dict[str, list[tuple[float, float]]] = {"plain": [], args.extra: []}
    for round_ in range(args.repeat):
        for name, settings in (("plain", plain), (args.extra, extra)):
            wall, engine, outcome = _run(media, settings, transcriber, spent)
            rows[name].append((wall, engine))
            beside = [p.name for p in (outcome.translation, outcome.forced) if p]
            wer = translation_wer(outcome.translation, truth, args.programme[-2:]) \
                if outcome.translation else None
            print(f"round {round_ + 1}, {name}: job {wall:.1f} s, engine {engine:.1f} s, "
                  f"{outcome.windows_decoded} windows decoded, "
                  f"{outcome.detection_windows} heard for their language, "
                  f"{outcome.language}, beside: {', '.join(beside) or 'nothing'}"
                  + (f", translation WER {wer:.3f} against the lines' English"
                     if wer is not None else ""))
    plain_wall = statistics.median(w for w, _ in rows["plain"])
    plain_engine = statistics.median(e for _, e in rows["plain"])
    both_wall = statistics.median(w for w, _ in rows[args.extra])
    added = both_wall - plain_wall
    print()
    print(f"{args.programme}, {args.minutes:g} min, {args.model}, medians of {args.repeat}:")
    print(f"| plain job | its decoding (engine) | with {args.extra} | added | "
          "added / decoding |")
    print("|---|---|---|---|---|")
    print(f"| {plain_wall:.1f} s | {plain_engine:.1f} s | {both_wall:.1f} s | {added:.1f} s "
          f"| {added / plain_engine:.2f}x |")


if __name__ == "__main__":
    main()
