"""The file's language, detected once on a sample of speech from windows spread over it."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np

from subtitled.config import TranscribeSettings
from subtitled.language import MIN_VOTE_SPEECH_SECONDS, LanguageGuess, vote, window_starts
from subtitled.media import MediaInfo
from subtitled.pipeline.engine_calls import Alive, call_watched
from subtitled.pipeline.tools import Tools
from subtitled.speech import SpeechChunker

logger = logging.getLogger(__name__)

# The language is detected on this much speech, sampled from windows over the whole file.
_VOTE_SAMPLE_SECONDS = 28.0


def sample_language(path: Path, media: MediaInfo, settings: TranscribeSettings, tools: Tools,
                    allowed: tuple[str, ...], alive: Alive) -> LanguageGuess | None:
    """One detection over a sample of the whole file: a few seconds of speech from each
    window spread over it, glued into one Whisper window. The encoder costs the same
    for 3 s as for 30 s, so this hears every window for the price of one (a detection
    per window cost 5.4 s more on a 10-minute programme on two CPU cores)."""
    options = settings.language
    starts = window_starts(media.duration_seconds, options.vote_windows,
                           options.vote_window_seconds)
    share = _VOTE_SAMPLE_SECONDS / len(starts)
    samples = [audio[: int(share * 16_000)] for audio in (
        speech_only(tools, settings, tools.open_audio(media, start, options.vote_window_seconds),
                    share)
        for start in starts) if len(audio) >= 16_000 * MIN_VOTE_SPEECH_SECONDS]
    if not samples:
        return None
    gap = np.zeros(16_000 // 2, dtype=np.float32)
    glued = np.concatenate([part for sample in samples for part in (sample, gap)][:-1])
    seconds = sum(len(sample) for sample in samples) / 16_000
    heard = call_watched(lambda: tools.transcriber.detect_language(glued), alive)
    guess = vote([(heard, seconds)], allowed)
    if guess:
        guess = replace(guess, windows=len(samples))
        logger.info("%s: language %s (%.0f%%, %d windows)", path, guess.iso_code,
                    100 * guess.confidence, guess.windows)
    return guess


def speech_only(tools: Tools, settings: TranscribeSettings, blocks: Iterable[np.ndarray],
                enough_seconds: float) -> np.ndarray:
    """The speech of a short window, glued together; reading stops (and ffmpeg with it)
    once the speech found is enough."""
    chunker = SpeechChunker(tools.speech_probabilities(), settings.speech)
    chunks = []
    stream = iter(blocks)
    for block in stream:
        chunks += chunker.feed(block)
        if chunker.pending_seconds >= enough_seconds:
            break
    close = getattr(stream, "close", None)
    if close is not None:  # a generator: ends the ffmpeg behind it now
        close()
    chunks += chunker.finish()
    return chunks[0].audio if chunks else np.zeros(0, dtype=np.float32)
