"""kill -9 at random moments, and a file that kills the process every time."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import srt

from tests.integration.daemon_harness import DaemonRun, make_video

VIDEOS = 10
KILLS = 10


def test_random_kills_lose_nothing_repeat_nothing_and_leave_nothing_half_written(
        tmp_path: Path, model_dir: Path) -> None:
    seed = random.randrange(1 << 30)
    chance = random.Random(seed)
    # Attempts are counted per crash; this test is about consistency, not dead-lettering.
    daemon = DaemonRun(tmp_path, model_dir, retry={"max_attempts": 50})
    template = make_video(tmp_path / "template.mkv", seconds=3.0)
    for number in range(VIDEOS):
        (daemon.media / f"Episode {number:02d}.mkv").write_bytes(template.read_bytes())
    for _ in range(KILLS):
        daemon.start()
        time.sleep(chance.uniform(1.0, 6.0))
        daemon.kill()
    daemon.start()
    daemon.wait_until(lambda: daemon.all_settled(VIDEOS), seconds=300)
    assert daemon.finish(signal.SIGTERM) == 0, f"seed {seed}"

    for number in range(VIDEOS):
        subtitles = list(daemon.media.glob(f"Episode {number:02d}.*.srt"))
        assert len(subtitles) == 1, (seed, subtitles)
        cues = list(srt.parse(subtitles[0].read_text(encoding="utf-8")))
        assert cues and "fellow" in " ".join(c.content for c in cues).lower()
    assert list(daemon.media.glob("*.tmp")) == [], seed
    assert daemon.integrity() == "ok"
    rows = daemon.rows()
    assert len(rows) == VIDEOS
    assert {r["state"] for r in rows} <= {"done", "skipped"}, rows
    for number in range(VIDEOS):
        written = sum(log.count(f"Episode {number:02d}.en.srt, en") for log in daemon.logs)
        assert written <= 1, f"Episode {number:02d} transcribed {written} times (seed {seed})"


def test_a_poison_file_ends_dead_while_the_good_files_finish(
        tmp_path: Path, model_dir: Path) -> None:
    daemon = DaemonRun(tmp_path, model_dir, retry={"max_attempts": 2})
    template = make_video(tmp_path / "template.mkv", seconds=3.0)
    for name in ("a.mkv", "poison.mkv", "b.mkv"):
        (daemon.media / name).write_bytes(template.read_bytes())
    crashes = 0
    for _ in range(6):
        daemon.start(env={"SUBTITLED_FAILPOINTS": "after-claim:poison"})
        deadline = time.monotonic() + 120
        while daemon.process is not None and daemon.process.poll() is None \
                and not daemon.all_settled(3) and time.monotonic() < deadline:
            time.sleep(0.2)
        if daemon.process is not None and daemon.process.poll() is not None:
            crashes += 1
            assert daemon.finish() == -signal.SIGKILL
            continue
        assert daemon.finish(signal.SIGTERM) == 0
        break
    states = {Path(r["path"]).name: (r["state"], r["attempts"]) for r in daemon.rows()}
    assert states == {"a.mkv": ("done", 1), "b.mkv": ("done", 1), "poison.mkv": ("dead", 2)}
    assert crashes == 2
    assert "was being worked on when the process stopped" in daemon.logs[-1]
