"""Audio extraction: a pure ffmpeg-python graph builder and the one place that runs ffmpeg."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import select
import signal
import subprocess
import threading
from collections.abc import Generator
from pathlib import Path
from typing import IO

import numpy as np

from subtitled import failpoints, faults
from subtitled.errors import EnvironmentFault, MediaError, TransientError
from subtitled.media import AudioStream, ffmpeg_url

logger = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 16_000
BYTES_PER_SAMPLE = 2  # s16le
BLOCK_SECONDS = 10.0  # what is held in memory from the pipe at once
_STDERR_LINES_KEPT = 20
# Decoded audio shorter than this share of the stated length means the file is cut short.
_COMPLETE_SHARE = 0.9


_INPUT_PLACEHOLDER = "file:subtitled-input"


def build_extract_args(
    path: Path,
    stream: AudioStream,
    *,
    start_seconds: float | None = None,
    duration_seconds: float | None = None,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
) -> list[str]:
    """The ffmpeg argv that writes one track as mono s16le PCM to stdout."""
    import ffmpeg  # ffmpeg-python; pure graph building, no process is started here

    input_options: dict[str, str] = {}
    if start_seconds is not None:
        input_options["ss"] = f"{start_seconds:.3f}"  # input-side seek: fast, keyframe-exact
    if duration_seconds is not None:
        input_options["t"] = f"{duration_seconds:.3f}"
    # ffmpeg-python hashes its graph as UTF-8 text, which a file name that is not UTF-8 (a
    # Latin-1 name from an old share) cannot be; the real name goes in after compiling.
    source = ffmpeg.input(_INPUT_PLACEHOLDER, **input_options)
    output = ffmpeg.output(
        source[str(stream.index)],
        "pipe:",
        format="s16le",
        acodec="pcm_s16le",
        ac=1,
        ar=sample_rate_hz,
    ).global_args("-nostdin", "-hide_banner", "-loglevel", "error")
    args: list[str] = ffmpeg.compile(output, cmd="ffmpeg")
    return [ffmpeg_url(path) if arg == _INPUT_PLACEHOLDER else arg for arg in args]


_POINTER = re.compile(r" @ 0x[0-9a-f]+")


def _drain(pipe: IO[bytes], keep: list[str]) -> None:
    """Keep the first lines of ffmpeg's stderr (a broken file can print millions)."""
    for raw in iter(pipe.readline, b""):
        if len(keep) >= _STDERR_LINES_KEPT:
            continue
        # "[matroska,webm @ 0x55ce7a138940] File ended prematurely" → "[matroska,webm] ..."
        line = _POINTER.sub("", raw.decode("utf-8", "replace")).strip()
        if line:
            keep.append(line)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Kill ffmpeg's whole process group if it is still running, and reap it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def stream_pcm(
    args: list[str],
    path: Path,
    *,
    expected_seconds: float | None = None,
    block_samples: int = int(BLOCK_SECONDS * SAMPLE_RATE_HZ),
    stall_seconds: float = 120.0,
    empty_ok: bool = False,
) -> Generator[np.ndarray, None, None]:
    """Run ffmpeg and yield float32 blocks of at most `block_samples` samples.

    Memory stays at one block however long the file is. Closing the generator early
    kills ffmpeg. A non-zero exit or an exit with no audio at all (unless `empty_ok`: a
    window asked for past the end) raises MediaError with ffmpeg's own words. Audio far
    shorter than `expected_seconds` is a TransientError when the file changed meanwhile
    (still being copied), a MediaError when ffmpeg reported damage (truncated), and
    otherwise only a warning: the stated length was wrong. An ffmpeg that writes nothing
    for `stall_seconds` (a hung network share, a device that never answers) is killed:
    TransientError.
    """
    started = _identity(path)
    try:
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, so _stop reaps any children
        )
    except OSError as err:
        raise EnvironmentFault(f"cannot run ffmpeg: {err}", kind="tool", path=path,
                               stage="extract") from err
    assert process.stdout is not None and process.stderr is not None
    stderr_head: list[str] = []
    drainer = threading.Thread(target=_drain, args=(process.stderr, stderr_head), daemon=True)
    drainer.start()
    total = 0
    try:
        block_bytes = block_samples * BYTES_PER_SAMPLE
        while True:
            data = _read_exactly(process.stdout.fileno(), block_bytes, stall_seconds)
            if data is None:
                raise TransientError(f"ffmpeg produced no audio for {stall_seconds:g} s; "
                                     "stopped it", path=path, stage="extract")
            usable = len(data) - len(data) % BYTES_PER_SAMPLE
            if usable:
                total += usable // BYTES_PER_SAMPLE
                yield np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0
            failpoints.hit("mid-extraction", path.name)  # ffmpeg still running
            failpoints.os_error("read", path.name)
            if len(data) < block_bytes:
                break
        returncode = process.wait()
        drainer.join()
    except OSError as err:  # reading the pipe, or the read failpoint
        raise faults.from_os_error(err, path=path, stage="extract") from err
    finally:
        _stop(process)
        process.stdout.close()
        drainer.join(timeout=5)
        process.stderr.close()
    # With -loglevel error, ffmpeg's first line is the cause; later ones are consequences
    # ("Conversion failed!", "To ignore this, add a trailing '?'...").
    if returncode != 0:
        cause = stderr_head[0] if stderr_head else "no error output"
        raise faults.from_tool_exit("ffmpeg", returncode,
                                    f"ffmpeg exited with {returncode}: {cause}", path=path,
                                    stage="extract")
    cause = f" ({stderr_head[0]})" if stderr_head else ""
    if total == 0 and not empty_ok:
        raise MediaError(f"the audio track decodes to no samples{cause}", path=path,
                         stage="extract")
    decoded_seconds = total / SAMPLE_RATE_HZ
    if expected_seconds and decoded_seconds < expected_seconds * _COMPLETE_SHARE - 1.0:
        short = f"the audio ends after {decoded_seconds:.1f} s but the file says it lasts " \
                f"{expected_seconds:.1f} s"
        if _identity(path) != started:
            raise TransientError(f"{short}: still being written", path=path, stage="extract")
        if stderr_head:  # ffmpeg saw the damage: a cut or broken file
            raise MediaError(f"{short}: truncated{cause}", path=path, stage="extract")
        # A clean decode of a file that did not change: only the container's stated length
        # is wrong (an MP3 without a VBR header, an estimated .ts or .avi duration).
        logger.warning("%s: %s; ffmpeg read it to the end without an error, so the stated "
                       "length is wrong: the subtitle covers the audio there is", path, short)


def _identity(path: Path) -> tuple[int, int] | None:
    """Size and mtime, to tell a file still being written from one that is complete."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns


def _read_exactly(descriptor: int, size: int, stall_seconds: float) -> bytes | None:
    """Read `size` bytes unless the stream ends first (pipes return short reads); None when
    nothing arrives for `stall_seconds`."""
    parts = []
    remaining = size
    while remaining:
        ready, _, _ = select.select([descriptor], [], [], stall_seconds)
        if not ready:
            return None
        chunk = os.read(descriptor, min(remaining, 1 << 20))
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)
