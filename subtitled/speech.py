"""Speech detection (silero-vad) and cutting the speech into chunks of at most 30 s, streaming."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from subtitled.audio import SAMPLE_RATE_HZ
from subtitled.config import SpeechSettings

FRAME_SAMPLES = 512  # silero-vad's frame at 16 kHz (32 ms)
_CONTEXT_SAMPLES = 64
_FRAMES_PER_CALL = 512
# Silence put between two stretches of speech glued into one chunk: with none, the word
# alignment smears the first word of a stretch back onto the end of the one before.
_GLUE_GAP_SAMPLES = SAMPLE_RATE_HZ * 6 // 10
# A word this far outside every piece of its chunk was heard in the audio around the
# speech that a whole stream keeps (music, noise, silence), and is dropped. At least half
# the widest gap between glued pieces (1 s, the second pass's): a glued chunk holds
# nothing but its pieces and their gaps, so there it drops nothing.
OUTSIDE_SPEECH_SECONDS = 0.5

SpeechProbabilities = Callable[[np.ndarray], np.ndarray]
"""Maps the next samples of a stream to one speech probability per completed frame."""


class SileroSpeechProbabilities:
    """silero-vad's sequence ONNX model, fed block by block with its state carried over."""

    def __init__(self, session: Any = None) -> None:
        if session is None:
            import onnxruntime  # heavy; only needed once audio is being processed

            model = _silero_data() / "silero_vad_16k_sequence.onnx"
            options = onnxruntime.SessionOptions()
            options.inter_op_num_threads = 1
            options.intra_op_num_threads = 1
            session = onnxruntime.InferenceSession(
                str(model), sess_options=options, providers=["CPUExecutionProvider"]
            )
        self._session: Any = session
        self.reset()

    def fresh(self) -> SileroSpeechProbabilities:
        """A new stream on the same model: an onnxruntime session may run in several
        threads at once, and the stream's state lives here, not in the session."""
        return SileroSpeechProbabilities(self._session)

    def reset(self) -> None:
        self._hidden = np.zeros((1, 1, 128), dtype=np.float32)
        self._cell = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(_CONTEXT_SAMPLES, dtype=np.float32)
        self._leftover = np.zeros(0, dtype=np.float32)

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        data = np.concatenate((self._leftover, samples.astype(np.float32, copy=False)))
        count = len(data) // FRAME_SAMPLES
        self._leftover = data[count * FRAME_SAMPLES :]
        if count == 0:
            return np.zeros(0, dtype=np.float32)
        frames = data[: count * FRAME_SAMPLES].reshape(count, FRAME_SAMPLES)
        contexts = np.empty((count, _CONTEXT_SAMPLES), dtype=np.float32)
        contexts[0] = self._context
        contexts[1:] = frames[:-1, -_CONTEXT_SAMPLES:]
        self._context = frames[-1, -_CONTEXT_SAMPLES:].copy()
        inputs = np.concatenate((contexts, frames), axis=1)
        probabilities = []
        for first in range(0, count, _FRAMES_PER_CALL):
            values, self._hidden, self._cell = self._session.run(
                ["speech_probs", "hn", "cn"],
                {"input": inputs[first : first + _FRAMES_PER_CALL], "h": self._hidden,
                 "c": self._cell},
            )
            probabilities.append(np.asarray(values, dtype=np.float32).reshape(-1))
        return np.concatenate(probabilities)


