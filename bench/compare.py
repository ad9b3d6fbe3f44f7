"""subtitled against the tools users would otherwise run, on the same files, model and
machine, in one run: speed, peak memory, accuracy and readability. Prints one table.

    .venv/bin/python -m bench.compare [--model base] [--tools a,b] [--workdir DIR]

Files: a ~10-minute programme (bench.programme: `--programme mixed`, corpus speech with
gaps, music and noise; or dense dialogue in English, German or French), muxed with a
picture, and every corpus clip. Every tool runs in a fresh process
per file set (model load included) and writes SRT; everything is scored the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import srt

from bench import programme
from bench.direct import has_cuda
from subtitled.config import CueLimits, ModelSettings
from subtitled.cues import Cue
from subtitled.evaluation import reading_speed_share, word_error_rate
from subtitled.models import resolve

LIMITS = CueLimits()
_REPEAT_UNDER_SECONDS = 120.0
Command = Callable[["Run", list[Path]], list[str]]


@dataclass
class Run:
    """One tool over one set of files."""

    tool: str
    out_dir: Path
    model_dir: Path
    checkpoint: Path
    wall_seconds: float = 0.0
    peak_rss_mib: float = 0.0
    cues: dict[str, list[Cue]] = field(default_factory=dict)  # by file stem
    languages: dict[str, str] = field(default_factory=dict)


def _subtitled(*options: str) -> Command:
    def command(run: Run, files: list[Path]) -> list[str]:
        links = []
        for file in files:  # subtitled writes beside the media: give it links in out_dir
            link = run.out_dir / file.name
            link.symlink_to(file.resolve())
            links.append(str(link))
        return [sys.executable, "-m", "subtitled", "transcribe", "--force", "--model",
                str(run.model_dir), *options, *links]
    return command


def _whisper_cli(run: Run, files: list[Path]) -> list[str]:
    return [str(Path(sys.executable).with_name("whisper")), *map(str, files), "--model",
            str(run.checkpoint), "--device", "cuda" if has_cuda() else "cpu",
            "--output_format", "all", "--output_dir", str(run.out_dir)]


def _direct(kind: str) -> Command:
    def command(run: Run, files: list[Path]) -> list[str]:
        return [sys.executable, "-m", "bench.direct", kind, str(run.model_dir),
                str(run.out_dir), *map(str, files)]
    return command


TOOLS: dict[str, Command] = {
    # What a plain install runs: every setting `auto`, chosen from this machine.
    "subtitled auto": _subtitled(),
    "subtitled faster-whisper": _subtitled("--engine", "faster-whisper", "--beam-size", "5",
                                           "--batch-size", "8"),
    # The fastest CPU configuration: greedy decoding (see BENCHMARKS.md for why).
    "subtitled faster-whisper beam 1": _subtitled("--engine", "faster-whisper", "--beam-size",
                                                  "1", "--batch-size", "8"),
    # The defaults before `auto` (issue 11): openai-whisper, beam 5, batch 8.
    "subtitled openai-whisper": _subtitled("--engine", "openai-whisper", "--beam-size", "5",
                                           "--batch-size", "8"),
    "whisper CLI": _whisper_cli,
    "faster-whisper sequential": _direct("faster-whisper"),
    "faster-whisper batched": _direct("faster-whisper-batched"),
}


def measure(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one child process and its children."""
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, stderr = process.communicate()
    wall = time.monotonic() - started
    if process.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{stderr.decode()[-3000:]}")
    return wall, _children_peak_rss_mib()


def _children_peak_rss_mib() -> float:
    import resource

    # Linux reports KiB. RUSAGE_CHILDREN is the largest child waited for so far, which is
    # why measure_alone runs each measurement from a fresh helper process.
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def run_tool(tool: str, files: list[Path], workdir: Path, model_dir: Path,
             checkpoint: Path) -> Run:
    out_dir = Path(tempfile.mkdtemp(prefix=f"{tool.replace(' ', '_')}-",
                                    dir=workdir / "out"))
    run = Run(tool, out_dir, model_dir, checkpoint)
    run.wall_seconds, run.peak_rss_mib = measure_alone(TOOLS[tool](run, files))
    for file in files:
        run.cues[file.stem], language = _read_output(out_dir, file.stem)
        if language:
            run.languages[file.stem] = language
    return run


