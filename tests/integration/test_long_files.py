"""A long film survives kills: decoded words are checkpointed after each batch, a restart
resumes from the last checkpoint, and kills while it makes progress never dead-letter it."""

from __future__ import annotations

import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import srt
import yaml

from subtitled.evaluation import word_error_rate
from tests.integration.conftest import DATA
from tests.integration.daemon_harness import DaemonRun, make_video
from tests.integration.figures import record

RATE = 16_000
# English clips of the corpus; each cycle plays them at another speed, so that no two
# minutes of the programme are the same audio.
CLIPS = ("en_jfk_inaugural.flac", "en_librispeech_quilter_leopard.wav",
         "mul_en-de_mit_license.mp3")
ENGLISH_PART_SECONDS = {"mul_en-de_mit_license.mp3": 30.0}
SPEECH_MINUTES = 10.5
KILLS = 2
WORK = re.compile(r"decoded (\d+) windows?")


def _clip(name: str) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(DATA / name),
                          "-t", str(ENGLISH_PART_SECONDS.get(name, 600)), "-ac", "1", "-ar",
                          str(RATE), "-f", "f32le", "-"], capture_output=True, check=True)
    return np.frombuffer(raw.stdout, dtype=np.float32)


def long_film(path: Path, minutes: float = SPEECH_MINUTES) -> float:
    """An audio-only .mkv with at least `minutes` of speech; returns its speech seconds."""
    clips = [_clip(name) for name in CLIPS]
    pause = np.zeros(RATE, dtype=np.float32)
    parts: list[np.ndarray] = []
    speech, cycle = 0.0, 0
    while speech < minutes * 60:
        speed = 0.9 + 0.2 * (cycle % 5) / 4  # 0.9x to 1.1x
        for clip in clips:
            positions = np.arange(0, len(clip) - 1, speed)
            parts += [np.interp(positions, np.arange(len(clip)), clip).astype(np.float32),
                      pause]
            speech += len(positions) / RATE
        cycle += 1
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-f", "f32le", "-ar",
                    str(RATE), "-ac", "1", "-i", "-", "-c:a", "aac", str(path)],
                   input=np.concatenate(parts).tobytes(), check=True)
    return speech


def decoded_through(daemon: DaemonRun) -> float:
    database = daemon.state / "jobs.sqlite3"
    if not database.exists():
        return 0.0
    with sqlite3.connect(database) as db:
        try:
            row = db.execute("SELECT MAX(decoded_seconds) FROM checkpoints").fetchone()
        except sqlite3.OperationalError:  # the daemon has not made its tables yet
            return 0.0
    return float(row[0] or 0.0)


def progressed(daemon: DaemonRun, since: float) -> bool:
    return decoded_through(daemon) > since


def windows(logs: list[str]) -> int:
    return sum(int(n) for log in logs for n in WORK.findall(log))


def subtitle_text(folder: Path) -> str:
    (subtitle,) = folder.glob("*.srt")
    return " ".join(c.content for c in srt.parse(subtitle.read_text(encoding="utf-8")))


# Small batches, greedy: many checkpoints in a few minutes of speech.
ENGINE = {"engine": "faster-whisper", "batch_size": 2, "beam_size": 1}


def decoding(tmp_path: Path, model_dir: Path) -> DaemonRun:
    """A daemon started on a film of 5 minutes of speech, returned once its first batch
    is checkpointed: in the middle of the film's decoding."""
    film = tmp_path / "film.mkv"
    long_film(film, minutes=5.0)
    daemon = DaemonRun(tmp_path / "daemon", model_dir, model=ENGINE)
    (daemon.media / film.name).symlink_to(film)
    daemon.start()
    try:
        daemon.wait_until(partial(progressed, daemon, 0.0), seconds=600)
    except BaseException:
        daemon.kill()
        raise
    return daemon


