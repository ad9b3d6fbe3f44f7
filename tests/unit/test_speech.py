from __future__ import annotations

import numpy as np
import pytest

from subtitled.config import SpeechSettings
from subtitled.speech import FRAME_SAMPLES, Chunk, Piece, SpeechChunker, glue

RATE = 16_000


class LoudnessProbabilities:
    """Stands in for the VAD in unit tests: a frame is speech when it is loud (its mean
    above `threshold`)."""

    def __init__(self, threshold: float = 0.1) -> None:
        self.leftover = np.zeros(0, dtype=np.float32)
        self.threshold = threshold

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        data = np.concatenate((self.leftover, samples))
        count = len(data) // FRAME_SAMPLES
        self.leftover = data[count * FRAME_SAMPLES:]
        frames = data[: count * FRAME_SAMPLES].reshape(count, FRAME_SAMPLES)
        loud: np.ndarray = (np.abs(frames).mean(axis=1) > self.threshold).astype(np.float32)
        return loud


def signal(*parts: tuple[str, float]) -> np.ndarray:
    """("speech", 3.0), ("silence", 2.0) ... → samples; speech is a loud ramp."""
    out = []
    for kind, seconds in parts:
        n = int(seconds * RATE)
        out.append(np.full(n, 0.5 if kind == "speech" else 0.0, dtype=np.float32))
    return np.concatenate(out)


def chunks_of(audio: np.ndarray, block_seconds: float = 1.0,
              settings: SpeechSettings | None = None) -> list[Chunk]:
    chunker = SpeechChunker(LoudnessProbabilities(), settings or SpeechSettings())
    block = int(block_seconds * RATE)
    chunks = []
    for start in range(0, len(audio), block):
        chunks += chunker.feed(audio[start:start + block])
    return chunks + chunker.finish()


def test_silence_gives_no_chunks() -> None:
    assert chunks_of(signal(("silence", 60.0))) == []


def test_speech_regions_are_found_with_padding() -> None:
    chunks = chunks_of(signal(("silence", 5.0), ("speech", 3.0), ("silence", 5.0)))
    assert len(chunks) == 1
    (piece,) = chunks[0].pieces
    assert piece.source_start_seconds == pytest.approx(5.0 - 0.2, abs=0.04)
    assert piece.duration_seconds == pytest.approx(3.4, abs=0.08)


def test_a_stream_that_fits_in_one_chunk_is_one_chunk_of_all_of_it() -> None:
    """Decoded as Whisper decodes a short file: with what lies around its speech."""
    audio = signal(("silence", 4.0), ("speech", 3.0), ("silence", 8.0), ("speech", 2.0),
                   ("silence", 3.0))
    (chunk,) = chunks_of(audio)
    assert np.array_equal(chunk.audio, audio)
    first, second = chunk.pieces
    assert first.chunk_start_seconds == first.source_start_seconds == \
        pytest.approx(3.8, abs=0.04)
    assert second.chunk_start_seconds == second.source_start_seconds == \
        pytest.approx(14.8, abs=0.04)
    assert chunk.to_source(15.0, 15.5) == pytest.approx((15.0, 15.5))
    # Heard in the silence between the two: not speech. At the edge of a piece: kept.
    assert chunk.outside_speech(10.0, 10.5)
    assert not chunk.outside_speech(7.3, 7.6)
    assert not chunk.outside_speech(14.0, 14.6)
    # Out of memory: the speech of a one-piece stream is halved, not the stream.
    (alone,) = chunks_of(signal(("silence", 10.0), ("speech", 4.0), ("silence", 10.0)))
    left, right = alone.halves()
    assert left.source_start_seconds == pytest.approx(9.8, abs=0.04)
    assert left.duration_seconds + right.duration_seconds == pytest.approx(4.4, abs=0.08)


def test_a_stream_of_one_window_dense_with_speech_is_still_one_chunk() -> None:
    """Three stretches of speech, 29.4 s with their padding, in a 29.8 s stream: glued
    with their gaps they would not fit in one window, whole they do."""
    audio = signal(("speech", 9.4), ("silence", 0.6), ("speech", 9.4), ("silence", 0.6),
                   ("speech", 9.4), ("silence", 0.4))
    (chunk,) = chunks_of(audio)
    assert np.array_equal(chunk.audio, audio) and len(chunk.pieces) == 3
    # Longer, the same stretches are glued into windows again, none over 30 s.
    longer = chunks_of(np.concatenate((audio, signal(("silence", 3.0), ("speech", 2.0)))))
    assert [len(c.pieces) for c in longer] == [2, 2]
    assert all(c.duration_seconds <= 30.0 for c in longer)


def test_a_longer_stream_is_glued_speech_even_if_its_speech_is_short() -> None:
    (chunk,) = chunks_of(signal(("speech", 3.0), ("silence", 25.0), ("speech", 2.0),
                                ("silence", 5.0)))
    assert chunk.duration_seconds == pytest.approx(3.2 + 0.6 + 2.4, abs=0.1)
    gap = chunk.pieces[1].chunk_start_seconds - chunk.pieces[0].duration_seconds
    # Nothing in a glued chunk lies outside its speech: the gap between pieces is short.
    assert not chunk.outside_speech(chunk.pieces[0].duration_seconds,
                                    chunk.pieces[0].duration_seconds + gap)


