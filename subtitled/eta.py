"""How long the backlog will take: the audio still to transcribe (each queued file's length,
probed in the background; files not probed yet counted at the probed ones' mean length)
over the realtime factor of the files finished last, on every host working on it."""

from __future__ import annotations

from dataclasses import dataclass

# The realtime factor is measured over this many of the files finished last: enough to
# even out a short clip's fixed costs, few enough to follow a change of model or load.
RECENT_FILES = 20


@dataclass(frozen=True)
class Backlog:
    files: int  # queued
    probed_files: int  # of them, those whose length is known
    probed_seconds: float  # their audio
    running_seconds: float  # left of the files being transcribed now
    recent_audio_seconds: float  # of the files finished last...
    recent_wall_seconds: float  # ...and the time they took
    hosts: int = 1  # transcribing it together (a shared store)

    @property
    def audio_seconds(self) -> float | None:
        """Audio left to transcribe; None while no queued file's length is known."""
        if self.files == 0:
            return self.running_seconds
        if self.probed_files == 0:
            return None
        return self.running_seconds + self.probed_seconds * self.files / self.probed_files

    @property
    def realtime_factor(self) -> float | None:
        """Audio seconds per wall second, per host, over the files finished last."""
        if self.recent_wall_seconds <= 0 or self.recent_audio_seconds <= 0:
            return None
        return self.recent_audio_seconds / self.recent_wall_seconds

    @property
    def eta_seconds(self) -> float | None:
        audio, factor = self.audio_seconds, self.realtime_factor
        if audio is None or factor is None:
            return None
        return audio / (factor * max(1, self.hosts))

    def describe(self) -> str:
        """One line: "backlog 412 h of audio, about 9 days at 1.9x realtime"."""
        audio, factor, eta = self.audio_seconds, self.realtime_factor, self.eta_seconds
        if audio is None:
            return f"backlog {self.files} files, their length not probed yet"
        if audio <= 0:
            return "backlog empty"
        if eta is None or factor is None:
            return f"backlog {duration(audio, days=False)} of audio, ETA after the first file"
        hosts = f" on {self.hosts} hosts" if self.hosts > 1 else ""
        return f"backlog {duration(audio, days=False)} of audio, about {duration(eta)} at " \
               f"{factor:.1f}x realtime{hosts}"


def duration(seconds: float, *, days: bool = True) -> str:
    """A length as a person says it: 4.2 s, 40 s, 12 min, 3.5 h, 412 h, 9 days (`days`: a time
    to wait; audio is counted in hours)."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 10 * 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds < 3 * 86400 or not days:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"
