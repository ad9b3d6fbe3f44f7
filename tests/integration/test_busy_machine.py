"""On a CPU busy with other work, with a model of large-v3's size: the heartbeat keeps
coming while a batch is decoded, and SIGTERM mid-batch ends the daemon within 15 s
without counting an attempt."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.daemon_harness import DaemonRun
from tests.integration.figures import record
from tests.integration.test_long_files import long_film
from tests.integration.test_systemd_notify import NotifySocket

STOP_SECONDS = 15.0  # the promise: TimeoutStopSec= can be this short
WATCHDOG_SECONDS = 4.0


def test_a_stop_mid_batch_on_busy_cpus_is_prompt_and_the_pings_never_lapse(
        tmp_path: Path, model_dir: Path, large_v3_folder: Path,
        notify_socket: NotifySocket) -> None:
    film = tmp_path / "film.mkv"
    long_film(film, minutes=2.0)
    daemon = DaemonRun(tmp_path, model_dir, model={"name": str(large_v3_folder),
                                                   "batch_size": 4},
                       language={"language": "en"})
    daemon.start({"NOTIFY_SOCKET": str(notify_socket.path),
                  "WATCHDOG_USEC": str(int(WATCHDOG_SECONDS * 1e6))},
                 own_watchdog_pid=True, prefix=["nice", "-n", "10"])
    try:
        notify_socket.wait_for("READY=1", seconds=600)
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(2)]
        try:
            (daemon.media / film.name).symlink_to(film)
            # The first batch starts once four chunks are in.
            daemon.wait_until(lambda: any((r["progress_seconds"] or 0) > 60
                                          for r in daemon.rows()), seconds=300)
            decoding = time.monotonic()
            time.sleep(4 * WATCHDOG_SECONDS)
            assert daemon.process is not None
            assert "decoded 4 windows" not in daemon.log_file.read_text(), \
                "the batch ended before the stop: the machine is faster than this test needs"
            stop_sent = time.monotonic()
            code = daemon.finish(signal.SIGTERM, timeout=60)
            stopped = time.monotonic() - stop_sent
        finally:
            for hog in hogs:
                hog.kill()
                hog.wait()
    finally:
        if daemon.process is not None:
            daemon.kill()
    pings = [t for t in notify_socket.pings() if decoding <= t <= stop_sent]
    gaps = [b - a for a, b in itertools.pairwise([decoding, *pings, stop_sent])]
    record("SIGTERM mid-batch, large-v3 size, 2 busy processes, Nice=10",
           f"stopped in {stopped:.1f} s; longest gap between pings {max(gaps):.1f} s "
           f"(watchdog {WATCHDOG_SECONDS:g} s)")
    assert code == 0, daemon.logs[-1][-3000:]
    assert stopped <= STOP_SECONDS, daemon.logs[-1][-3000:]
    assert max(gaps) <= WATCHDOG_SECONDS / 2, gaps
    (row,) = daemon.rows()
    assert row["state"] == "queued" and row["attempts"] == 0, row
    assert "abandoned for shutdown" in daemon.logs[-1]
