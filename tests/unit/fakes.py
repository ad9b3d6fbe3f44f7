"""Fakes for what the unit tests cannot have: a model, and a CUDA device that runs out."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from subtitled.config import Task
from subtitled.cues import Cue
from subtitled.engines.base import Segment, Word
from subtitled.media import AudioStream, MediaInfo
from subtitled.pipeline import Role, Tools
from tests.unit.test_speech import LoudnessProbabilities

RATE = 16_000


class Clock:
    """A clock the test moves by hand (`now`)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class OutOfMemoryError(RuntimeError):
    """Named like torch.cuda.OutOfMemoryError, which is what the engine seam sees on a GPU."""


@dataclass
class FakeTranscriber:
    """Says one word per second of loud audio; the language is the audio's loudness level."""

    multilingual: bool = True
    memory_seconds: float = 1e9  # longer audio "runs out of GPU memory"
    calls: list[tuple[float, str]] = field(default_factory=list)  # per chunk decoded
    batches: list[int] = field(default_factory=list)  # chunks per decode of more than one
    temperatures: list[float] = field(default_factory=list)  # per chunk decoded
    prompts: list[str | None] = field(default_factory=list)  # per chunk decoded
    released: int = 0
    detected: list[int] = field(default_factory=list)  # clips per batched detection
    description: str = "fake"
    batch_size: int = 8
    idled: int = 0

    def detect_language(self, audio: np.ndarray) -> dict[str, float]:
        loud = float(np.abs(audio).max())
        return {"de": 0.9, "en": 0.1} if loud > 0.7 else {"en": 0.8, "de": 0.2}

    def detect_languages(self, audios: Sequence[np.ndarray]) -> list[dict[str, float]]:
        self.detected.append(len(audios))
        return [self.detect_language(audio) for audio in audios]

    def transcribe_batch(self, audios: Sequence[np.ndarray], *, language: str, task: Task,
                         temperature: float = 0.0, prompt: str | None = None
                         ) -> list[list[Segment]]:
        if sum(len(a) for a in audios) / RATE > self.memory_seconds:
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB")
        if len(audios) > 1:
            self.batches.append(len(audios))
        self.temperatures += [temperature] * len(audios)
        self.prompts += [prompt] * len(audios)
        # A translation says words that name where they came from ("de>en3").
        said = language if task == "transcribe" else f"{language}>en"
        return [self.say(audio, said) for audio in audios]

    def transcribe_and_hear(self, audios: Sequence[np.ndarray], *, language: str,
                            task: Task, prompt: str | None = None
                            ) -> tuple[list[list[Segment]], list[dict[str, float]]]:
        return (self.transcribe_batch(audios, language=language, task=task, prompt=prompt),
                [self.hear(audio) for audio in audios])

    def hear(self, audio: np.ndarray) -> dict[str, float]:
        """The language heard in a decoded chunk (from its own encoder pass)."""
        return self.detect_language(audio)

    def say(self, audio: np.ndarray, language: str) -> list[Segment]:
        seconds = len(audio) / RATE
        self.calls.append((seconds, language))
        words = tuple(Word(float(i), i + 0.5, f" {language}{i}") for i in range(int(seconds))
                      if np.abs(audio[i * RATE:(i + 1) * RATE]).max(initial=0.0) > 0.01)
        return [Segment(0.0, seconds, "".join(w.text for w in words), words)] if words else []

    def release_memory(self) -> None:
        self.released += 1

    def idle(self) -> None:
        self.idled += 1

    def gpu_bytes(self) -> int | None:
        return None


def media_info(path: Path, duration: float | None, offset: float = 0.0,
               language: str | None = None) -> MediaInfo:
    stream = AudioStream(0, language, "", 1, True, False, offset)
    return MediaInfo(path, stream, duration, 1)


@dataclass
class FakeMedia:
    """A file whose audio is the given samples; records what the pipeline wrote."""

    audio: np.ndarray
    offset: float = 0.0
    written: dict[Path, list[Cue]] = field(default_factory=dict)
    roles: dict[Path, Role] = field(default_factory=dict)
    language: str | None = None  # the audio track's tag

    def tools(self, transcriber: FakeTranscriber) -> Tools:
        return Tools(self.probe, self.open_audio, transcriber, self.write,
                     LoudnessProbabilities)

    def probe(self, path: Path) -> MediaInfo:
        return media_info(path, len(self.audio) / RATE, self.offset, self.language)

    def open_audio(self, info: MediaInfo, start: float | None,
                   duration: float | None) -> Iterable[np.ndarray]:
        first = int((start or 0.0) * RATE)
        last = len(self.audio) if duration is None else first + int(duration * RATE)
        part = self.audio[first:last]
        return (part[i:i + 4 * RATE] for i in range(0, len(part), 4 * RATE))

    def write(self, target: Path, cues: list[Cue], role: Role) -> None:
        self.written[target] = cues
        self.roles[target] = role


def tone(seconds: float, level: float = 0.5) -> np.ndarray:
    return np.full(int(seconds * RATE), level, dtype=np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.float32)
