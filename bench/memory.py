"""Peak memory of `subtitled transcribe` against the length of the film: a 5-minute and a
60-minute programme of looped corpus speech (bench.programme, dense: speech with short
gaps, so that even the 5-minute one fills whole batches), the same settings for both. The
ratio shows whether memory stays flat. Prints one table.

    .venv/bin/python -m bench.memory [--model base] [--workdir bench/results] [OPTION ...]

Options after the known ones go to `subtitled transcribe` (e.g. --beam-size 1).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench import programme
from bench.compare import measure_alone
from subtitled.config import ModelSettings
from subtitled.models import resolve

LENGTHS_MINUTES = (5.0, 60.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="base")
    parser.add_argument("--workdir", type=Path, default=Path("bench/results"))
    args, options = parser.parse_known_args()
    source = resolve(ModelSettings(name=args.model, engine="faster-whisper"))
    assert source.path is not None, f"no local weights for {args.model}"
    rows = []
    for minutes in LENGTHS_MINUTES:
        media = args.workdir.resolve() / f"speech-{minutes:g}min.mkv"
        truth = programme.build(media, minutes, dense=True)
        with tempfile.TemporaryDirectory() as folder:
            link = Path(folder) / media.name
            link.symlink_to(media)
            wall, rss = measure_alone([sys.executable, "-m", "subtitled", "transcribe", "--force",
                                 "--engine", "faster-whisper", "--model", str(source.path),
                                 *options, str(link)])
        rows.append((minutes, truth.duration_seconds, wall, rss))
        print(f"  {minutes:g} min: {wall:.1f} s, {rss:.0f} MiB", file=sys.stderr, flush=True)
    print(f"model {args.model}, options {' '.join(options) or '(defaults)'}")
    print()
    print("| programme | audio s | wall s | realtime | peak RSS MiB | vs 5 min |")
    print("|---|---|---|---|---|---|")
    for minutes, seconds, wall, rss in rows:
        print(f"| {minutes:g} min | {seconds:.0f} | {wall:.1f} | {seconds / wall:.1f}x | "
              f"{rss:.0f} | {rss / rows[0][3]:.2f}x |")


if __name__ == "__main__":
    main()
