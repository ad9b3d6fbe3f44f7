"""A crash (SIGKILL) at every step of a job, then a restart: each source ends with exactly
one valid subtitle, no temp file, no orphaned ffmpeg, the crash counted as one attempt,
and a database that passes its integrity check."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.integration.daemon_harness import (
    DaemonRun,
    make_video,
    processes_touching,
    valid_subtitles,
)
from tests.integration.figures import record

# In the order a job meets them (see subtitled/failpoints.py).
POINTS = ["after-claim", "mid-extraction", "mid-transcription", "after-temp-write",
          "after-write", "during-commit"]
# Past these the subtitle is in place: recovery records the job done without redoing it.
WRITTEN = {"after-write", "during-commit"}


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Longer than one 10 s block, so ffmpeg is still running at `mid-extraction`."""
    return make_video(tmp_path_factory.mktemp("video") / "victim.mkv", seconds=11.0)


@pytest.mark.parametrize("point", POINTS)
def test_a_crash_at_each_step_ends_in_one_valid_subtitle(
        point: str, tmp_path: Path, model_dir: Path, long_video: Path) -> None:
    daemon = DaemonRun(tmp_path, model_dir)
    for name in ("victim.mkv", "bystander.mkv"):
        (daemon.media / name).write_bytes(long_video.read_bytes())

    daemon.start(env={"SUBTITLED_FAILPOINTS": f"{point}:victim"})
    assert daemon.process is not None
    daemon.process.wait(timeout=180)
    assert daemon.finish() == -signal.SIGKILL, daemon.logs[-1]
    restarted = time.monotonic()
    daemon.start()
    daemon.wait_until(lambda: daemon.all_settled(2))
    recovered = time.monotonic() - restarted
    assert daemon.finish(signal.SIGTERM) == 0

    subtitles = valid_subtitles(daemon.media)
    assert sorted(subtitles) == ["bystander.en.srt", "victim.en.srt"]
    assert "fellow" in subtitles["victim.en.srt"].lower()
    assert [p.name for p in daemon.media.iterdir() if p.suffix == ".tmp"] == []
    time.sleep(0.5)  # an ffmpeg that lost its reader dies on its next write
    assert processes_touching(daemon.media) == []
    assert daemon.integrity() == "ok"
    rows = {Path(r["path"]).name: r for r in daemon.rows()}
    assert rows["victim.mkv"]["state"] == "done", rows["victim.mkv"]
    assert rows["victim.mkv"]["attempts"] == (1 if point in WRITTEN else 2)
    assert rows["bystander.mkv"]["state"] == "done" and rows["bystander.mkv"]["attempts"] == 1
    record(f"crash at {point}", f"victim done on attempt {rows['victim.mkv']['attempts']}; "
           f"restart to quiescence {recovered:.0f} s")
    if point in WRITTEN:
        assert "recorded as done" in daemon.logs[-1]
    else:
        assert "was being worked on when the process stopped; requeued" in daemon.logs[-1]
