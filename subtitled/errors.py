"""The one error hierarchy; each error knows the file and the stage it belongs to."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def shown(value: Path | str) -> str:
    """A file name as one printable line: bytes that are not UTF-8 (a Latin-1 name from an
    old share) as `\\xe9`, newlines and other control characters escaped, emoji kept."""
    text = os.fsencode(value).decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


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
        parts = [shown(self.path)] if self.path is not None else []
        if self.stage:
            parts.append(self.stage)
        parts.append(" ".join(shown(self.message).split()))
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


class EnvironmentFault(SubtitledError):
    """The world failed, not the file: a share that dropped out, a full or read-only disk,
    a tool killed by a signal, an engine in a bad state. The file keeps its attempts and
    waits; faults that repeat pause the daemon until a probe finds the cause cleared.

    `kind` names the cause (storage, space, read-only, access, tool, engine, state) and
    `where` the folder whose recovery a probe can check (None: only a new try can tell);
    `check`, a probe of its own (a database server: does it answer?), None or why not."""

    def __init__(self, message: str, *, kind: str, path: Path | None = None,
                 stage: str = "", where: Path | None = None,
                 check: Callable[[], str | None] | None = None) -> None:
        super().__init__(message, path=path, stage=stage)
        self.kind = kind
        self.where = where
        self.check = check


class EngineStuck(EnvironmentFault):
    """The engine's device is in a state only a new process clears (a sticky CUDA error:
    an illegal memory access, a failed cuBLAS or cuDNN call). The daemon ends with this
    exit status so that systemd starts it afresh; the file keeps its attempts."""

    exit_code = 75  # EX_TEMPFAIL: try again later


class OutputExistsError(SubtitledError):
    """A subtitle for this language already exists and overwriting was not asked for."""
