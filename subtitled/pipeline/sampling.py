"""The file's language, voted by windows of speech spread over it."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from subtitled.config import TranscribeSettings
from subtitled.language import MIN_VOTE_SPEECH_SECONDS, LanguageGuess, vote, window_starts
from subtitled.media import MediaInfo
from subtitled.pipeline.engine_calls import Alive, call_watched
from subtitled.pipeline.tools import Tools
from subtitled.speech import SpeechChunker

logger = logging.getLogger(__name__)

_WHISPER_WINDOW_SECONDS = 30.0


def sample_language(path: Path, media: MediaInfo, settings: TranscribeSettings, tools: Tools,
                    allowed: tuple[str, ...], alive: Alive) -> LanguageGuess | None:
    """The file's language from windows spread over it, each from its first speech on,
    with the pauses and breaths around the words (what Whisper was trained on). A file
    that fits in one Whisper window is heard whole, as Whisper's own `detect_language`
    hears it. A longer one gets a vote: each window detected on its own, weighted by its
    speech, so that a foreign opening or a dubbed scene cannot outvote the rest. (Speech
    from every window glued into one Whisper window would cost one encoder pass instead
    of a few, about a second on two CPU cores with `base`; but Whisper hears a glued
    sample mostly as its first voice, and 35 s of English before two minutes of German
    came out English, at 50 %, and at 79 % before 400 s of German: BENCHMARKS.md.)"""
    options = settings.language
    # The track's own length where it is known: a container's is the longest stream's,
    # and a window past the end of a shorter audio track holds nothing.
    length = media.audio.duration_seconds or media.duration_seconds
    whole = length is not None and length <= _WHISPER_WINDOW_SECONDS
    starts = [0.0] if whole else window_starts(length, options.vote_windows,
                                               options.vote_window_seconds)
    window = _WHISPER_WINDOW_SECONDS if whole else options.vote_window_seconds
    # A window needs a few words to vote; a file of one window is all there is to hear,
    # however short its speech (Whisper's own detection hears it as it is).
    least = 1e-3 if whole else MIN_VOTE_SPEECH_SECONDS
    samples = [sample for sample in (
        speech_from_onset(tools, settings, tools.open_audio(media, start, window),
                          _WHISPER_WINDOW_SECONDS, keep_lead_in=whole)
        for start in starts)
        if sample.speech_seconds >= least]
    guess = vote([(call_watched(partial(tools.transcriber.detect_language, sample.audio),
                                alive), sample.speech_seconds) for sample in samples],
                 allowed)
    if guess:
        logger.info("%s: language %s (%.0f%%, %d windows)", path, guess.iso_code,
                    100 * guess.confidence, guess.windows)
    return guess


@dataclass(frozen=True)
class Sample:
    audio: np.ndarray
    speech_seconds: float  # of the audio


def speech_from_onset(tools: Tools, settings: TranscribeSettings, blocks: Iterable[np.ndarray],
                      seconds: float, keep_lead_in: bool = False) -> Sample:
    """`seconds` of a window's audio from its first speech on (from its start with
    `keep_lead_in`), pauses included; reading stops (and ffmpeg with it) once enough
    speech has been heard."""
    chunker = SpeechChunker(tools.speech_probabilities(), settings.speech)
    chunks = []
    read: list[np.ndarray] = []
    stream = iter(blocks)
    for block in stream:
        read.append(block)
        chunks += chunker.feed(block)
        if chunker.pending_seconds + sum(c.duration_seconds for c in chunks) >= seconds:
            break
    close = getattr(stream, "close", None)
    if close is not None:  # a generator: ends the ffmpeg behind it now
        close()
    chunks += chunker.finish()
    pieces = [piece for chunk in chunks for piece in chunk.pieces]
    if not pieces:
        return Sample(np.zeros(0, dtype=np.float32), 0.0)
    onset = 0.0 if keep_lead_in else pieces[0].source_start_seconds
    end = onset + seconds
    audio = np.concatenate(read)[int(onset * 16_000):int(end * 16_000)]
    speech = sum(max(0.0, min(p.source_start_seconds + p.duration_seconds, end)
                     - max(p.source_start_seconds, onset)) for p in pieces)
    return Sample(audio, speech)