def test_kills_during_a_long_film_resume_it_and_repeat_little_work(
        tmp_path: Path, model_dir: Path) -> None:
    film = tmp_path / "film.mkv"
    speech_seconds = long_film(film)
    settings = {"model": ENGINE,
                "retry": {"max_attempts": 2, "backoff_seconds": 0}}

    whole = DaemonRun(tmp_path / "whole", model_dir, **settings)
    (whole.media / film.name).symlink_to(film)
    whole.start()
    whole.wait_until(lambda: whole.all_settled(1), seconds=900)
    assert whole.finish(signal.SIGTERM) == 0

    seed = random.randrange(1 << 30)
    chance = random.Random(seed)
    killed = DaemonRun(tmp_path / "killed", model_dir, **settings)
    (killed.media / film.name).symlink_to(film)
    kill_points = []
    for _ in range(KILLS):
        killed.start()
        # A random point of the decoding: after this run's first new checkpoint.
        killed.wait_until(partial(progressed, killed, decoded_through(killed)), seconds=600)
        time.sleep(chance.uniform(0.0, 6.0))
        kill_points.append(decoded_through(killed))
        killed.kill()
    killed.start()
    killed.wait_until(lambda: killed.all_settled(1), seconds=900)
    assert killed.finish(signal.SIGTERM) == 0

    (row,) = killed.rows()
    assert row["state"] == "done", (seed, row)  # two kills with max_attempts 2: not dead
    assert row["attempts"] == 1, (seed, row)
    assert len(list(killed.media.glob("*.srt"))) == 1
    assert list(killed.media.glob("*.tmp")) == []
    assert sum("resuming at" in log for log in killed.logs) == KILLS, seed
    difference = word_error_rate(subtitle_text(whole.media), subtitle_text(killed.media))
    work, uninterrupted = windows(killed.logs), windows(whole.logs)
    record("kill -9 during a long film", f"{speech_seconds / 60:.1f} min of speech, "
           f"{KILLS} kills at {', '.join(f'{s:.0f}' for s in kill_points)} s: WER against "
           f"the uninterrupted run {difference:.3f}, {work} windows decoded against "
           f"{uninterrupted} ({work / uninterrupted:.2f}x)")
    # A resume reads the audio from the start, so speech detection cuts the chunks the
    # uninterrupted run decoded; what may still differ is the temperature fallback, which
    # samples (CTranslate2 has no per-call seed).
    assert difference <= 0.02, (seed, difference)
    assert uninterrupted > 20
    assert work <= 1.25 * uninterrupted, (seed, work, uninterrupted)


def test_a_pause_mid_film_gives_up_the_batch_in_hand_and_resume_picks_up_there(
        tmp_path: Path, model_dir: Path) -> None:
    daemon = decoding(tmp_path, model_dir)
    try:
        pause = subprocess.run([sys.executable, "-m", "subtitled", "pause", "--config",
                                str(daemon.config)], capture_output=True, text=True,
                               check=True)
        assert pause.stdout.startswith("paused by ")
        daemon.wait_until(lambda: daemon.rows()[0]["state"] == "queued", seconds=15)
        held_at = decoded_through(daemon)
        time.sleep(3)
        assert decoded_through(daemon) == held_at  # nothing decoded while paused
        subprocess.run([sys.executable, "-m", "subtitled", "resume", "--config",
                        str(daemon.config)], check=True, capture_output=True)
        daemon.wait_until(lambda: daemon.all_settled(1), seconds=600)
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    (row,) = daemon.rows()
    assert row["state"] == "done" and row["attempts"] == 1
    log = daemon.logs[-1]
    assert "abandoned for a pause; requeued" in log and "resuming at" in log


def test_a_folder_added_by_a_reload_mid_film_is_watched_at_once(
        tmp_path: Path, model_dir: Path) -> None:
    more = tmp_path / "more"
    more.mkdir()
    daemon = decoding(tmp_path, model_dir)
    try:
        document = yaml.safe_load(daemon.config.read_text())
        document["watch"].append({"path": str(more)})
        daemon.config.write_text(yaml.safe_dump(document))
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGHUP)
        # Applied from inside the film's decoding, not after it.
        daemon.wait_until(lambda: "the watched folders and scan settings apply now" in
                          daemon.log_file.read_text(), seconds=30)
        make_video(more / "clip.mkv", seconds=2.0)
        daemon.wait_until(lambda: daemon.all_settled(2), seconds=600)
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    assert (more / "clip.en.srt").exists()
    assert "configuration reloaded" in daemon.logs[-1]  # the rest, after the film
