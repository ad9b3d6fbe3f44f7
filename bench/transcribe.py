"""Audio seconds, wall seconds, realtime factor and peak RSS of `subtitled transcribe` for one
file, with each engine, each run in a fresh process. Prints one Markdown table.

    .venv/bin/python -m bench.transcribe [--model base] [FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_FILE = Path(__file__).resolve().parent.parent / "tests/data/mul_en-de_mit_license.mp3"


def audio_seconds(path: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True,
                         check=True)
    return float(out.stdout.strip())


def measure(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one child process."""
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    stderr = process.stderr.read().decode() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{stderr}")
    return wall, usage.ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file", nargs="?", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--model", default="base")
    args = parser.parse_args()
    seconds = audio_seconds(args.file)
    print(f"file: {args.file.name} ({seconds:.1f} s), model: {args.model}, "
          f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print()
    print("| engine | audio s | wall s | realtime factor | peak RSS MiB |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        media = Path(folder) / args.file.name
        shutil.copyfile(args.file, media)
        for engine in ("openai-whisper", "faster-whisper"):
            wall, rss = measure([sys.executable, "-m", "subtitled", "transcribe", "--force",
                                 "--device", "cpu", "--engine", engine, "--model", args.model,
                                 str(media)])
            print(f"| {engine} | {seconds:.1f} | {wall:.1f} | {seconds / wall:.2f}x | "
                  f"{rss:.0f} |")


if __name__ == "__main__":
    main()