def _silero_data() -> Path:
    """silero-vad's data folder, found without importing the package: its __init__ imports
    torch, three seconds of start-up for a model we run with onnxruntime."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("silero_vad is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@dataclass(frozen=True)
class Piece:
    """A stretch of source audio placed at `chunk_start_seconds` inside a chunk."""

    chunk_start_seconds: float
    source_start_seconds: float
    duration_seconds: float


@dataclass(frozen=True)
class Chunk:
    """At most `max_chunk_seconds` of speech, glued from one or more speech regions; or, for
    a stream that fits in one chunk, the whole stream with its speech regions where they
    are (what Whisper's own `transcribe` hears of a short file)."""

    audio: np.ndarray
    pieces: tuple[Piece, ...]

    @property
    def source_start_seconds(self) -> float:
        return self.pieces[0].source_start_seconds

    @property
    def source_end_seconds(self) -> float:
        last = self.pieces[-1]
        return last.source_start_seconds + last.duration_seconds

    @property
    def duration_seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE_HZ

    def to_source(self, start: float, end: float) -> tuple[float, float]:
        """Chunk time → source time. A word belongs to the piece nearest its middle, and
        both ends are kept inside that piece: a word never stretches across the silence
        cut out between pieces, and a word whose start the alignment put a little early
        (into the gap before its piece) is not moved back onto the previous speech."""
        middle = (start + end) / 2
        piece = min(self.pieces, key=lambda p: _distance(middle, p))
        piece_end = piece.chunk_start_seconds + piece.duration_seconds
        start = min(max(start, piece.chunk_start_seconds), piece_end)
        end = min(max(end, start), piece_end)
        shift = piece.source_start_seconds - piece.chunk_start_seconds
        return start + shift, end + shift

    def outside_speech(self, start: float, end: float) -> bool:
        """A word (chunk time) whose middle lies in the chunk's audio but more than
        `OUTSIDE_SPEECH_SECONDS` from every piece: heard in what a whole stream holds
        around its speech, not in the speech. (A word timed past the end of the audio is
        mistimed, not heard there: `to_source` keeps it in the last piece.)"""
        middle = (start + end) / 2
        return 0.0 <= middle <= self.duration_seconds and \
            min(_distance(middle, p) for p in self.pieces) > OUTSIDE_SPEECH_SECONDS

    def halves(self) -> list[Chunk]:
        """Two smaller chunks, cut between pieces where there are several (for retrying
        after running out of GPU memory)."""
        if len(self.pieces) > 1:
            middle = len(self.pieces) // 2
            return [self.sub(0, middle), self.sub(middle, len(self.pieces))]
        piece = self.pieces[0]
        if len(self.audio) > round(piece.duration_seconds * SAMPLE_RATE_HZ):
            return self.sub(0, 1).halves()  # a whole stream: its speech, halved
        half = len(self.audio) // 2
        half_seconds = half / SAMPLE_RATE_HZ
        first = Piece(0.0, piece.source_start_seconds, half_seconds)
        second = Piece(0.0, piece.source_start_seconds + half_seconds,
                       self.duration_seconds - half_seconds)
        return [Chunk(self.audio[:half], (first,)), Chunk(self.audio[half:], (second,))]

    def sub(self, first_piece: int, end_piece: int) -> Chunk:
        """The chunk made of pieces [first_piece, end_piece), re-based to start at 0."""
        pieces = self.pieces[first_piece:end_piece]
        first = round(pieces[0].chunk_start_seconds * SAMPLE_RATE_HZ)
        last = pieces[-1]
        end = round((last.chunk_start_seconds + last.duration_seconds) * SAMPLE_RATE_HZ)
        shift = pieces[0].chunk_start_seconds
        moved = tuple(
            Piece(p.chunk_start_seconds - shift, p.source_start_seconds, p.duration_seconds)
            for p in pieces
        )
        return Chunk(self.audio[first:end], moved)


def glue(chunks: Sequence[Chunk], max_seconds: float, gap_seconds: float) -> list[Chunk]:
    """Chunks packed into as few chunks of at most `max_seconds` as their order allows,
    with `gap_seconds` of silence between them."""
    gap = np.zeros(round(gap_seconds * SAMPLE_RATE_HZ), dtype=np.float32)
    packed: list[Chunk] = []
    for chunk in chunks:
        last = packed[-1] if packed else None
        if last is None or last.duration_seconds + gap_seconds + chunk.duration_seconds \
                > max_seconds:
            packed.append(chunk)
            continue
        shift = last.duration_seconds + gap_seconds
        moved = tuple(Piece(p.chunk_start_seconds + shift, p.source_start_seconds,
                            p.duration_seconds) for p in chunk.pieces)
        packed[-1] = Chunk(np.concatenate((last.audio, gap, chunk.audio)),
                           last.pieces + moved)
    return packed


def _distance(moment: float, piece: Piece) -> float:
    """0 inside the piece, else how far outside."""
    return max(piece.chunk_start_seconds - moment,
               moment - piece.chunk_start_seconds - piece.duration_seconds, 0.0)


class _RegionTracker:
    """Hysteresis over frame probabilities → closed speech regions as (start, end) frames."""

    def __init__(self, settings: SpeechSettings) -> None:
        frame_ms = FRAME_SAMPLES * 1000 / SAMPLE_RATE_HZ
        self._on = settings.threshold
        self._off = settings.neg_threshold
        self._min_silence = max(1, round(settings.min_silence_ms / frame_ms))
        self._min_speech = max(1, round(settings.min_speech_ms / frame_ms))
        pad_frames = settings.speech_pad_ms / frame_ms
        self._max_frames = int(settings.max_chunk_seconds * 1000 / frame_ms - 2 * pad_frames) - 1
        self.frame = 0  # index of the next frame to be seen
        self.start: int | None = None  # first frame of the open region
        self._quiet_since: int | None = None
        self._probs: list[float] = []

    def feed(self, probabilities: Iterable[float]) -> Iterator[tuple[int, int]]:
        for probability in probabilities:
            yield from self._step(float(probability))
            self.frame += 1

    def _step(self, probability: float) -> Iterator[tuple[int, int]]:
        if self.start is not None:
            self._probs.append(probability)
        if probability >= self._on:
            self._quiet_since = None
            if self.start is None:
                self.start, self._probs = self.frame, [probability]
        elif self.start is not None and probability < self._off:
            if self._quiet_since is None:
                self._quiet_since = self.frame
            if self.frame + 1 - self._quiet_since >= self._min_silence:
                yield from self._close(self._quiet_since)
                return
        if self.start is not None and self.frame + 1 - self.start >= self._max_frames:
            yield from self._split()

    def _split(self) -> Iterator[tuple[int, int]]:
        """Cut an over-long region at its least speech-like frame in the second half."""
        assert self.start is not None
        half = len(self._probs) // 2
        cut = half + int(np.argmin(self._probs[half:]))
        start = self.start
        yield (start, start + cut)
        self.start, self._probs = start + cut, self._probs[cut:]
        self._quiet_since = None

    def _close(self, end: int) -> Iterator[tuple[int, int]]:
        assert self.start is not None
        start, self.start, self._quiet_since, self._probs = self.start, None, None, []
        if end - start >= self._min_speech:
            yield (start, end)

    def finish(self) -> Iterator[tuple[int, int]]:
        if self.start is not None:
            yield from self._close(self._quiet_since or self.frame)


class SpeechChunker:
    """Feed PCM blocks in; get chunks of speech out, holding at most about one chunk of audio."""

    def __init__(self, probabilities: SpeechProbabilities, settings: SpeechSettings) -> None:
        self._probabilities = probabilities
        self._tracker = _RegionTracker(settings)
        self._pad = int(settings.speech_pad_ms * SAMPLE_RATE_HZ / 1000)
        self._max_samples = int(settings.max_chunk_seconds * SAMPLE_RATE_HZ)
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_start = 0  # source sample index of _buffer[0]
        self._received = 0
        self._last_end = 0
        self._pending: list[tuple[int, np.ndarray]] = []  # (source start sample, audio)
        self._emitted = False
        self.speech_seconds = 0.0

    def feed(self, samples: np.ndarray) -> list[Chunk]:
        self._buffer = np.concatenate((self._buffer, samples))
        self._received += len(samples)
        chunks = self._take(self._tracker.feed(self._probabilities(samples)))
        chunks += self._full()  # the stream may just have outgrown one chunk
        self._trim()
        return chunks

    @property
    def pending_seconds(self) -> float:
        """Speech found that is not yet in an emitted chunk, the open region included."""
        pending = sum(len(a) for _, a in self._pending)
        if self._tracker.start is not None:
            pending += self._received - self._tracker.start * FRAME_SAMPLES
        return pending / SAMPLE_RATE_HZ

    def finish(self) -> list[Chunk]:
        """The rest of the speech. A stream that fits in one chunk is one chunk of the whole
        stream: decoded with the pauses, music and noise around its words, as Whisper's own
        `transcribe` decodes a short file, its first decode passes or fails Whisper's
        checks as Whisper's does (speech glued without its surroundings can fail them where
        the whole passes, and pay a hotter try); words heard outside the speech are
        dropped (`Chunk.outside_speech`)."""
        chunks = self._take(self._tracker.finish())
        if self._pending and self._may_be_whole():
            chunks.append(self._emit_whole())
        elif self._pending:
            chunks.append(self._emit(len(self._pending)))
        self._buffer = np.zeros(0, dtype=np.float32)
        return chunks

    def _may_be_whole(self) -> bool:
        """The stream may still fit in one chunk: all of it is kept, nothing emitted."""
        return not self._emitted and self._received <= self._max_samples

    def _take(self, regions: Iterable[tuple[int, int]]) -> list[Chunk]:
        chunks = []
        for first_frame, end_frame in regions:
            start = max(first_frame * FRAME_SAMPLES - self._pad, self._last_end, 0)
            end = min(end_frame * FRAME_SAMPLES + self._pad, self._received)
            if end <= start:
                continue
            self._last_end = end
            audio = self._buffer[start - self._buffer_start : end - self._buffer_start].copy()
            self.speech_seconds += len(audio) / SAMPLE_RATE_HZ
            self._pending.append((start, audio))
            chunks += self._full()
        return chunks

    def _full(self) -> list[Chunk]:
        """Glued chunks of the pending pieces, each of as many as fit in one (the pieces
        before the one that would not), leaving the last that do not fill one yet; none
        while the stream may still be one chunk of all of it."""
        chunks: list[Chunk] = []
        while not self._may_be_whole():
            glued, count = -_GLUE_GAP_SAMPLES, 0
            for _, audio in self._pending:
                glued += _GLUE_GAP_SAMPLES + len(audio)
                if glued > self._max_samples:
                    break
                count += 1
            if count == len(self._pending):
                return chunks
            chunks.append(self._emit(max(count, 1)))
        return chunks

    def _trim(self) -> None:
        """Drop audio that no region can reach any more (all of it is kept while the
        stream may still fit in one chunk)."""
        if self._may_be_whole():
            return
        open_start = self._tracker.start
        first_frame = open_start if open_start is not None else self._tracker.frame
        keep_from = max(self._buffer_start, first_frame * FRAME_SAMPLES - self._pad)
        self._buffer = self._buffer[keep_from - self._buffer_start :]
        self._buffer_start = keep_from

    def _emit(self, count: int) -> Chunk:
        """The first `count` pending pieces, glued."""
        pieces: list[Piece] = []
        parts: list[np.ndarray] = []
        offset = 0
        for start, audio in self._pending[:count]:
            if parts:
                parts.append(np.zeros(_GLUE_GAP_SAMPLES, dtype=np.float32))
                offset += _GLUE_GAP_SAMPLES
            pieces.append(Piece(offset / SAMPLE_RATE_HZ, start / SAMPLE_RATE_HZ,
                                len(audio) / SAMPLE_RATE_HZ))
            parts.append(audio)
            offset += len(audio)
        audio = np.concatenate(parts)
        self._pending, self._emitted = self._pending[count:], True
        return Chunk(audio, tuple(pieces))

    def _emit_whole(self) -> Chunk:
        pieces = tuple(Piece(start / SAMPLE_RATE_HZ, start / SAMPLE_RATE_HZ,
                             len(audio) / SAMPLE_RATE_HZ) for start, audio in self._pending)
        self._pending, self._emitted = [], True
        return Chunk(self._buffer[:self._received].copy(), pieces)