def test_regions_are_glued_until_a_chunk_is_full() -> None:
    parts: list[tuple[str, float]] = []
    for _ in range(8):
        parts += [("speech", 6.0), ("silence", 4.0)]
    chunks = chunks_of(signal(*parts))
    assert all(c.duration_seconds <= 30.0 for c in chunks)
    assert [len(c.pieces) for c in chunks] == [4, 4]
    # 6.4 s of padded speech each, 0.6 s of silence between glued pieces.
    assert sum(c.duration_seconds for c in chunks) == pytest.approx(8 * 6.4 + 6 * 0.6, abs=0.5)
    for chunk in chunks:
        for before, after in zip(chunk.pieces, chunk.pieces[1:], strict=False):
            gap = after.chunk_start_seconds - before.chunk_start_seconds - before.duration_seconds
            assert gap == pytest.approx(0.6)
            silence = chunk.audio[round(after.chunk_start_seconds * 16_000) - 4000 :
                                  round(after.chunk_start_seconds * 16_000)]
            assert not silence.any()


def test_a_word_aligned_a_little_early_stays_with_its_own_speech() -> None:
    first = Piece(0.0, 10.0, 5.0)
    second = Piece(5.6, 40.0, 4.0)
    chunk = Chunk(np.zeros(round(9.6 * 16_000), dtype=np.float32), (first, second))
    # Starts in the gap (even a little inside the first piece), mostly in the second.
    assert chunk.to_source(4.9, 6.2) == pytest.approx((40.0, 40.6))
    assert chunk.to_source(2.0, 2.5) == pytest.approx((12.0, 12.5))
    # A word running on past the end of its piece stops there.
    assert chunk.to_source(4.5, 5.2) == pytest.approx((14.5, 15.0))


def test_endless_speech_is_cut_into_chunks_of_at_most_30_seconds() -> None:
    chunks = chunks_of(signal(("speech", 100.0)), block_seconds=7.0)
    assert all(c.duration_seconds <= 30.0 for c in chunks)
    assert sum(p.duration_seconds for c in chunks for p in c.pieces) == \
        pytest.approx(100.0, abs=0.3)
    starts = [p.source_start_seconds for c in chunks for p in c.pieces]
    assert starts == sorted(starts)


def test_short_blips_are_not_speech() -> None:
    assert chunks_of(signal(("silence", 2.0), ("speech", 0.1), ("silence", 2.0))) == []


def test_memory_stays_bounded_however_long_the_stream() -> None:
    chunker = SpeechChunker(LoudnessProbabilities(), SpeechSettings())
    block = signal(("speech", 4.0), ("silence", 6.0))
    largest = 0
    for _ in range(200):  # 2000 s of audio
        chunker.feed(block)
        largest = max(largest, len(chunker._buffer))
    # At most one chunk of audio: all of it while the stream may still fit in one.
    assert largest <= 31 * RATE


def test_chunk_times_map_back_to_the_source() -> None:
    chunk = Chunk(np.zeros(5 * RATE, dtype=np.float32),
                  (Piece(0.0, 10.0, 2.0), Piece(2.0, 50.0, 3.0)))
    assert chunk.to_source(0.5, 1.0) == pytest.approx((10.5, 11.0))
    assert chunk.to_source(2.5, 3.0) == pytest.approx((50.5, 51.0))
    # A word running over the cut stays in one piece, the one holding most of it,
    # instead of spanning 38 s.
    assert chunk.to_source(1.7, 2.1) == pytest.approx((11.7, 12.0))
    assert chunk.to_source(1.8, 2.4) == pytest.approx((50.0, 50.4))


def test_halves_cut_between_pieces_or_in_the_middle() -> None:
    chunk = Chunk(np.arange(5 * RATE, dtype=np.float32),
                  (Piece(0.0, 10.0, 2.0), Piece(2.0, 50.0, 3.0)))
    first, second = chunk.halves()
    assert first.pieces == (Piece(0.0, 10.0, 2.0),)
    assert second.pieces == (Piece(0.0, 50.0, 3.0),)
    assert second.audio[0] == 2 * RATE
    left, right = second.halves()
    assert left.duration_seconds == right.duration_seconds == pytest.approx(1.5)
    assert right.source_start_seconds == pytest.approx(51.5)


def test_glue_packs_chunks_into_windows_with_silence_between() -> None:
    def single(source_start: float, seconds: float) -> Chunk:
        return Chunk(np.ones(round(seconds * RATE), dtype=np.float32),
                     (Piece(0.0, source_start, seconds),))

    packed = glue([single(10.0, 12.0), single(50.0, 12.0), single(90.0, 12.0)], 30.0, 1.0)
    assert [len(c.pieces) for c in packed] == [2, 1]
    first = packed[0]
    assert first.duration_seconds == pytest.approx(25.0)
    assert first.pieces[1].chunk_start_seconds == pytest.approx(13.0)
    assert not first.audio[12 * RATE : 13 * RATE].any()
    assert first.to_source(13.5, 14.0) == pytest.approx((50.5, 51.0))
