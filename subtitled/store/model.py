"""What the job store holds and gives back, whatever its database."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from subtitled import failpoints

State = Literal["queued", "running", "done", "failed", "skipped", "dead"]
STATES: tuple[State, ...] = ("queued", "running", "done", "failed", "skipped", "dead")
PRIORITY_NEW = 10  # a file that just arrived
PRIORITY_BACKFILL = 0  # the existing library
# A running job's lease (a shared store) is renewed this many times in its length; one
# renewal interval is the most a store call waits for a connection there.
RENEWALS_PER_LEASE = 4


class LeaseLost(Exception):
    """The job is no longer this process's to finish: its lease expired and another host
    claimed it (a shared store), half its lease passed without a renewal that got through
    (the database down: once the lease runs out, another host may claim it the moment the
    database answers), or it was put back meanwhile. Nothing of it is written."""

    def __init__(self, path: Path, why: str = "another host has claimed it") -> None:
        super().__init__(f"{path}: no longer ours ({why})")
        self.path = path


class LeaseUnrenewed(LeaseLost):
    """Half the job's lease passed without a renewal that got through, the database
    failing them: the job is let go, and its attempt is given back once the database
    answers (`JobStore.give_back`)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "its lease could not be renewed for half its term")


@dataclass(frozen=True)
class Fingerprint:
    size: int
    mtime_ns: int
    inode: int

    def same_content(self, other: Fingerprint) -> bool:
        """The same size and mtime: the same file, though perhaps another inode (a share
        mounted again, a library moved with its times kept)."""
        return (self.size, self.mtime_ns) == (other.size, other.mtime_ns)

    @classmethod
    def of(cls, path: Path) -> Fingerprint:
        failpoints.os_error("stat", path.name)
        info = path.stat()
        return cls(info.st_size, info.st_mtime_ns, info.st_ino)


@dataclass(frozen=True)
class Job:
    id: int
    path: Path
    fingerprint: Fingerprint
    state: State
    priority: int
    attempts: int
    last_error: str | None
    error_class: str | None
    updated: float
    started: float | None
    language: str | None
    audio_seconds: float | None
    wall_seconds: float | None
    output: str | None
    sticky_exits: int = 0  # times the GPU needed a new process while on this file
    written_path: str | None = None  # the subtitle last written for the file...
    written_sha256: str | None = None  # ...and its content then, to tell an edit
    force: bool = False  # redo it, replacing any subtitle in its language (retry --force)
    request: str | None = None  # what a client asked of this file (JSON; service.requests)
    confidence: float | None = None  # of the language found, for a detection request
    host: str | None = None  # the host that claimed it last
    lease: int = 0  # that claim's token: writes of its outcome are fenced by it
    lease_expires: float | None = None  # (a shared store) until the holder renews it
    quality: str | None = None  # why its subtitle is likely bad (subtitled.quality)
    # The subtitles written beside the tracked one (other formats, a translation): each
    # one's name in the file's folder, with the hashes of what was written there.
    beside: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    # Its dialogue's level, when the file was quiet (subtitled.levels).
    quiet: str | None = None

    def wrote(self, subtitle: Path) -> tuple[str, ...] | None:
        """The hashes of what this job wrote at `subtitle`; None: it wrote nothing there
        (that it knows of)."""
        if self.written_path is not None and Path(self.written_path) == subtitle:
            return (self.written_sha256,) if self.written_sha256 else ()
        if subtitle.parent != self.path.parent:
            return None
        return self.beside.get(subtitle.name)


@dataclass(frozen=True)
class HostClaims:
    """A host holding claims in a shared store, as `status` and /metrics show it."""

    host: str
    running: int  # jobs it holds
    renewed_ago: float  # seconds since it last renewed one of their leases
    expires_in: float  # seconds until the first of them expires (negative: expired)


@dataclass(frozen=True)
class Result:
    language: str | None
    cue_count: int
    audio_seconds: float
    wall_seconds: float
    output: Path | None
    confidence: float | None = None  # of the language, when that was what was asked
    quality: str | None = None  # why the subtitle is likely bad (subtitled.quality)
    quiet: str | None = None  # its dialogue's level, when the file is quiet (subtitled.levels)


def text_sha256(text: str) -> str:
    """The SHA-256 of a subtitle's text as it is written (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_sha256(path: Path) -> str | None:
    """The SHA-256 of a (small) file, or None when it cannot be read."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
