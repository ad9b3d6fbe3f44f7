"""kill -9 at random moments, and a file that kills the process every time."""

from __future__ import annotations

import random
import signal
import threading
import time
from pathlib import Path

import srt

from tests.integration.daemon_harness import DaemonRun, make_video, processes_touching
from tests.integration.figures import record

VIDEOS = 30
KILLS = 20


class Reader(threading.Thread):
    """Parses every .srt in the folder again and again, as a media server's scanner does;
    it must never see a partial file."""

    def __init__(self, folder: Path) -> None:
        super().__init__(daemon=True)
        self.folder, self.reads = folder, 0
        self.problems: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for path in self.folder.glob("*.srt"):
                try:
                    text = path.read_text(encoding="utf-8")
                except FileNotFoundError:
                    continue
                try:
                    cues = list(srt.parse(text))
                except srt.SRTParseError as err:
                    self.problems.append(f"{path.name}: {err}")
                    continue
                if not cues or "fellow" not in " ".join(c.content for c in cues).lower():
                    self.problems.append(f"{path.name}: incomplete: {text!r}")
                self.reads += 1
            time.sleep(0.02)  # a scanner, not a busy loop taking a core from the daemon


def test_random_kills_lose_nothing_repeat_nothing_and_leave_nothing_half_written(
        tmp_path: Path, model_dir: Path) -> None:
    seed = random.randrange(1 << 30)
    chance = random.Random(seed)
    # Attempts are counted per crash; this test is about consistency, not dead-lettering.
    daemon = DaemonRun(tmp_path, model_dir, retry={"max_attempts": 50})
    template = make_video(tmp_path / "template.mkv", seconds=3.0)
    for number in range(VIDEOS):
        (daemon.media / f"Episode {number:02d}.mkv").write_bytes(template.read_bytes())
    reader = Reader(daemon.media)
    reader.start()
    started = time.monotonic()
    for _ in range(KILLS):
        daemon.start()
        time.sleep(chance.uniform(1.0, 6.0))
        daemon.kill()
    daemon.start()
    daemon.wait_ready()  # the kills may have left nothing to do: a SIGTERM must find it up
    daemon.wait_until(lambda: daemon.all_settled(VIDEOS), seconds=600)
    assert daemon.finish(signal.SIGTERM) == 0, f"seed {seed}"
    reader.stop.set()
    reader.join()
    record("random kill -9", f"{KILLS} kills over {VIDEOS} files, quiescent after "
           f"{time.monotonic() - started:.0f} s; the reader parsed {reader.reads} files")
    assert reader.problems == [], reader.problems[:3]
    assert reader.reads > 0
    assert processes_touching(daemon.media) == []

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
    # The first crash requeued it; the second, its last attempt, dead-lettered it.
    assert "poison.mkv: was being worked on when the process stopped; requeued" in \
        daemon.logs[-2]
    assert "poison.mkv: dead-lettered: the process died while working on it 2 times" in \
        daemon.logs[-1]
