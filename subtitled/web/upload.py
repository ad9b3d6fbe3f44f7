"""An upload streamed to a spool file: the multipart part a client names is written to
disk as it arrives (never held whole in memory) and hashed on the way, within a size
limit, from a client that keeps sending. Raw PCM (Bazarr's `encode=false`: s16le, 16 kHz,
mono) gets a WAV header, so that ffprobe and ffmpeg read it like any file."""

from __future__ import annotations

import asyncio
import hashlib
import os
import struct
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

if TYPE_CHECKING:  # a type its module defines for type checkers only
    from python_multipart.multipart import MultipartCallbacks

# A WAV file's sizes are 32-bit: 4 GiB of PCM, about 37 hours at 16 kHz.
MAX_UPLOAD_BYTES = 2**32 - 64
_WAV_HEADER_BYTES = 44


class UploadRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class Upload:
    path: Path  # the spool file, under a temporary name in the folder
    sha256: str  # of the part's bytes
    size_bytes: int  # of the part


def wav_header(data_bytes: int) -> bytes:
    """RIFF/WAVE for 16-bit mono PCM at 16 kHz."""
    return struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16,
                       1, 1, 16_000, 32_000, 2, 16, b"data", data_bytes)


def _checked(request: Request, part: str, limit_bytes: int) -> bytes:
    """The multipart boundary, once the headers say the body may be taken."""
    kind, options = parse_options_header(request.headers.get("content-type"))
    if kind != b"multipart/form-data" or b"boundary" not in options:
        raise UploadRefused(415, f"expected multipart/form-data with a {part!r} part")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit_bytes + 65536:
        raise UploadRefused(413, f"a body of {declared} bytes; at most {limit_bytes}")
    return options[b"boundary"]


async def _parse(request: Request, boundary: bytes, sink: _PartSink,
                 idle_seconds: float) -> None:
    parser = MultipartParser(boundary, sink.callbacks())
    try:
        async for chunk in paced(request.stream(), idle_seconds):
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as err:
        raise UploadRefused(400, f"a malformed multipart body: {err}") from None


async def drain(request: Request, part: str, *, raw_pcm: bool, idle_seconds: float,
                limit_bytes: int = MAX_UPLOAD_BYTES) -> None:
    """Read the upload to its end and keep nothing (the client must finish sending), with
    the same checks as `receive`."""
    boundary = _checked(request, part, limit_bytes)
    with open(os.devnull, "wb") as nowhere:
        sink = _PartSink(part, nowhere, limit_bytes)
        await _parse(request, boundary, sink, idle_seconds)
        sink.upload(Path(os.devnull), raw_pcm)


async def receive(request: Request, part: str, folder: Path, *, raw_pcm: bool,
                  idle_seconds: float, limit_bytes: int = MAX_UPLOAD_BYTES) -> Upload:
    """The part named `part` of the request's multipart body, spooled into `folder`."""
    boundary = _checked(request, part, limit_bytes)
    folder.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=folder, prefix=".upload-")
    try:
        with open(handle, "wb") as spool:
            if raw_pcm:
                spool.write(wav_header(0))
            sink = _PartSink(part, spool, limit_bytes)
            await _parse(request, boundary, sink, idle_seconds)
            upload = sink.upload(Path(name), raw_pcm)
            if raw_pcm:
                spool.seek(0)
                spool.write(wav_header(upload.size_bytes))
        return upload
    except BaseException:
        Path(name).unlink()
        raise


class _PartSink:
    """python-multipart's callbacks: the named part's bytes go to the file and the hash."""

    def __init__(self, part: str, out: IO[bytes], limit_bytes: int) -> None:
        self.part, self.out, self.limit_bytes = part, out, limit_bytes
        self.hash = hashlib.sha256()
        self.size = 0
        self.found = self._writing = False
        self._field, self._value, self._name = b"", b"", b""

    def callbacks(self) -> MultipartCallbacks:
        return {"on_header_field": self._header_field, "on_header_value": self._header_value,
                "on_header_end": self._header_end, "on_headers_finished": self._headers_done,
                "on_part_data": self._data, "on_part_end": self._part_end}

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if self._field.lower() == b"content-disposition":
            self._name = parse_options_header(self._value)[1].get(b"name", b"")
        self._field, self._value = b"", b""

    def _headers_done(self) -> None:
        self._writing = self._name == self.part.encode() and not self.found
        self.found = self.found or self._writing
        self._name = b""

    def _data(self, data: bytes, start: int, end: int) -> None:
        if not self._writing:
            return
        self.size += end - start
        if self.size > self.limit_bytes:
            raise UploadRefused(413, f"the {self.part!r} part is over {self.limit_bytes} bytes")
        piece = data[start:end]
        self.out.write(piece)
        self.hash.update(piece)

    def _part_end(self) -> None:
        self._writing = False

    def upload(self, path: Path, raw_pcm: bool) -> Upload:
        if not self.found:
            raise UploadRefused(400, f"no {self.part!r} part in the form")
        if self.size == 0:
            raise UploadRefused(400, f"the {self.part!r} part is empty")
        if raw_pcm and self.size % 2:
            raise UploadRefused(400, f"{self.size} bytes of audio: raw 16-bit PCM comes in "
                                     "pairs of bytes (encode=false)")
        return Upload(path, self.hash.hexdigest(), self.size)


async def paced(stream: AsyncIterator[bytes], idle_seconds: float) -> AsyncIterator[bytes]:
    """The stream's chunks, or a 408 once the client has been silent too long."""
    chunks = aiter(stream)
    while True:
        try:
            yield await asyncio.wait_for(anext(chunks), idle_seconds)
        except StopAsyncIteration:
            return
        except ClientDisconnect:  # nobody reads the answer; nothing to log but this
            raise UploadRefused(400, "the client went away in the middle of its request") \
                from None
        except TimeoutError:
            raise UploadRefused(408, f"the client sent nothing for {idle_seconds:.0f} s in "
                                     "the middle of its request") from None
