"""The shipped unit under a real systemd, booted in a container, without systemd-python
(sd_notify spoken directly): active only after READY, a status line, a reload, a reload
whose model does not load (the service stays on its old one), warnings found by
`journalctl -p warning`, a hung engine ending in a watchdog restart, a clean stop, and a
configuration error that stops the unit without a restart loop.

The Debian root is built once with debootstrap and cached in /var/cache/subtitled-test; each
run boots it with a volatile overlay, so the cache stays pristine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.integration.daemon_harness import make_video

REPO = Path(__file__).resolve().parents[2]
CACHE = Path("/var/cache/subtitled-test/bookworm")
PACKAGES = "systemd,systemd-sysv,dbus,ffmpeg,libssl3,libsqlite3-0,libffi8,libstdc++6,libgomp1"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("systemd-nspawn") or not shutil.which("debootstrap"),
    reason="needs root, systemd-nspawn and debootstrap (scripts/setup.sh installs them)")


def debian_mirror() -> str:
    """The Debian archive this machine's apt already uses."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    for line in Path("/etc/apt/sources.list").read_text().splitlines():
        fields = line.split()
        if fields[:1] == ["deb"] and "security" not in line:
            return next(f for f in fields[1:] if "://" in f)
    raise AssertionError("no Debian archive configured for apt on this machine")


def debian_root() -> Path:
    if (CACHE / "usr/lib/systemd/systemd").exists():
        return CACHE
    partial = CACHE.with_name(CACHE.name + ".tmp")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["debootstrap", "--variant=minbase", f"--include={PACKAGES}", "bookworm",
                    str(partial), debian_mirror()], check=True,
                   capture_output=True, timeout=1800)
    partial.rename(CACHE)
    return CACHE


DROP_IN = """\
[Service]
# The test's interpreter lives under /root on these machines, out of reach of a dedicated
# user; everything else is the shipped unit.
User=root
Group=root
# The model loads in well under a second; slow-load holds it 5 s longer, so that the check
# sees the unit `activating` while it loads.
Environment=SUBTITLED_FAILPOINTS=hang-in-engine:stuck,slow-load
# A systemd package that cannot be imported, ahead of the real one: a plain install.
Environment=PYTHONPATH=/srv/fixtures/no-systemd-python
WatchdogSec=6s
RestartSec=1s
ReadWritePaths=/srv/media
"""

CHECK_UNIT = """\
[Unit]
Description=drive the subtitled unit test
After=multi-user.target

[Service]
Type=oneshot
Environment=SUBTITLED_BIN={binary}
ExecStart=/srv/fixtures/check.sh
"""


def parse_show(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def test_the_unit_under_a_real_systemd(tmp_path: Path) -> None:
    root = debian_root()
    results, media, fixtures, units = (tmp_path / n for n in ("results", "media", "fixtures",
                                                               "units"))
    for folder in (results, media, fixtures, units / "subtitled.service.d"):
        folder.mkdir(parents=True)
        folder.chmod(0o777)
    make_video(fixtures / "stuck.mkv", seconds=3.0)
    shim = fixtures / "no-systemd-python" / "systemd"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("")
    (shim / "daemon.py").write_text("raise ImportError('systemd-python is not installed')\n")
    shutil.copy(REPO / "tests/systemd/check.sh", fixtures / "check.sh")
    (fixtures / "config.yaml").write_text(yaml.safe_dump({
        "watch": ["/srv/media"], "state_dir": "/var/lib/subtitled",
        "scan": {"settle_seconds": 1},
        "model": {"name": "tiny.en", "device": "cpu", "offline": True}}))
    binds = {str(REPO), sys.prefix, sys.base_prefix}
    drop_in = DROP_IN
    if any(Path(path).is_relative_to("/tmp") for path in binds):
        # A checkout under /tmp (CI clones there) would vanish behind the unit's PrivateTmp=.
        drop_in += "PrivateTmp=no\n"
    (units / "subtitled.service.d" / "test.conf").write_text(drop_in)
    binary = Path(sys.executable).with_name("subtitled")
    (units / "subtitled-check.service").write_text(CHECK_UNIT.format(binary=binary))
    command = [
        "systemd-nspawn", "-D", str(root), "--volatile=overlay", "--register=no",
        "--keep-unit", "--console=pipe", "--quiet",
        *(f"--bind-ro={path}" for path in sorted(binds)),
        f"--bind={results}:/results", f"--bind={media}:/srv/media",
        f"--bind-ro={fixtures}:/srv/fixtures",
        f"--bind-ro={REPO / 'systemd/subtitled.service'}:/etc/systemd/system/subtitled.service",
        f"--bind-ro={units / 'subtitled.service.d'}:/etc/systemd/system/subtitled.service.d",
        f"--bind-ro={units / 'subtitled-check.service'}:"
        "/etc/systemd/system/subtitled-check.service",
        "--boot", "systemd.wants=subtitled-check.service",
    ]
    booted = subprocess.run(command, capture_output=True, text=True, timeout=900)
    log = (results / "log").read_text() if (results / "log").exists() else ""
    context = f"log:\n{log}\nerrors:\n{_read(results / 'errors')}\njournal:\n" \
              f"{_read(results / 'journal')[-3000:]}\nnspawn:\n{booted.stdout[-2000:]}" \
              f"{booted.stderr[-2000:]}"
    assert "done" in log, context
    assert "while_starting activating" in log, context
    started = parse_show(results / "after_start")
    assert started["ActiveState"] == "active", context
    assert started["StatusText"].startswith("idle"), context
    assert "reload ok" in log and parse_show(results / "after_reload")["ActiveState"] == "active"
    bad_reload = parse_show(results / "after_bad_reload")
    assert bad_reload["ActiveState"] == "active", context
    assert "reload failed: model tiny.em" in bad_reload["StatusText"], context
    assert "restarted" in log, context
    assert int(parse_show(results / "after_watchdog")["NRestarts"]) >= 1
    journal = _read(results / "journal")
    assert "Watchdog timeout" in journal and "result 'watchdog'" in journal, context
    assert "configuration reloaded" in journal, context
    stopped = parse_show(results / "after_stop")
    assert stopped["ActiveState"] == "inactive" and stopped["Result"] == "success", context
    stop_seconds = int(log.split("stop_seconds ")[1].split()[0])
    assert stop_seconds < 120
    assert "notifying systemd over" in journal, context  # no systemd-python in the unit
    warnings = _read(results / "warnings")
    assert "reload failed, keeping the running configuration and model" in warnings, context
    assert "configuration reloaded" not in warnings, context  # info stays out
    config_error = parse_show(results / "after_config_error")
    assert config_error["ActiveState"] == "failed", context
    assert (config_error["ExecMainStatus"], config_error["NRestarts"]) == ("2", "0"), context


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""
