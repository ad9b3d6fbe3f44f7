"""The second look at a quiet file: where speech detection heard no speech but something
is heard (music, effects, noise), the decoder listens once more, after the file's own
decoding, and keeps only what it is sure is speech.

Silero hears nothing of a voice 19 dB under a music bed (probabilities of 0.00 there, at
any threshold), while Whisper still writes the line (BENCHMARKS.md): detection run again
lower would find nothing, so the decoder itself looks. Its cost is bounded: only in a
file the levels call quiet (`subtitled.levels`), only over those stretches, each window
once, and at most half the windows this run's own decoding took, or four where that is
fewer (a file in which detection found nothing, a run resumed near the end), the loudest
stretches first; a window that heard a voice is decoded once more, over the stretches
the voice lies in alone (`_closer`). What it hears counts only where Whisper's own
signs agree: probable text, no loop, no hallucination. A sampled retry is never made
there (it is what writes words into music). Memory: one batch of windows at a time."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from subtitled.audio import SAMPLE_RATE_HZ
from subtitled.config import TranscribeSettings
from subtitled.engines.base import Segment, Transcriber, Word
from subtitled.filters import is_anomaly, keep_speech
from subtitled.language import LanguageGuess, vote
from subtitled.levels import Levels
from subtitled.media import MediaInfo
from subtitled.pipeline.decoder import placed_words
from subtitled.pipeline.engine_calls import Alive, batch_or_each, call_watched
from subtitled.pipeline.tools import Tools
from subtitled.speech import Chunk, Piece

logger = logging.getLogger(__name__)

# Shorter than this, a gap between lines is a pause, not a place for a line to hide.
MIN_SECONDS = 2.0
# Windows the second look may decode: this share of the file's own decoding, and at
# least MIN_WINDOWS.
SHARE_OF_DECODING = 0.5
MIN_WINDOWS = 4
_WINDOW_SECONDS = 30.0


@dataclass(frozen=True)
class Window:
    """A window heard (source seconds), and the part of it whose words it gives."""

    start: float
    end: float
    own_start: float
    own_end: float


def windows(places: Sequence[tuple[float, float]], levels: Levels,
            budget: int) -> list[Window]:
    """The places cut into Whisper windows; past the budget, the loudest (where a voice
    is likeliest to be covered), in time order."""
    cut = [window for place in places for window in _windows(*place)]
    if len(cut) > budget:
        loudest = sorted(cut, key=lambda w: -levels.level(w.own_start, w.own_end))
        cut = sorted(loudest[:budget], key=lambda w: w.start)
    return cut


def _windows(start: float, end: float) -> list[Window]:
    """Whole 30 s windows over a place: a shorter place heard in a window around it (the
    audio on either side as context), the last window of a longer one ending where the
    place does; each gives only the words of its own part. No scrap of a few seconds
    decoded alone, where Whisper makes words up over music, and no line cut in half
    where it need not be."""
    if end - start <= _WINDOW_SECONDS:
        around = max(0.0, (start + end - _WINDOW_SECONDS) / 2)
        return [Window(around, around + _WINDOW_SECONDS, start, end)]
    count = math.ceil((end - start) / _WINDOW_SECONDS)
    starts = [start + i * _WINDOW_SECONDS for i in range(count - 1)]
    return [*(Window(s, s + _WINDOW_SECONDS, s, s + _WINDOW_SECONDS) for s in starts),
            Window(end - _WINDOW_SECONDS, end, starts[-1] + _WINDOW_SECONDS, end)]


def sure(segments: Sequence[Segment], settings: TranscribeSettings) -> list[Segment]:
    """The segments Whisper is sure are speech: the usual filters (no non-speech, no
    loops), not what Whisper itself takes for a hallucination (`is_anomaly`), and text
    as probable as Whisper's threshold asks (where the first pass keeps improbable text
    in the speech detection found). Not the no-speech probability alone: a voice under
    music is faint to Whisper too (0.75 on the JFK line 19 dB under a bed, transcribed
    at a log-probability of -0.5), which is why Whisper's own rule asks for both."""
    filters = settings.filters
    return [s for s in keep_speech(segments, filters)
            if not is_anomaly(s) and s.avg_logprob >= filters.logprob_threshold
            and s.compression_ratio <= filters.compression_ratio_threshold]


