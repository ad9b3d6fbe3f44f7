"""Bad inputs: one clear line each naming the file, the stage and the cause, nothing
half-written, and everything else still done, by the one-shot command and by the daemon.
Odd but valid inputs (surround, 8/24/32-bit, 48 kHz, a huge ID3 tag, untagged tracks, odd
names) get their subtitle."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import srt

from subtitled.errors import shown
from tests.integration.bad_inputs import make_failing, make_working
from tests.integration.conftest import DATA
from tests.integration.daemon_harness import DaemonRun
from tests.integration.figures import record

# As root, permissions bind only without the capability to override them.
NO_ROOT_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"] \
    if os.geteuid() == 0 else []
AUDIO = [".mkv", ".mp4", ".wav", ".flac", ".mp3"]


def assert_subtitled(folder: Path, names: list[str]) -> None:
    for name in names:
        subtitle = folder / f"{Path(name).stem}.en.srt"
        assert subtitle.exists(), f"no subtitle for {name!r}"
        text = " ".join(c.content for c in srt.parse(subtitle.read_text(encoding="utf-8")))
        assert "country" in text.lower(), (name, text)


def test_each_bad_input_gets_one_line_and_the_rest_still_runs(
        tmp_path: Path, media: Path) -> None:
    expected = make_failing(tmp_path, media)
    expected["missing.mkv"] = "open: no such file"
    # A folder given to `transcribe` stands for the media in it (test_cli.py): a link to /
    # named root.mkv would be the whole machine. The daemon's matrix keeps it.
    del expected["root.mkv"]
    (tmp_path / "root.mkv").unlink()
    working = make_working(tmp_path)
    before = {p.name for p in tmp_path.iterdir()}
    names = sorted(expected) + working
    started = time.monotonic()

    result = subprocess.run(
        [*NO_ROOT_OVERRIDE, sys.executable, "-m", "subtitled", "transcribe",
         "--model", "tiny.en", "--model-dir", str(tmp_path / "models"),
         *[os.fsencode(tmp_path / n) for n in names]],
        capture_output=True, timeout=900)
    record("bad inputs, `subtitled transcribe`",
           f"{len(expected)} bad and {len(working)} odd-but-valid files in "
           f"{time.monotonic() - started:.0f} s")

    stderr = result.stderr.decode("utf-8", "replace")
    stdout = result.stdout.decode("utf-8", "replace")
    assert result.returncode == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == len(expected), stderr
    for name, cause in expected.items():
        prefix = f"subtitled: error: {tmp_path}/{name}:"
        (line,) = [line for line in lines if line.startswith(prefix)]
        assert cause in line, line
    results = stdout.strip().splitlines()
    assert len(results) == len(working), stdout
    for name in working:
        assert f"{shown(tmp_path / name)} -> " in stdout, name
    assert_subtitled(tmp_path, working)
    created = {p.name for p in tmp_path.iterdir()} - before
    assert created - {"models"} == {f"{Path(n).stem}.en.srt" for n in working}


def test_the_daemon_classifies_every_bad_input_and_keeps_going(
        tmp_path: Path, media: Path, model_dir: Path) -> None:
    daemon = DaemonRun(tmp_path, model_dir, scan={"include_extensions": AUDIO},
                       retry={"max_attempts": 2})
    failing = make_failing(daemon.media, media)
    # Found by the rescan only when readable: neither is a job.
    for gone in ("pipe.mkv", "loop a.mkv", "loop b.mkv", "root.mkv"):
        failing.pop(gone)
    working = make_working(daemon.media)
    locked = daemon.media / "locked folder"
    locked.mkdir()
    shutil.copyfile(DATA / "en_jfk_inaugural.flac", locked / "inside.flac")
    locked.chmod(0)
    read_only = daemon.media / "read-only"
    read_only.mkdir()
    shutil.copyfile(DATA / "en_jfk_inaugural.flac", read_only / "film.flac")
    read_only.chmod(0o555)
    started = time.monotonic()

    def settled() -> bool:  # every file, but the one in the unwritable folder: it waits
        rows = daemon.rows()
        waiting = [r for r in rows if os.fsdecode(r["path"]).endswith("read-only/film.flac")]
        others = [r for r in rows if r not in waiting]
        return len(others) == len(failing) + len(working) and \
            all(r["state"] in ("done", "failed") for r in others) and \
            [r["error_class"] for r in waiting] == ["EnvironmentFault"]

    daemon.start(prefix=NO_ROOT_OVERRIDE)
    daemon.wait_until(settled, seconds=600)
    elapsed = time.monotonic() - started
    assert daemon.finish(signal.SIGTERM) == 0
    record("bad inputs, daemon", f"{len(failing)} bad and {len(working)} odd-but-valid files "
           f"settled {elapsed:.0f} s after start")

    rows = {Path(os.fsdecode(r["path"])).name: r for r in daemon.rows()}
    log = daemon.logs[-1]
    for name, cause in failing.items():
        row = rows[name]
        assert row["state"] == "failed", row
        assert cause in row["last_error"], row
        assert row["attempts"] == 1
        errors = [line for line in log.splitlines()
                  if " ERROR " in line and f"{shown(row['path'])}:" in line]
        assert len(errors) == 1 and cause in errors[0], errors
    for name in working:
        assert rows[name]["state"] == "done", rows[name]
    # A folder the daemon may not write into is the environment's fault: that folder
    # waits, with its attempt given back, and the rest of the library goes on.
    waiting = rows["film.flac"]
    assert waiting["state"] == "queued" and waiting["attempts"] == 0, waiting
    assert "write: cannot write subtitles into" in waiting["last_error"], waiting
    assert f"paused {read_only}: " in log
    assert_subtitled(daemon.media, working)
    assert f"cannot read folder {locked}: Permission denied" in log
    assert not list(read_only.glob("*.srt*"))
    assert not list(daemon.media.glob("*.tmp"))
