"""How the hotwords' prompt is written: one espeak-ng sentence full of invented names,
decoded by each engine with no prompt and with the names written in several ways, with
the same `base` weights (one window, greedy, as `auto` decodes on a CPU).

    .venv/bin/python -m bench.hotwords [--model base] [--workdir DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import whisper

from bench import voices
from subtitled.config import ModelSettings
from subtitled.engines import build_transcriber
from subtitled.evaluation import word_error_rate

LINE = ("Captain Zorblax Quenthir said that Mordane Vasquelle would arrive at Threnody Keep "
        "before nightfall.")
NAMES = ("Zorblax", "Quenthir", "Mordane", "Vasquelle", "Threnody Keep")
FORMS = {
    "none": None,
    "spaces (what the daemon sends)": " ".join(NAMES),
    "commas": ", ".join(NAMES),
    "commas, full stop": ", ".join(NAMES) + ".",
    "Glossary: list": "Glossary: " + ", ".join(NAMES) + ".",
    "a sentence": "Names in this film: " + ", ".join(NAMES[:-1]) + " and " + NAMES[-1] + ".",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="base")
    parser.add_argument("--workdir", type=Path, default=Path("bench/results/hotwords"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    clip = voices.speak(voices.BY_LANGUAGE["en"], args.workdir / "names.wav", text=LINE)
    samples = whisper.load_audio(str(clip))
    print(f"said: {LINE}\n")
    print("| engine | prompt | names right | WER | text |\n|---|---|---|---|---|")
    for engine in ("openai-whisper", "faster-whisper"):
        transcriber = build_transcriber(ModelSettings(name=args.model, engine=engine,
                                                      device="cpu", offline=True))
        for form, prompt in FORMS.items():
            (segments,) = transcriber.transcribe_batch([samples], language="en",
                                                       task="transcribe", prompt=prompt)
            text = " ".join(segment.text.strip() for segment in segments)
            right = sum(name in text for name in NAMES)
            wer = word_error_rate(LINE, text)
            print(f"| {engine} | {form} | {right} of {len(NAMES)} | {wer:.2f} | {text} |",
                  flush=True)


if __name__ == "__main__":
    main()
