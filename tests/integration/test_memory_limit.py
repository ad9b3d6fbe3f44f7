"""A model of large-v3's size under a memory limit (a cgroup, as MemoryMax= sets one): the
old defaults (openai-whisper, batch 8, beam 5) cannot run in it; the auto settings read the
limit, size the batch to it, load, and decode a full batch within it.

The run stops after its first batch: random weights hear nothing, and every stretch of
speech they skip is decoded again alone at six temperatures, an hour of large-v3-sized
encoder passes for two minutes of speech on two cores. Memory is set by the batch, not by
how many batches follow (BENCHMARKS.md, memory against length)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.daemon_harness import memory_kib
from tests.integration.figures import record
from tests.integration.memory_limit import memory_limit
from tests.integration.test_long_files import long_film

# The old defaults need about 15 GiB just to load large-v3 (a float32 conversion); auto's
# int8 load peaks at about 4.5 GiB and decodes in under 3.5 GiB plus the batch.
LIMIT_BYTES = 6 * 2**30
CHOICE = re.compile(r"engine (\S+) on cpu \((\S+)\), beam (\d+), batch (\d+)")


def command(*options: str) -> list[str]:
    return [sys.executable, "-m", "subtitled", "-vv", "transcribe", "--force", *options]


def until_a_batch_is_decoded(prefix: list[str], log: Path, *options: str) -> tuple[str, int]:
    """Run until the first batch is decoded (or the process ends): the log so far, and the
    process's peak resident memory (VmHWM; the cgroup's own peak also counts page cache)."""
    with open(log, "wb") as out:
        process = subprocess.Popen([*prefix, *command(*options)], stdout=out,
                                   stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 900
    while process.poll() is None and time.monotonic() < deadline:
        found = CHOICE.search(log.read_text(errors="replace"))
        if found and f"decoded {found.group(4)} windows" in log.read_text(errors="replace"):
            break
        time.sleep(0.5)
    running = process.poll() is None
    peak = memory_kib(process.pid, "VmHWM") * 1024 if running else 0
    process.kill()
    process.wait()
    text = log.read_text(errors="replace")
    assert running, f"the run ended (status {process.returncode}) before a batch:\n" \
                    f"{text[-3000:]}"
    return text, peak


def test_large_v3_decodes_a_batch_within_a_memory_limit_the_old_defaults_exceed(
        tmp_path: Path, large_v3_folder: Path) -> None:
    film = tmp_path / "film.mkv"
    long_film(film, minutes=2.0)
    with memory_limit(LIMIT_BYTES) as limit:
        old = subprocess.run([*limit.prefix, *command(
            "--model", str(large_v3_folder), "--engine", "openai-whisper", "--beam-size", "5",
            "--batch-size", "8", "--device", "cpu", str(film))], capture_output=True,
            text=True, timeout=900)
    with memory_limit(LIMIT_BYTES) as limit:
        auto, peak = until_a_batch_is_decoded(limit.prefix, tmp_path / "auto.log", "--model",
                                              str(large_v3_folder), str(film))
    assert old.returncode != 0, old.stdout + old.stderr[-2000:]
    found = CHOICE.search(auto)
    assert found is not None, auto[-3000:]
    engine, compute_type, beam, batch = found.groups()
    assert (engine, compute_type, beam) == ("faster-whisper", "int8", "1")
    if limit.kind != "RLIMIT_AS":
        assert int(batch) > 1 and "within the cgroup memory limit" in auto, auto[-3000:]
    assert 0 < peak <= LIMIT_BYTES
    record(f"large-v3 size under a {limit.kind} memory limit of {LIMIT_BYTES / 2**30:g} GiB",
           f"old defaults: exit {old.returncode}; auto: batch {batch}, a batch decoded, "
           f"peak RSS {peak / 2**30:.2f} GiB")
