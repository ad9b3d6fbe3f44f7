"""The shipped systemd units: `systemd-analyze verify` clean, and an offline exposure score of
at most 2.5 for the system unit and 6.5 for the user unit (a user manager cannot make the
mount namespaces the system unit's sandbox uses)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "systemd"
pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                reason="systemd-analyze is not installed (Debian: systemd)")


def installed_copy(unit: str, folder: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's executable, so that verify's
    check that the command exists means something here."""
    executable = Path(sys.executable).with_name("subtitled")
    text = (UNITS / unit).read_text()
    text = re.sub(r"^ExecStart=\S+", f"ExecStart={executable}", text, flags=re.MULTILINE)
    copy = folder / unit
    copy.write_text(text)
    return copy


@pytest.mark.parametrize("unit", ["subtitled.service", "subtitled-user.service"])
def test_units_verify_clean(unit: str, tmp_path: Path) -> None:
    user = ["--user"] if "user" in unit else []
    runtime = tmp_path / "runtime"  # a user manager needs one, even offline
    runtime.mkdir(mode=0o700)
    environment = {"SYSTEMD_LOG_LEVEL": "notice", "PATH": "/usr/bin:/bin",
                   "XDG_RUNTIME_DIR": str(runtime), "HOME": str(tmp_path)}
    result = subprocess.run(["systemd-analyze", *user, "verify",
                             str(installed_copy(unit, tmp_path))],
                            capture_output=True, text=True, env=environment)
    problems = [line for line in result.stderr.splitlines()
                if unit in line and "Failed to" not in line]
    assert result.returncode == 0 and problems == [], result.stderr


@pytest.mark.parametrize(("unit", "most"), [("subtitled.service", 2.5),
                                            ("subtitled-user.service", 6.5)])
def test_the_units_are_hardened(unit: str, most: float, tmp_path: Path) -> None:
    result = subprocess.run(["systemd-analyze", "security", "--offline=true",
                             str(installed_copy(unit, tmp_path))],
                            capture_output=True, text=True)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= most
