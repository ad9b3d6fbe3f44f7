"""A one-line progress bar for terminals: audio seconds done / total and the time left."""

from __future__ import annotations

import time
from typing import TextIO

_WIDTH = 24


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ProgressBar:
    def __init__(self, stream: TextIO, label: str) -> None:
        self.stream, self.label = stream, label
        self.started = time.monotonic()
        self.shown = False

    def __call__(self, done_seconds: float, total_seconds: float | None,
                 language: str | None = None) -> None:
        elapsed = time.monotonic() - self.started
        if total_seconds and total_seconds > 0:
            share = min(1.0, done_seconds / total_seconds)
            filled = int(share * _WIDTH)
            eta = elapsed * (1 - share) / share if share > 0 else 0.0
            bar = f"[{'#' * filled}{'.' * (_WIDTH - filled)}] {done_seconds:7.1f}/" \
                  f"{total_seconds:.1f} s  ETA {_clock(eta)}"
        else:
            bar = f"{done_seconds:7.1f} s"
        spoken = f"  [{language}]" if language else ""
        self.stream.write(f"\r{self.label[-40:]:40} {bar}{spoken}\x1b[K")
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
