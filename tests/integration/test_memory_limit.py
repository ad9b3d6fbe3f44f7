"""A model of large-v3's size under a memory limit (a cgroup, as MemoryMax= sets one): the
old defaults (openai-whisper, batch 8, beam 5) cannot run in it; the auto settings read the
limit, size the batch to it, and finish."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.integration.figures import record
from tests.integration.memory_limit import memory_limit
from tests.integration.test_long_files import long_film

LIMIT_BYTES = 5 * 2**30
CHOICE = re.compile(r"engine (\S+) on cpu \((\S+)\), beam (\d+), batch (\d+)")


def transcribe(prefix: list[str], *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, "-m", "subtitled", "-vv", "transcribe",
                           "--force", *options], capture_output=True, text=True, timeout=900)


def test_large_v3_fits_a_memory_limit_that_the_old_defaults_exceed(
        tmp_path: Path, large_v3_folder: Path) -> None:
    film = tmp_path / "film.mkv"
    long_film(film, minutes=2.0)
    with memory_limit(LIMIT_BYTES) as limit:
        old = transcribe(limit.prefix, "--model", str(large_v3_folder), "--engine",
                         "openai-whisper", "--beam-size", "5", "--batch-size", "8",
                         "--device", "cpu", str(film))
        auto = transcribe(limit.prefix, "--model", str(large_v3_folder), str(film))
        peak = limit.peak_bytes()
    assert old.returncode != 0, old.stdout + old.stderr[-2000:]
    assert auto.returncode == 0, auto.stderr[-3000:]
    # Random weights hear nothing; the command gets through every batch all the same.
    assert "no speech found" in auto.stdout
    found = CHOICE.search(auto.stderr)
    assert found is not None, auto.stderr[-3000:]
    engine, compute_type, beam, batch = found.groups()
    assert (engine, compute_type, beam) == ("faster-whisper", "int8", "1")
    assert f"decoded {batch} windows" in auto.stderr or batch == "1"
    if peak is not None:
        assert peak <= LIMIT_BYTES
    record(f"large-v3 size under a {limit.kind} memory limit of {LIMIT_BYTES / 2**30:g} GiB",
           f"old defaults: exit {old.returncode}; auto: batch {batch}, "
           f"peak {'unknown' if peak is None else f'{peak / 2**30:.2f} GiB'}")
