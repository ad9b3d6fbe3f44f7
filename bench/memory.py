"""Peak memory of `subtitled transcribe`, in two tables.

Against the length of the film (the default): a 5-minute and a 60-minute programme of looped
corpus speech (bench.programme, dense: speech with short gaps, so that even the 5-minute one
fills whole batches), the same settings for both. The ratio shows whether memory stays flat.

    .venv/bin/python -m bench.memory [--model base] [--workdir bench/results]
        [--kind looped|quiet-en|...] [--minutes 5 60] [OPTION ...]

(--kind quiet-en: the quiet programme, whose second look reads its hiding places again.)

Options after the known ones go to `subtitled transcribe` (e.g. --beam-size 1).

Against `auto` (--against-auto): the old defaults (openai-whisper, beam 5, batch 8) and the
auto choice on a CPU (faster-whisper int8, beam 1, the batch of at most 8 that
`sizing.batch_size_for` fits in the memory budget), each beside the prediction of
`subtitled.engines.sizing`, for base and, with --large-v3, a random model of large-v3's
shape (built once under the workdir: a CTranslate2 folder and a float16 .pt like the
published one, 3.1 GB each). The large-v3 runs go inside a cgroup memory limit, so that
what does not fit is killed rather than thrash the machine; the limit is also the budget
its batch is sized to.

    .venv/bin/python -m bench.memory --against-auto [--large-v3] [--limit-gib 12]

The large-v3 part builds 6 GB of models (15 GB of memory on the way). The random weights
decode every window as nothing at once (tests/integration/large_v3.py), so each run is a
few minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import programme
from bench.compare import measure_alone
from subtitled.config import ModelSettings
from subtitled.engines.auto import CPU_BATCH_CEILING
from subtitled.engines.sizing import (
    Dimensions,
    Engine,
    Source,
    batch_size_for,
    estimate,
    host_budget,
    known_dimensions,
)
from subtitled.models import resolve

LENGTHS_MINUTES = (5.0, 60.0)
GIB = 2**30
MIB = 2**20
# A fresh Python per run: RUSAGE_CHILDREN is the largest child it waited for, even a killed one.
_PEAK = ("import json, resource, subprocess, sys\n"
         "status = subprocess.run(sys.argv[1:], capture_output=True).returncode\n"
         "print(json.dumps([status, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))\n")


@dataclass(frozen=True)
class Setting:
    label: str
    engine: Engine
    beam_size: int
    batch_size: int
    source: Source = "ctranslate2"

    def predicted_bytes(self, dims: Dimensions) -> int:
        compute_type = "int8" if self.engine == "faster-whisper" else "float32"
        return estimate(dims, engine=self.engine, device="cpu", compute_type=compute_type,
                        beam_size=self.beam_size, source=self.source
                        ).total_bytes(self.batch_size)


def settings_for(dims: Dimensions, budget_bytes: int, source: Source) -> list[Setting]:
    auto = estimate(dims, engine="faster-whisper", device="cpu", compute_type="int8",
                    beam_size=1)
    return [Setting("old defaults", "openai-whisper", 5, 8, source),
            Setting("auto", "faster-whisper", 1,
                    batch_size_for(budget_bytes, auto, ceiling=CPU_BATCH_CEILING))]


def peak(command: list[str], prefix: list[str]) -> tuple[int, int]:
    """(exit status, peak RSS in bytes) of one command, alone, after `prefix`."""
    done = subprocess.run([sys.executable, "-c", _PEAK, *prefix, *command],
                          capture_output=True, text=True, check=True)
    status, kib = json.loads(done.stdout)
    return int(status), int(kib) * 1024


def run_setting(setting: Setting, model: Path, media: Path, prefix: list[str]
                ) -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as folder:
        link = Path(folder) / media.name  # subtitled writes beside the media
        link.symlink_to(media)
        return peak([sys.executable, "-m", "subtitled", "transcribe", "--force", "--device",
                     "cpu", "--model", str(model), "--engine", setting.engine,
                     "--beam-size", str(setting.beam_size),
                     "--batch-size", str(setting.batch_size), str(link)], prefix)


def dense_programme(workdir: Path, batch_size: int) -> Path:
    """Dense speech that fills a batch of `batch_size` chunks of about 30 s."""
    minutes = batch_size / 2 + 1
    media = workdir / f"speech-{minutes:g}min.mkv"
    programme.build(media, minutes, dense=True)
    return media


def large_v3_files(workdir: Path) -> tuple[Path, Path]:
    """(CTranslate2 folder, float16 .pt) of a random large-v3-shaped model, each made once
    in a child process so that the 6 GB of float32 weights on the way are handed back."""
    folder, checkpoint = workdir / "random-large-v3", workdir / "random-large-v3.pt"
    subprocess.run([sys.executable, "-c", _BUILD, str(folder), str(checkpoint)], check=True)
    return folder, checkpoint


_BUILD = """
import sys, dataclasses, torch
from pathlib import Path
from tests.integration.large_v3 import LARGE_V3, ctranslate2_folder, random_model
folder, checkpoint = Path(sys.argv[1]), Path(sys.argv[2])
if not (folder / "model.bin").exists() or not checkpoint.exists():
    model = random_model(LARGE_V3)
    if not (folder / "model.bin").exists():
        ctranslate2_folder(model, folder)
    if not checkpoint.exists():
        state = {k: v.half() for k, v in model.state_dict().items()}
        torch.save({"dims": dataclasses.asdict(LARGE_V3), "model_state_dict": state},
                   checkpoint)
