"""Whose failure is it: the file's or the world's? Decided here, in one place.

- gone: the file is no longer there (ENOENT, ENOTDIR). Its job is forgotten.
- bad: the media cannot be used (`MediaError`). The file fails.
- the environment is failing (`EnvironmentFault`): a share that answers EIO, ESTALE,
  ETIMEDOUT or ENOTCONN, a full or read-only disk, a folder the sandbox did not open, a
  tool killed by a signal, an engine error that is not about memory. The file keeps its
  attempts and waits; `service.breaker` pauses the daemon when such faults repeat.

`probe` answers whether a fault's cause has cleared, by doing what failed on a small scale:
list and read the folder, write and remove a file in it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from subtitled import failpoints
from subtitled.errors import EngineStuck, EnvironmentFault, MediaError, SubtitledError

_T = TypeVar("_T")
GONE_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR})
_KINDS = {
    # A share or disk that stopped answering.
    "storage": {errno.EIO, errno.ESTALE, errno.ETIMEDOUT, errno.ENOTCONN, errno.EHOSTDOWN,
                errno.EHOSTUNREACH, errno.ENETDOWN, errno.ENETUNREACH, errno.ECONNRESET,
                errno.ECONNABORTED, errno.ECONNREFUSED, errno.ENXIO, errno.ENODEV,
                errno.ENOLINK, errno.EREMOTEIO, errno.EAGAIN, errno.EBUSY, errno.ENOMEDIUM},
    "space": {errno.ENOSPC, errno.EDQUOT},
    "read-only": {errno.EROFS},
    "access": {errno.EACCES, errno.EPERM},
}
# How a tool says that its input's storage failed, in the words of strerror(3).
_STORAGE_WORDS = tuple(os.strerror(code).lower() for code in
                       sorted(_KINDS["storage"] | _KINDS["space"] | _KINDS["read-only"]))
# CUDA errors after which the context is unusable until the process ends.
_STICKY = ("illegal memory access", "unspecified launch failure", "misaligned address",
           "device-side assert", "uncorrectable ecc", "illegal instruction",
           "cublas_status_execution_failed", "cublas_status_internal_error",
           "cublas_status_not_initialized", "cudnn_status_execution_failed",
           "cudnn_status_internal_error", "cuda error: unknown error",
           "cuda error: launch timeout", "gpu has fallen off the bus")
# Signals with which a tool crashes on its input, rather than being killed from outside.
_CRASHES = frozenset({signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL,
                      signal.SIGABRT})
# A probe writes this much: enough to tell "a few bytes free" from "room for a subtitle".
PROBE_BYTES = 1 << 20


def is_gone(err: OSError) -> bool:
    return err.errno in GONE_ERRNOS or isinstance(err, FileNotFoundError | NotADirectoryError)


def kind_of(code: int | None) -> str | None:
    """The environment fault an errno means, or None when it speaks of the file itself."""
    return next((kind for kind, codes in _KINDS.items() if code in codes), None)


def from_os_error(err: OSError, *, path: Path | None, stage: str,
                  where: Path | None = None) -> SubtitledError:
    """An OSError met while working on `path`: an EnvironmentFault when it is the world's
    (probed at `where`, by default the file's folder), else a MediaError."""
    reason = err.strerror or str(err)
    kind = kind_of(err.errno)
    if kind is None:
        return MediaError(reason, path=path, stage=stage)
    folder = where if where is not None else (path.parent if path is not None else None)
    return EnvironmentFault(reason, kind=kind, path=path, stage=stage, where=folder)


def from_tool_exit(tool: str, returncode: int, message: str, *, path: Path,
                   stage: str) -> SubtitledError:
    """ffmpeg or ffprobe ended with `returncode` and `message` describes it: killed by a
    signal (the OOM killer, a stop) or reporting a failing share is the world's fault; the
    rest is the file's."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        if -returncode in _CRASHES:  # the tool crashed on this input
            return MediaError(f"{tool} crashed ({name})", path=path, stage=stage)
        return EnvironmentFault(f"{tool} was killed by {name}", kind="tool", path=path,
                                stage=stage)
    lowered = message.lower()
    if any(words in lowered for words in _STORAGE_WORDS):
        return EnvironmentFault(message, kind="storage", path=path, stage=stage,
                                where=path.parent)
    return MediaError(message, path=path, stage=stage)


def from_engine_error(err: BaseException, *, path: Path | None) -> EnvironmentFault:
    """An engine call raised something that is not about memory: a sticky CUDA error needs
    a new process; anything else is presumed the engine's state, not the file's."""
    text = " ".join(f"{type(err).__name__}: {err}".split())
    if any(sign in text.lower() for sign in _STICKY):
        return EngineStuck(f"the GPU is in a state only a restart clears: {text}",
                           kind="engine", path=path, stage="transcribe")
    return EnvironmentFault(f"the engine failed: {text}", kind="engine", path=path,
                            stage="transcribe")


def probe(fault: EnvironmentFault) -> str | None:
    """None when what failed works again, else why not: the folder lists, the file's
    metadata reads, and where writing failed, a file can be written and removed. A folder
    that is gone has nothing left to wait for. Faults without a folder to check (a tool,
    the engine, memory) report None: only a new try can tell, and the breaker makes one."""
    if fault.check is not None:
        return fault.check()
    folder = fault.where
    if folder is None:
        return None
    try:
        if fault.path is not None:  # a test's injected fault, still armed, fails the probe
            for step in ("stat", "probe", "read", "write"):
                failpoints.os_error(step, fault.path.name)
        with os.scandir(folder) as entries:
            next(entries, None)
        if fault.path is not None and fault.kind in ("storage", "access"):
            with contextlib.suppress(FileNotFoundError):
                fault.path.stat()
        if fault.kind in ("space", "read-only", "access", "state") or \
                fault.stage in ("write", "watch"):
            can_write(folder, PROBE_BYTES if fault.kind in ("space", "state") else 0)
    except OSError as err:
        if is_gone(err) and err.filename in (str(folder), folder):
            return None
        return err.strerror or str(err)
    return None


def within(seconds: float, check: Callable[[], _T | None], late: _T) -> _T | None:
    """`check()` (a problem, or None) on a thread of its own, or the problem `late` when
    it does not answer in time (a hard-mounted share blocks in the kernel; the daemon
    must not block with it)."""
    answer: list[_T | None] = []
    thread = threading.Thread(target=lambda: answer.append(check()), name="probe",
                              daemon=True)
    thread.start()
    thread.join(seconds)
    return answer[0] if answer else late


def can_write(folder: Path, size: int = 0) -> None:
    """Write `size` bytes into a new file in `folder`, sync it and remove it; raises the
    OSError that stops it."""
    descriptor, name = tempfile.mkstemp(prefix=".subtitled-probe-", dir=folder)
    try:
        if size:
            os.write(descriptor, bytes(size))
            os.fsync(descriptor)
    finally:
        os.close(descriptor)
        Path(name).unlink()
