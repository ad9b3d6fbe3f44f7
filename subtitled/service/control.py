"""What an admin asks of the daemon through its state directory: a pause that outlives
restarts (`subtitled pause`, `subtitled resume`; the marker file is the truth, which the
daemon looks at before it claims a file and while the engine computes), and the moment
from which `scan.backfill: none` counts files as new."""

from __future__ import annotations

import getpass
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)
PAUSE_NAME = "paused"
BACKFILL_SINCE_NAME = "backfill-none-since"


@dataclass(frozen=True)
class AdminPause:
    since: float
    by: str

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.since))
        return f"paused by {self.by} since {since} (`subtitled resume` continues)"


def paused(state_dir: Path) -> AdminPause | None:
    """The pause in force, or None. A marker that cannot be parsed still pauses: someone
    made it on purpose."""
    marker = state_dir / PAUSE_NAME
    try:
        text = marker.read_text(encoding="utf-8")
        since = marker.stat().st_mtime
    except FileNotFoundError:
        return None
    except OSError:
        return AdminPause(time.time(), "an unreadable pause marker")
    try:
        found = json.loads(text)
        return AdminPause(float(found["since"]), str(found["by"]))
    except (ValueError, KeyError, TypeError):
        return AdminPause(since, "an admin")


def pause(state_dir: Path) -> AdminPause:
    """Pause (again, keeping the first time); written whole or not at all."""
    existing = paused(state_dir)
    if existing is not None:
        return existing
    state_dir.mkdir(parents=True, exist_ok=True)
    made = AdminPause(time.time(), f"{_user()} (subtitled pause)")
    partial = state_dir / f".{PAUSE_NAME}.{os.getpid()}.tmp"
    partial.write_text(json.dumps({"since": made.since, "by": made.by}), encoding="utf-8")
    partial.replace(state_dir / PAUSE_NAME)
    return made


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a uid without a name (a container)
        return f"uid {os.getuid()}"


def resume(state_dir: Path) -> bool:
    """True when there was a pause to lift."""
    try:
        (state_dir / PAUSE_NAME).unlink()
    except FileNotFoundError:
        return False
    return True


def set_paused(state_dir: Path, held: bool) -> str:
    """Pause (`held`) or resume, as `subtitled pause`/`resume` and the web page ask; what
    was done, in one line. OSError when the state directory cannot be written."""
    if held:
        return pause(state_dir).describe()
    return "resumed" if resume(state_dir) else "was not paused"


def backfill_since(state_dir: Path) -> float:
    """When `scan.backfill: none` first took effect: scans leave files older than this to
    the library as it was, and queue the ones modified since (arrivals while the daemon was
    down). Kept in the state directory, so a restart does not forget it; if it cannot be
    kept, this run counts from now and says so."""
    marker = state_dir / BACKFILL_SINCE_NAME
    try:
        return float(marker.read_text(encoding="ascii"))
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as err:
        logger.warning("%s cannot be read (%s); it is made again", marker, err)
    now = time.time()
    partial = state_dir / f".{BACKFILL_SINCE_NAME}.{os.getpid()}.tmp"
    try:
        partial.write_text(f"{now}\n", encoding="ascii")
        partial.replace(marker)
    except OSError as err:
        logger.warning("cannot record when backfill: none began in %s (%s); files older than "
                       "now are left alone until the next start", marker, err.strerror or err)
    return now