def measure_alone(command: list[str]) -> tuple[float, float]:
    """`measure` from a fresh Python, so that the peak RSS is this command's alone."""
    helper = [sys.executable, "-c", _MEASURE_ONE, json.dumps(command)]
    result = subprocess.run(helper, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{result.stderr[-3000:]}")
    wall, rss = json.loads(result.stdout)
    return float(wall), float(rss)


_MEASURE_ONE = """
import json, sys
from bench.compare import measure
print(json.dumps(measure(json.loads(sys.argv[1]))))
"""


def _read_output(out_dir: Path, stem: str) -> tuple[list[Cue], str | None]:
    """The SRT a tool wrote for `stem` and the language it says it heard."""
    language = None
    side = out_dir / f"{stem}.json"
    if side.exists():
        language = json.loads(side.read_text()).get("language")
    candidates = sorted(p for p in out_dir.glob(f"{stem}*.srt"))
    if not candidates:
        return [], language
    path = candidates[0]
    if path.name != f"{stem}.srt":  # subtitled: Movie.en.srt
        language = path.name[len(stem) + 1 : -len(".srt")]
    cues = [Cue(s.start.total_seconds(), s.end.total_seconds(),
                tuple(s.content.splitlines()))
            for s in srt.parse(path.read_text(encoding="utf-8"))]
    return cues, language


# --- scoring -------------------------------------------------------------------------


def normalised(text: str, language: str) -> str:
    """Whisper's own normalisers (the ones its WER figures use); characters for ja/zh."""
    from whisper.normalizers import BasicTextNormalizer, EnglishTextNormalizer

    if language == "en":
        return str(EnglishTextNormalizer()(text))
    text = str(BasicTextNormalizer()(text))
    if language in ("ja", "zh"):
        return " ".join(ch for ch in text if not ch.isspace())
    return text


def errors(reference: str, hypothesis: str, language: str) -> tuple[float, int]:
    """(word errors, reference words) after normalisation."""
    ref, hyp = normalised(reference, language), normalised(hypothesis, language)
    count = len(ref.split())
    return word_error_rate(ref, hyp) * count, count


def spoken(cues: list[Cue]) -> str:
    return " ".join(" ".join(c.lines) for c in cues)


@dataclass(frozen=True)
class ProgrammeScore:
    wer: float
    in_non_speech: int
    median_start_error: float
    missed_clips: int
    within_lines: float
    within_duration: float
    within_reading_speed: float
    count: int


def score_programme(cues: list[Cue], truth: programme.Truth) -> ProgrammeScore:
    wrong, words = errors(truth.text, spoken(cues), truth.language)
    spans = [(s.onset_seconds, s.end_seconds) for s in truth.speech]
    in_non_speech = sum(1 for c in cues if _overlap(c, spans) < 0.1)
    starts, missed = [], 0
    for clip in truth.speech:
        first = next((c for c in cues if _overlap(c, [(clip.onset_seconds, clip.end_seconds)])
                      > 0), None)
        if first is None:
            missed += 1
        else:
            starts.append(abs(first.start_seconds - clip.onset_seconds))
    count = len(cues) or 1
    return ProgrammeScore(
        wer=wrong / words, in_non_speech=in_non_speech,
        median_start_error=statistics.median(starts) if starts else float("nan"),
        missed_clips=missed,
        within_lines=sum(1 for c in cues if _lines_ok(c)) / count,
        within_duration=sum(1 for c in cues if _duration_ok(c)) / count,
        within_reading_speed=reading_speed_share(cues, LIMITS), count=len(cues))


def _overlap(cue: Cue, spans: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(cue.end_seconds, end) - max(cue.start_seconds, start))
               for start, end in spans)


def _lines_ok(cue: Cue) -> bool:
    return len(cue.lines) <= LIMITS.max_lines and \
        all(len(line) <= LIMITS.max_line_chars for line in cue.lines)


def _duration_ok(cue: Cue) -> bool:
    duration = cue.end_seconds - cue.start_seconds
    return LIMITS.min_duration_seconds - 1e-3 <= duration <= LIMITS.max_duration_seconds + 1e-3


def corpus_clips() -> list[tuple[Path, dict[str, str]]]:
    return [(programme.CORPUS / name, row) for name, row in sorted(programme.manifest().items())]


def score_corpus(run: Run) -> tuple[dict[str, float], tuple[int, int]]:
    """WER per language over the human-reference clips; (right, asked) language guesses
    over the clips of at least 2 s with speech."""
    wrong: dict[str, float] = {}
    words: dict[str, int] = {}
    right = asked = 0
    for path, row in corpus_clips():
        stem, language = path.stem, row["lang"]
        if row["transcript_kind"].startswith("human reference"):
            e, n = errors(row["transcript"], spoken(run.cues.get(stem, [])), language)
            wrong[language] = wrong.get(language, 0.0) + e
            words[language] = words.get(language, 0) + n
        if float(row["duration_s"]) >= 2.0 and language != "none":
            asked += 1
            right += run.languages.get(stem, "?") in language.split("+")
    return {lang: wrong[lang] / words[lang] for lang in sorted(wrong)}, (right, asked)