"""


def against_auto(workdir: Path, large_v3: bool, limit_gib: float) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    print("| model | settings | engine | beam | batch | predicted GiB | peak RSS GiB | outcome |")
    print("|---|---|---|---|---|---|---|---|")
    base = resolve(ModelSettings(name="base", engine="faster-whisper", model_dir=workdir))
    dims = known_dimensions("base")
    assert base.path is not None and dims is not None
    budget = host_budget()
    for setting in settings_for(dims, budget.bytes, "ctranslate2"):
        _row("base", setting, dims, base.path, workdir, [], f"within the {budget.limited_by}")
    if large_v3:
        _limited_large_v3(workdir, limit_gib)


def _limited_large_v3(workdir: Path, limit_gib: float) -> None:
    # The test helper that makes a child cgroup (or falls back to RLIMIT_AS).
    from tests.integration.memory_limit import memory_limit

    folder, checkpoint = large_v3_files(workdir)
    dims = known_dimensions("large-v3")
    assert dims is not None
    for setting in settings_for(dims, int(limit_gib * GIB), "checkpoint"):
        model = checkpoint if setting.engine == "openai-whisper" else folder
        with memory_limit(int(limit_gib * GIB)) as limit:
            _row("large-v3 shape", setting, dims, model, workdir, limit.prefix,
                 f"{limit.kind} limit {limit_gib:g} GiB", limit.folder)


def oom_kills(cgroup: Path | None) -> int:
    """How often the kernel's OOM killer struck in the cgroup (v1 memory.oom_control,
    v2 memory.events), so that a kill from elsewhere is not taken for one."""
    for name in ("memory.oom_control", "memory.events"):
        if cgroup is not None and (cgroup / name).exists():
            for line in (cgroup / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    return 0


def _row(name: str, setting: Setting, dims: Dimensions, model: Path, workdir: Path,
         prefix: list[str], where: str, cgroup: Path | None = None) -> None:
    status, rss = run_setting(setting, model, dense_programme(workdir, setting.batch_size),
                              prefix)
    outcome = f"finished, {where}" if status == 0 else \
        f"killed at {rss / GIB:.1f} GiB ({where})" if oom_kills(cgroup) else \
        f"ended by signal {-status} at {rss / GIB:.1f} GiB, not out of memory ({where})" \
        if status < 0 else f"exit {status}"
    print(f"| {name} | {setting.label} | {setting.engine} | {setting.beam_size} | "
          f"{setting.batch_size} | {setting.predicted_bytes(dims) / GIB:.1f} | "
          f"{rss / GIB:.2f} | {outcome} |", flush=True)


def lengths(model: str, workdir: Path, options: list[str], kind: str = "looped",
            minutes_list: Sequence[float] = LENGTHS_MINUTES) -> None:
    source = resolve(ModelSettings(name=model, engine="faster-whisper"))
    assert source.path is not None, f"no local weights for {model}"
    rows = []
    for minutes in minutes_list:
        media = workdir.resolve() / (f"speech-{minutes:g}min.mkv" if kind == "looped"
                                     else f"{kind}-{minutes:g}min.mkv")
        truth = programme.build(media, minutes, kind=kind)
        with tempfile.TemporaryDirectory() as folder:
            link = Path(folder) / media.name
            link.symlink_to(media)
            wall, rss = measure_alone([sys.executable, "-m", "subtitled", "transcribe", "--force",
                                 "--engine", "faster-whisper", "--model", str(source.path),
                                 *options, str(link)])
        rows.append((minutes, truth.duration_seconds, wall, rss))
        print(f"  {minutes:g} min: {wall:.1f} s, {rss:.0f} MiB", file=sys.stderr, flush=True)
    print(f"model {model}, programme {kind}, options {' '.join(options) or '(defaults)'}")
    print()
    print(f"| programme | audio s | wall s | realtime | peak RSS MiB | vs {rows[0][0]:g} min |")
    print("|---|---|---|---|---|---|")
    for minutes, seconds, wall, rss in rows:
        print(f"| {minutes:g} min | {seconds:.0f} | {wall:.1f} | {seconds / wall:.1f}x | "
              f"{rss:.0f} | {rss / rows[0][3]:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="base")
    parser.add_argument("--workdir", type=Path, default=Path("bench/results"))
    parser.add_argument("--against-auto", action="store_true",
                        help="old defaults against the auto choice, beside the prediction")
    parser.add_argument("--large-v3", action="store_true",
                        help="with --against-auto: also a random large-v3-shaped model")
    parser.add_argument("--limit-gib", type=float, default=12.0,
                        help="the cgroup memory limit for the large-v3 runs")
    parser.add_argument("--kind", choices=programme.KINDS, default="looped",
                        help="against length: the programme (looped: dense corpus speech;"
                             " quiet-en: dialogue under music and effects, a second look)")
    parser.add_argument("--minutes", type=float, nargs="+", default=LENGTHS_MINUTES,
                        help="against length: the programmes' lengths, the first the base")
    args, options = parser.parse_known_args()
    if args.against_auto:
        against_auto(args.workdir.resolve(), args.large_v3, args.limit_gib)
    else:
        lengths(args.model, args.workdir, options, args.kind, args.minutes)


if __name__ == "__main__":
    main()
