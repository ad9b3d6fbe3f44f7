"""With the queue idle, memory goes back: host memory at once, GPU memory after
`gpu_idle_release_seconds`, and a faster-whisper model on a GPU moves to host memory and
back without being loaded again."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest

from subtitled.config import DaemonSettings, ModelSettings, TranscribeSettings
from subtitled.engines.faster_whisper import FasterWhisperEngine
from subtitled.service.daemon import Daemon
from tests.unit.fakes import Clock, FakeTranscriber


def idle_daemon(tmp_path: Path, wait_seconds: float) -> Daemon:
    model = ModelSettings(gpu_idle_release_seconds=wait_seconds)
    settings = DaemonSettings(watch=(), state_dir=tmp_path,
                              transcribe=replace(TranscribeSettings(), model=model))
    daemon = Daemon(tmp_path / "config.yaml", settings)
    daemon.transcriber = FakeTranscriber()
    return daemon


@pytest.mark.parametrize(("wait_seconds", "idle_for", "released"),
                         [(60.0, 59.0, 0), (60.0, 61.0, 1), (60.0, 600.0, 1), (0.0, 600.0, 0)])
def test_gpu_memory_goes_back_once_after_the_queue_has_been_idle_long_enough(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wait_seconds: float, idle_for: float,
        released: int) -> None:
    clock = Clock()
    monkeypatch.setattr("subtitled.service.daemon.time.monotonic", clock)
    daemon = idle_daemon(tmp_path, wait_seconds)
    since = daemon._idle(None)
    for _ in range(5):
        clock.now += idle_for / 5
        since = daemon._idle(since)
    assert isinstance(daemon.transcriber, FakeTranscriber)
    assert daemon.transcriber.idled == released
    since = daemon._idle(None)  # a job ran: the next idle stretch releases again
    clock.now += idle_for
    daemon._idle(since)
    assert daemon.transcriber.idled == 2 * released


@dataclass
class FakeCT2:
    """CTranslate2's Whisper on a fake GPU: what moved where."""

    moves: list[str] = field(default_factory=list)
    compute_type: str = "float16"
    is_multilingual: bool = True

    def unload_model(self, to_cpu: bool = False) -> None:
        self.moves.append("to host" if to_cpu else "unloaded")

    def load_model(self) -> None:
        self.moves.append("to gpu")

    def detect_language(self, encoded: np.ndarray) -> list[list[tuple[str, float]]]:
        return [[("<|en|>", 1.0)] for _ in encoded]


class FakeFeatures:
    nb_max_frames = 3000

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        return np.zeros((80, 3001), dtype=np.float32)


@dataclass
class FakeWhisperModel:
    model: FakeCT2
    feature_extractor: FakeFeatures = field(default_factory=FakeFeatures)

    def encode(self, features: np.ndarray) -> np.ndarray:
        return features


def test_an_idle_faster_whisper_gpu_model_waits_in_host_memory_and_comes_back() -> None:
    ct2 = FakeCT2()
    engine = FasterWhisperEngine(FakeWhisperModel(ct2), "cuda", "large-v3", 5, 4)
    engine.idle()
    engine.idle()
    assert ct2.moves == ["to host"]
    engine.detect_language(np.zeros(16_000, dtype=np.float32))
    assert ct2.moves == ["to host", "to gpu"]


def test_a_cpu_model_stays_where_it_is_when_idle() -> None:
    ct2 = FakeCT2()
    FasterWhisperEngine(FakeWhisperModel(ct2), "cpu", "base", 1, 8).idle()
    assert ct2.moves == []