def second_look(path: Path, settings: TranscribeSettings, tools: Tools, alive: Alive,
                allowed: Sequence[str], media: MediaInfo, guess: LanguageGuess | None,
                levels: Levels, decoded_windows: int) -> tuple[list[Word], LanguageGuess | None]:
    """The words found in the quiet file's hiding places, and its language (found here
    when detection found no speech at all)."""
    budget = max(MIN_WINDOWS, int(SHARE_OF_DECODING * decoded_windows))
    looked = windows(list(levels.hiding_places(MIN_SECONDS)), levels, budget)
    if not looked:
        return [], guess
    transcriber = tools.transcriber
    size = max(1, transcriber.batch_size)
    offset = media.audio.start_offset_seconds
    words: list[Word] = []
    closer = 0
    for first in range(0, len(looked), size):
        batch = looked[first:first + size]
        chunks = [_read(tools, media, window.start, window.end, alive) for window in batch]
        if guess is None:
            guess = vote([(call_watched(partial(transcriber.detect_language, c.audio), alive),
                           c.duration_seconds) for c in chunks], allowed)
            if guess is None:
                return [], None
        decoded = _decode(transcriber, [c.audio for c in chunks], guess.code, settings,
                          alive, path)
        found = [(window, chunk, heard) for window, chunk, segments
                 in zip(batch, chunks, decoded, strict=True)
                 if (heard := _sure_words(window, chunk, segments, settings, offset))]
        # Where a window heard a voice, the stretches it lies in are heard again alone, as
        # detection would have cut them had it heard it: the score around a line, heard
        # with it, pulls the decoder off the words (the JFK line 25 dB under a bed: WER
        # 0.14 to 0.23 in the whole window, 0.09 alone with faster-whisper; BENCHMARKS.md).
        # Each stretch keeps what Whisper is sure of there; else the window's words stand.
        close: list[tuple[Window, list[Word], Chunk]] = []
        for window, chunk, heard in found:
            stretches = _closer(window, chunk, heard, offset,
                                settings.speech.speech_pad_ms / 1000)
            if stretches is None:
                words += heard
            else:
                close.append((window, heard, stretches))
        if not close:
            continue
        again = _decode(transcriber, [c.audio for _, _, c in close], guess.code, settings,
                        alive, path)
        for (window, heard, chunk), segments in zip(close, again, strict=True):
            heard_again = _sure_words(window, chunk, segments, settings, offset)
            for piece in chunk.pieces:
                inside = partial(_inside, piece, offset)
                better = [w for w in heard_again if inside(w)]
                closer += bool(better)
                words += better or [w for w in heard if inside(w)]
    logger.info("%s: a second look over %d windows (%.0f s) where detection heard no "
                "speech: %d words (%d stretches heard again closer)", path, len(looked),
                sum(w.own_end - w.own_start for w in looked), len(words), closer)
    return words, guess


def _sure_words(window: Window, chunk: Chunk, segments: Sequence[Segment],
                settings: TranscribeSettings, offset: float) -> list[Word]:
    """The words of the segments Whisper is sure of that lie in the window's own part."""
    return [w for s in sure(segments, settings) for w in placed_words(chunk, s, offset)
            if window.own_start <= _middle(w, offset) < window.own_end]


def _middle(word: Word, offset: float) -> float:
    """A word's middle, in source seconds."""
    return (word.start_seconds + word.end_seconds) / 2 - offset


def _inside(piece: Piece, offset: float, word: Word) -> bool:
    return piece.source_start_seconds <= _middle(word, offset) < \
        piece.source_start_seconds + piece.duration_seconds


# Stretches shorter than this in all are not heard again: over a scrap of a few seconds
# Whisper makes words up (BENCHMARKS.md), and the window's words stand.
_CLOSER_MIN_SECONDS = 5.0


def _closer(window: Window, chunk: Chunk, heard: Sequence[Word], offset: float,
            pad: float) -> Chunk | None:
    """The stretches of a window's audio its words lie in, `pad` seconds around each, as
    detection pads its speech (words more than MIN_SECONDS apart are in stretches of
    their own), glued as one chunk (the window's own chunk: one piece from
    `window.start`); None where they are too short to be heard alone."""
    spans: list[list[float]] = []  # window seconds: [first word's start, last word's end]
    for word in sorted(heard, key=lambda w: w.start_seconds):
        start = word.start_seconds - offset - window.start
        end = word.end_seconds - offset - window.start
        if spans and start - spans[-1][1] < MIN_SECONDS:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end])
    parts, pieces, at = [], [], 0.0
    for start, end in spans:
        first = max(0, round((start - pad) * SAMPLE_RATE_HZ))
        part = chunk.audio[first:max(first, round((end + pad) *
                                                  SAMPLE_RATE_HZ))]
        if len(part):
            parts.append(part)
            pieces.append(Piece(at, window.start + first / SAMPLE_RATE_HZ,
                                len(part) / SAMPLE_RATE_HZ))
            at += len(part) / SAMPLE_RATE_HZ
    if at < _CLOSER_MIN_SECONDS:
        return None
    return Chunk(np.concatenate(parts), tuple(pieces))


def _read(tools: Tools, media: MediaInfo, start: float, end: float,
          alive: Alive) -> Chunk:
    """Source seconds `start` to `end` of the track. ffmpeg seeks on the programme's
    timeline, where a track that starts late (`start_offset_seconds`) is that much on."""
    alive(True)
    offset = max(0.0, media.audio.start_offset_seconds)
    audio = np.concatenate([np.zeros(0, dtype=np.float32),
                            *tools.open_audio(media, start + offset, end - start)])
    # ffmpeg's -t gives a few samples more now and then; a window is 30 s to the sample.
    audio = audio[:round((end - start) * SAMPLE_RATE_HZ)]
    return Chunk(audio, (Piece(0.0, start, len(audio) / SAMPLE_RATE_HZ),))


def _decode(transcriber: Transcriber, audios: list[np.ndarray], language: str,
            settings: TranscribeSettings, alive: Alive, path: Path) -> list[list[Segment]]:
    """One batch at temperature 0; out of memory, each window alone."""
    decode: Callable[[Sequence[np.ndarray]], list[list[Segment]]] = partial(
        transcriber.transcribe_batch, language=language, task=settings.language.task,
        prompt=" ".join(settings.hotwords) or None)
    return batch_or_each(decode, audios, alive, transcriber.release_memory, what="window",
                         path=path, stage="transcribe")
