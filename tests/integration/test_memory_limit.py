"""A model of large-v3's size under a memory limit (a cgroup, as MemoryMax= sets one): the
old defaults (openai-whisper, batch 8, beam 5) cannot run in it; the auto settings read the
limit, size the batch to it, load, and transcribe the whole file within it.

The model decodes every window as nothing (`large_v3.sparse_folder`, as a random one
would), so the file ends with "no speech found" after its batches and the second look at
each stretch they left without words: the engine's full work for a minute and a half of
speech (four chunks: a whole batch of the three or four that fit, then the rest), at
large-v3's size.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.integration.figures import record
from tests.integration.memory_limit import memory_limit
from tests.integration.test_long_files import long_film
from tests.integration.test_memory_formula import peak_rss

# The old defaults need about 15 GiB just to load large-v3 (a float32 conversion); auto's
# int8 load peaks at about 4.5 GiB and decodes in under 3.5 GiB plus the batch.
LIMIT_BYTES = 6 * 2**30
CHOICE = re.compile(r"engine (\S+) on cpu \((\S+)\), beam (\d+), batch (\d+)")


def command(*options: str) -> list[str]:
    return [sys.executable, "-m", "subtitled", "-vv", "transcribe", "--force", *options]


def test_large_v3_transcribes_a_file_within_a_memory_limit_the_old_defaults_exceed(
        tmp_path: Path, large_v3_folder: Path) -> None:
    film = tmp_path / "film.mkv"
    long_film(film, minutes=1.5)
    with memory_limit(LIMIT_BYTES) as limit:
        old = subprocess.run([*limit.prefix, *command(
            "--model", str(large_v3_folder), "--engine", "openai-whisper", "--beam-size", "5",
            "--batch-size", "8", "--device", "cpu", str(film))], capture_output=True,
            text=True, timeout=900)
    with memory_limit(LIMIT_BYTES) as limit:
        # The peak of the process the limit holds (the cgroup's own peak counts page cache).
        peak, auto = peak_rss([*limit.prefix, *command("--model", str(large_v3_folder),
                                                       str(film))])
    assert old.returncode != 0, old.stdout + old.stderr[-2000:]
    found = CHOICE.search(auto)
    assert found is not None, auto[-3000:]
    engine, compute_type, beam, batch = found.groups()
    assert (engine, compute_type, beam) == ("faster-whisper", "int8", "1")
    if limit.kind != "RLIMIT_AS":
        assert int(batch) > 1 and "within the cgroup memory limit" in auto, auto[-3000:]
    # Whole batches were decoded, then the file was finished.
    assert f"decoded {batch} windows" in auto, auto[-3000:]
    assert "no speech found, no subtitle written" in auto, auto[-3000:]
    assert 0 < peak <= LIMIT_BYTES
    record(f"large-v3 size under a {limit.kind} memory limit of {LIMIT_BYTES / 2**30:g} GiB",
           f"old defaults: exit {old.returncode}; auto: batch {batch}, the file finished, "
           f"peak RSS {peak / 2**30:.2f} GiB")
