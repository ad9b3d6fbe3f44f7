"""The one error hierarchy; each error knows the file and the stage it belongs to."""

from __future__ import annotations

from pathlib import Path


class SubtitledError(Exception):
    """Base class. `stage` names the step that failed (probe, extract, model, write...)."""

    exit_code = 1

    def __init__(self, message: str, *, path: Path | None = None, stage: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.stage = stage

    def one_line(self) -> str:
        """`PATH: stage: cause` on one line, for logs and the terminal."""
        parts = [str(self.path)] if self.path is not None else []
        if self.stage:
            parts.append(self.stage)
        parts.append(" ".join(self.message.split()))
        return ": ".join(parts)


class ConfigError(SubtitledError):
    """The configuration or a command-line option is invalid."""

    exit_code = 2


class ModelError(SubtitledError):
    """The model cannot be found, downloaded or loaded; no file can be processed."""

    exit_code = 3


class MediaError(SubtitledError):
    """The input itself is unusable (corrupt, no audio, unreadable); retrying will not help."""


class TransientError(SubtitledError):
    """A failure that may pass (GPU out of memory, disk full, file busy); worth a retry."""


class OutputExistsError(SubtitledError):
    """A subtitle for this language already exists and overwriting was not asked for."""
