"""`subtitled doctor` on this machine: passes for a CPU configuration, and fails with the fix
for a missing ffmpeg and for a folder the service cannot write."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.integration.test_bad_inputs import NO_ROOT_OVERRIDE


def doctor(tmp_path: Path, media: Path, env: dict[str, str] | None = None,
           prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "watch": [str(media)], "state_dir": str(tmp_path / "state"),
        "model": {"name": "tiny.en", "device": "cpu", "offline": True}}))
    return subprocess.run([*(prefix or []), sys.executable, "-m", "subtitled", "doctor",
                           "--config", str(config)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def verdicts(output: str) -> dict[str, str]:
    found = {}
    for line in output.splitlines():
        if line[:4] in ("PASS", "WARN", "FAIL"):
            found[line[6:].split("  ")[0].strip()] = line[:4]
    return found


def test_doctor_passes_for_a_cpu_configuration(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    result = doctor(tmp_path, media)
    assert result.returncode == 0, result.stdout + result.stderr
    found = verdicts(result.stdout)
    for name in ("ffmpeg", "torch", "model", f"folder {media}", "state directory",
                 "inotify watches", "systemd"):
        assert found[name] == "PASS", result.stdout


def test_a_missing_ffmpeg_fails_with_the_fix(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    result = doctor(tmp_path, media, env={"PATH": str(tmp_path / "empty-bin")})
    assert result.returncode == 1
    assert "FAIL  ffmpeg" in result.stdout
    assert "fix: install it (Debian/Ubuntu: apt install ffmpeg)" in result.stdout


def test_an_unwritable_folder_fails_with_the_fix(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir(mode=0o555)
    media.chmod(0o555)
    result = doctor(tmp_path, media, prefix=NO_ROOT_OVERRIDE)
    assert result.returncode == 1
    assert verdicts(result.stdout)[f"folder {media}"] == "FAIL"
    assert "fix: grant the service user access (and ReadWritePaths= in the unit)" \
        in result.stdout
