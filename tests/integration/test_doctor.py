"""`subtitled doctor` on this machine: passes for a CPU configuration, and fails with the fix
for a missing ffmpeg and for a folder the service cannot write."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from subtitled.mounts import filesystem_type
from tests.integration.standin import StandIn
from tests.integration.test_bad_inputs import NO_ROOT_OVERRIDE


def doctor(tmp_path: Path, media: Path, env: dict[str, str] | None = None,
           prefix: list[str] | None = None, model: str = "tiny.en",
           **more: Any) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "watch": [str(media)], "state_dir": str(tmp_path / "state"),
        "model": {"name": model, "device": "cpu", "offline": True,
                  "model_dir": str(tmp_path / "models")}, **more}))
    return subprocess.run([*(prefix or []), sys.executable, "-m", "subtitled", "doctor",
                           "--config", str(config)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def verdicts(output: str) -> dict[str, str]:
    return {name: verdict for name, (verdict, _) in checks(output).items()}


def checks(output: str) -> dict[str, tuple[str, str]]:
    """Each check's name → (verdict, detail)."""
    found = {}
    for line in output.splitlines():
        if line[:4] in ("PASS", "WARN", "FAIL"):
            name, _, detail = line[6:].partition("  ")
            found[name.strip()] = (line[:4], detail.strip())
    return found


def test_doctor_passes_for_a_cpu_configuration(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    result = doctor(tmp_path, media)
    assert result.returncode == 0, result.stdout + result.stderr
    found = verdicts(result.stdout)
    for name in ("ffmpeg", "torch", "model", f"folder {media}", "state directory",
                 "inotify watches", "systemd", "model.engine", "model.batch_size", "memory"):
        assert found[name] == "PASS", result.stdout
    # The auto choices on this CPU-only machine, each with its reason.
    details = {name: detail for name, (_, detail) in checks(result.stdout).items()}
    assert details["model.engine"].startswith("faster-whisper: no CUDA GPU")
    assert details["model.beam_size"].startswith("1: a CPU")
    assert "GiB needed for tiny.en at batch" in details["memory"]
    kind = filesystem_type(media)
    assert kind and details[f"folder {media}"] == \
        f"readable and writable; {kind}, watched with inotify"
    polled = doctor(tmp_path, media, scan={"polling": "on"})
    assert checks(polled.stdout)[f"folder {media}"][1].endswith(
        f"{kind}, its folders polled every 60 s (scan.polling: on)")
    assert checks(polled.stdout)["inotify watches"][1].startswith("0 folders to watch")


def test_a_memory_limit_too_small_for_the_model_fails_with_the_fix(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    # RLIMIT_AS as the limit: the address space torch maps at start, and little more;
    # large-v3 is not there (offline), but its size is known by name.
    result = doctor(tmp_path, media, prefix=["prlimit", "--as=3500000000"], model="large-v3")
    found = checks(result.stdout)
    assert found["memory"][0] == "FAIL", result.stdout + result.stderr
    assert "needed for large-v3 at batch 1; RLIMIT_AS 3.3 GiB" in found["memory"][1]
    assert "fix: choose a smaller model" in result.stdout
    assert "smaller model" in found["model.batch_size"][1]


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


def test_each_media_server_is_reached_with_its_token(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    token = tmp_path / "token"
    token.write_text("0123456789abcdef\n")
    with StandIn(200) as jellyfin, StandIn(401) as emby:
        result = doctor(tmp_path, media, media_servers=[
            {"kind": "jellyfin", "url": jellyfin.url, "token_file": str(token)},
            {"kind": "emby", "url": emby.url, "token_file": str(token)},
            {"kind": "plex", "url": "http://127.0.0.1:9", "token_file": str(token)}])
    found = checks(result.stdout)
    assert found[f"jellyfin {jellyfin.url}"] == ("PASS", "answers and takes the token")
    assert found[f"emby {emby.url}"][0] == "FAIL"
    assert found[f"emby {emby.url}"][1].startswith("the token is refused: GET ")
    assert found["plex http://127.0.0.1:9"][1].startswith("no answer: GET ")
    assert result.returncode != 0
    (call,) = jellyfin.received
    assert (call.method, call.target) == ("GET", "/System/Info")
    assert call.headers["Authorization"] == 'MediaBrowser Token="0123456789abcdef"'