# --- the run -------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="base")
    parser.add_argument("--tools", default=",".join(TOOLS),
                        help="comma-separated, from: " + ", ".join(TOOLS))
    parser.add_argument("--workdir", type=Path, default=Path("bench/results"))
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--programme", choices=programme.KINDS[:-1], default="mixed",
                        help="which programme (bench.programme): mixed, the first one, or "
                             "dense dialogue in English, German or French")
    parser.add_argument("--no-corpus", action="store_true", help="the programme only")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds over the programme, tools in turn; the fastest round of "
                             "each tool counts (the machines are noisy). Tools that took over "
                             f"{_REPEAT_UNDER_SECONDS:.0f} s the first time run once")
    args = parser.parse_args()
    tools = [t.strip() for t in args.tools.split(",")]
    unknown = [t for t in tools if t not in TOOLS]
    if unknown:
        parser.error(f"unknown tools: {unknown}")
    source = resolve(ModelSettings(name=args.model, engine="faster-whisper"))
    assert source.path is not None, f"no local weights for {args.model}"
    workdir = args.workdir.resolve()
    if (workdir / "out").exists():
        shutil.rmtree(workdir / "out")
    (workdir / "out").mkdir(parents=True)
    media = workdir / f"programme-{args.programme}-{args.minutes:g}min.mkv"
    truth = programme.build(media, args.minutes, kind=args.programme)
    checkpoint = workdir / f"{args.model}.pt"
    if "whisper CLI" in tools and not checkpoint.exists():
        subprocess.run([sys.executable, "-m", "bench.direct", "convert", str(source.path),
                        str(checkpoint)], check=True)
    clips = [p for p, _ in corpus_clips()]
    print(f"model {args.model}, {'cuda' if has_cuda() else 'cpu'}, {platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}; programme "
          f"{args.programme} {truth.duration_seconds:.0f} s ({len(truth.speech)} clips, "
          f"{truth.speech_seconds / truth.duration_seconds:.0%} speech), "
          f"corpus {len(clips)} clips", flush=True)
    best: dict[str, Run] = {}
    for round_number in range(max(1, args.repeat)):
        for tool in tools:
            if round_number and best[tool].wall_seconds > _REPEAT_UNDER_SECONDS:
                continue
            run = run_tool(tool, [media], workdir, source.path, checkpoint)
            print(f"  {tool}: {run.wall_seconds:.1f} s", file=sys.stderr, flush=True)
            if tool not in best or run.wall_seconds < best[tool].wall_seconds:
                best[tool] = run
    rows = [(tool, best[tool], None if args.no_corpus else
             run_tool(tool, clips, workdir, source.path, checkpoint)) for tool in tools]
    print_table(rows, truth, sum(float(row["duration_s"]) for _, row in corpus_clips()))


def print_table(rows: list[tuple[str, Run, Run | None]], truth: programme.Truth,
                corpus_seconds: float) -> None:
    batched = next((r for t, r, _ in rows if t == "faster-whisper batched"), None)
    print()
    print("| tool | wall s | realtime | vs batched | peak RSS MiB | WER | cues | in non-speech "
          "| median start error s | missed clips | within lines | within 1-7 s "
          "| within 20 cps | corpus realtime | corpus WER by language | language right |")
    print("|" + "---|" * 16)
    for tool, run, corpus in rows:
        s = score_programme(run.cues[next(iter(run.cues))], truth)
        ratio = f"{batched.wall_seconds / run.wall_seconds:.2f}x" if batched else "-"
        corpus_cells = "- | - | -"
        if corpus is not None:
            wer, (right, asked) = score_corpus(corpus)
            corpus_cells = (f"{corpus_seconds / corpus.wall_seconds:.1f}x | "
                            + ", ".join(f"{k} {v:.2f}" for k, v in wer.items())
                            + f" | {right}/{asked}")
        realtime = truth.duration_seconds / run.wall_seconds
        print(f"| {tool} | {run.wall_seconds:.1f} | {realtime:.1f}x | {ratio} | "
              f"{run.peak_rss_mib:.0f} | {s.wer:.3f} | {s.count} | "
              f"{s.in_non_speech} | {s.median_start_error:.2f} | {s.missed_clips} | "
              f"{s.within_lines:.0%} | {s.within_duration:.0%} | {s.within_reading_speed:.0%} "
              f"| {corpus_cells} |")


if __name__ == "__main__":
    main()
