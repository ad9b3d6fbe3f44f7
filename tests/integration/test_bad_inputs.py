"""Bad inputs: one clear line each, a non-zero exit, nothing written, and the other files of
the same command still done."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import DATA, ffmpeg, picture

# As root, permissions bind only without the capability to override them.
NO_ROOT_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"] \
    if os.geteuid() == 0 else []


def make_bad_inputs(folder: Path, media: Path) -> dict[str, str]:
    """File name → the stage and cause its error line must name."""
    (folder / "empty.mkv").write_bytes(b"")
    (folder / "truncated.mkv").write_bytes((media / "jfk.mkv").read_bytes()[:60_000])
    (folder / "random.mp4").write_bytes(os.urandom(200_000))
    (folder / "notes.mkv").write_text("This is a shopping list, not a film.\n" * 50)
    ffmpeg(*picture(3), "-c:v", "libx264", "-preset", "ultrafast", str(folder / "mute.mkv"))
    shutil.copyfile(media / "jfk.mkv", folder / "locked.mkv")
    (folder / "locked.mkv").chmod(0)
    return {
        "empty.mkv": "open: file is empty (0 bytes)",
        "truncated.mkv": "extract: the audio ends after",
        "random.mp4": "probe: ffprobe cannot read it:",
        "notes.mkv": "probe: ffprobe cannot read it:",
        "mute.mkv": "probe: no audio stream (streams found: video)",
        "locked.mkv": "open: permission denied",
        "missing.mkv": "open: no such file",
    }


def test_each_bad_input_gets_one_line_and_the_rest_still_runs(
        tmp_path: Path, media: Path) -> None:
    expected = make_bad_inputs(tmp_path, media)
    good = tmp_path / "good.flac"
    shutil.copyfile(DATA / "en_jfk_inaugural.flac", good)
    before = {p.name for p in tmp_path.iterdir()}
    names = sorted(expected)
    paths = [str(tmp_path / n) for n in names[:3]] + [str(good)] + \
        [str(tmp_path / n) for n in names[3:]]

    result = subprocess.run(
        [*NO_ROOT_OVERRIDE, sys.executable, "-m", "subtitled", "transcribe",
         "--model", "tiny.en", "--model-dir", str(tmp_path / "models"), *paths],
        capture_output=True, text=True, timeout=600)

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == len(expected), result.stderr
    for name, cause in expected.items():
        prefix = f"subtitled: error: {tmp_path}/{name}:"
        (line,) = [line for line in lines if line.startswith(prefix)]
        assert cause in line, line
    assert result.stdout.strip().startswith(f"{good} -> {tmp_path}/good.en.srt")
    created = {p.name for p in tmp_path.iterdir()} - before
    assert created <= {"good.en.srt", "models"}
    assert "good.en.srt" in created
