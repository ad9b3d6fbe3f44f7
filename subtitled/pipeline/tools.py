"""What the pipeline is handed (its collaborators and hooks) and what it hands back."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from subtitled.cues import Cue
from subtitled.engines.base import Transcriber, Word
from subtitled.language import LanguageGuess
from subtitled.media import MediaInfo
from subtitled.pipeline.engine_calls import Alive, no_watch
from subtitled.speech import SpeechProbabilities

Status = Literal["written", "no-speech", "exists", "skipped", "detected", "held"]
Probe = Callable[[Path], MediaInfo]
OpenAudio = Callable[[MediaInfo, float | None, float | None], Iterable[np.ndarray]]
"""(media, start seconds, duration seconds or None for the rest) → 16 kHz mono float32
blocks."""
Role = Literal["tracked", "beside"]
Write = Callable[[Path, list[Cue], Role], None]
"""(target, cues, role): the job's own subtitle, which the store tracks and which is
written first, or one written after it beside it (another format, a translation)."""
Progress = Callable[[float, float | None, str | None], None]
"""(audio seconds done, total seconds or None, ISO code of the language being decoded)."""


@dataclass(frozen=True)
class Resume:
    """What earlier attempts at this file decoded: every word before `decoded_seconds`
    (source time), and the language they were decoded in; and the words of the
    translation beside it, if they made one."""

    decoded_seconds: float
    language: LanguageGuess
    words: tuple[Word, ...]
    translated: tuple[Word, ...] | None = None
    # The stretches in another language, if they made a forced subtitle.
    foreign: tuple[tuple[float, float], ...] | None = None


class Checkpoints(Protocol):
    """Where decoded words are kept between batches, so that a stop or a crash does not
    throw away hours of a long film."""

    def load(self) -> Resume | None: ...

    def save(self, decoded_seconds: float, language: LanguageGuess, words: list[Word],
             translated: list[Word] | None = None,
             foreign: Sequence[tuple[float, float]] | None = None) -> None:
        """Everything before `decoded_seconds` is decoded; `words` are the ones that this
        save adds (and `translated`, those of the translation beside it, if one is made;
        `foreign`, the stretches in another language found, for a forced subtitle)."""
        ...


@dataclass(frozen=True)
class Tools:
    """What the pipeline needs from the outside world."""

    probe: Probe
    open_audio: OpenAudio
    transcriber: Transcriber
    write: Write
    speech_probabilities: Callable[[], SpeechProbabilities]
    # Raises when the subtitle could not be written beside this media file.
    check_output: Callable[[Path], None] = lambda media: None


def _no_progress(done: float, total: float | None, language: str | None) -> None:
    del done, total, language


@dataclass(frozen=True)
class Hooks:
    """How the caller follows and steers one job: progress as audio is taken in, `alive`
    while the engine computes (it may raise to stop), checkpoints between batches.
    `previous` says whether a subtitle found at the target is the one this program wrote
    for the file ("ours", replaced when the file changed) or was edited since ("edited",
    kept; None on a forced redo, which replaces whatever is there in its language);
    `wrote` says the same, even on a forced redo, for the subtitles beside it (a
    translation, a forced subtitle), which are never taken from anyone;
    `language_hint` is the language recorded for the file before it changed, with which a
    kept subtitle is found before any audio is read."""

    progress: Progress = _no_progress
    alive: Alive = field(default=no_watch)
    checkpoints: Checkpoints | None = None
    previous: Callable[[Path], Previous] | None = None
    wrote: Callable[[Path], Previous] | None = None
    language_hint: str | None = None


Previous = Literal["ours", "edited"] | None


@dataclass(frozen=True)
class Outcome:
    path: Path
    status: Status
    output: Path | None
    language: str | None  # ISO code of the file's main language
    language_confidence: float | None
    cue_count: int
    audio_seconds: float
    speech_seconds: float
    wall_seconds: float
    reason: str | None = None  # why it was skipped, or which subtitle already exists
    windows_decoded: int = 0  # engine work: chunks decoded, each a Whisper window
    quality: str | None = None  # why the subtitle is likely bad (subtitled.quality)
    flags: tuple[str, ...] = ()  # and the kinds of reason, for /metrics
    translation: Path | None = None  # the English translation written beside the subtitle
    forced: Path | None = None  # the forced subtitle written beside it (foreign stretches)
    detection_windows: int = 0  # windows heard to find the foreign stretches
    # The subtitles written from the other audio tracks (language.each_audio_language).
    tracks: tuple[Path, ...] = ()
    # A quiet file (subtitled.levels): its dialogue's level against its loudest passages;
    # and the words its second look found where speech detection heard none.
    quiet: str | None = None
    second_look_words: int = 0

    @property
    def realtime_factor(self) -> float:
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0
