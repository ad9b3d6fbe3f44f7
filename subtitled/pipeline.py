"""One media file → one subtitle file. Imports none of ffmpeg, whisper or torch: the probe,
the audio source, the transcriber and the writer are passed in."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from subtitled import failpoints, languages
from subtitled.config import TranscribeSettings
from subtitled.cues import Cue, segment_words, shape_cues
from subtitled.engines.base import Segment, Transcriber, Word, is_out_of_memory
from subtitled.errors import ConfigError, SubtitledError, TransientError
from subtitled.filters import keep_speech
from subtitled.language import LanguageGuess, label_pieces, vote, window_starts
from subtitled.media import MediaInfo
from subtitled.speech import Chunk, SpeechChunker, SpeechProbabilities
from subtitled.subtitles import existing_subtitle, output_path

logger = logging.getLogger(__name__)

Status = Literal["written", "no-speech", "exists", "skipped"]
Probe = Callable[[Path], MediaInfo]
OpenAudio = Callable[[MediaInfo, float | None, float | None], Iterable[np.ndarray]]
"""(media, start seconds, duration seconds) → 16 kHz mono float32 blocks."""
Write = Callable[[Path, list[Cue]], None]
Progress = Callable[[float, float | None, str | None], None]
"""(audio seconds done, total seconds or None, ISO code of the language being decoded)."""

# Below this, a chunk that still runs out of GPU memory is not worth splitting further.
_MIN_OOM_RETRY_SECONDS = 4.0


@dataclass(frozen=True)
class Outcome:
    path: Path
    status: Status
    output: Path | None
    language: str | None  # ISO code of the file's main language
    language_confidence: float | None
    cue_count: int
    audio_seconds: float
    speech_seconds: float
    wall_seconds: float
    reason: str | None = None  # why it was skipped, or which subtitle already exists

    @property
    def realtime_factor(self) -> float:
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0


@dataclass(frozen=True)
class Tools:
    """What the pipeline needs from the outside world."""

    probe: Probe
    open_audio: OpenAudio
    transcriber: Transcriber
    write: Write
    speech_probabilities: Callable[[], SpeechProbabilities]
    # Raises when the subtitle could not be written beside this media file.
    check_output: Callable[[Path], None] = lambda media: None


def process_media_file(
    path: Path, settings: TranscribeSettings, tools: Tools, progress: Progress | None = None
) -> Outcome:
    """Transcribe one file and write its subtitle, or say why not (SubtitledError)."""
    started = time.monotonic()
    try:
        return _Job(path, settings, tools, progress or _no_progress, started).run()
    except SubtitledError as err:
        if err.path is None:
            err.path = path
        raise


def _no_progress(done: float, total: float | None, language: str | None) -> None:
    del done, total, language


class _Job:
    def __init__(self, path: Path, settings: TranscribeSettings, tools: Tools,
                 progress: Progress, started: float) -> None:
        self.path, self.settings, self.tools = path, settings, tools
        self.progress, self.started = progress, started
        self.allowed = tuple(languages.to_whisper(c) for c in settings.language.allowed)
        self.audio_seconds = 0.0

    def run(self) -> Outcome:
        media = self.tools.probe(self.path)
        skip = self.settings.skip
        if media.duration_seconds is not None and \
                media.duration_seconds < skip.min_duration_seconds:
            return self._outcome("skipped", None, None, 0, 0.0,
                                 f"shorter than {skip.min_duration_seconds:g} s")
        guess = self._file_language(media)
        if guess is not None and (done := self._already_done(media, guess)):
            return done
        # Before the long part: an hour of decoding must not end in a folder we cannot write.
        self.tools.check_output(self.path)
        words, speech_seconds, guess = self._transcribe(media, guess)
        if guess is None or not words:
            return self._outcome("no-speech", None, guess, 0, speech_seconds)
        if done := self._already_done(media, guess):
            return done
        cues = shape_cues(words, self.settings.cues)
        target = self._target(guess)
        self.tools.write(target, cues)
        return self._outcome("written", target, guess, len(cues), speech_seconds)

    def _already_done(self, media: MediaInfo, guess: LanguageGuess) -> Outcome | None:
        """A subtitle in this language exists beside the file or inside it."""
        if self.settings.output.overwrite:
            return None
        label, target = self._label(guess), self._target(guess)
        existing = target if target.exists() else None
        if existing is None and self.settings.skip.existing_sidecar:
            existing = existing_subtitle(self.path, label)
        if existing is not None:
            return self._outcome("exists", existing, guess, 0, 0.0, str(existing))
        if self.settings.skip.embedded_text_subtitles and \
                label in media.text_subtitle_languages:
            return self._outcome("skipped", None, guess, 0, 0.0,
                                 f"has an embedded {label} text subtitle")
        return None

    def _outcome(self, status: Status, target: Path | None, guess: LanguageGuess | None,
                 cue_count: int, speech_seconds: float, reason: str | None = None) -> Outcome:
        return Outcome(self.path, status, target, self._label(guess) if guess else None,
                       guess.confidence if guess else None, cue_count, self.audio_seconds,
                       speech_seconds, time.monotonic() - self.started, reason)

    def _label(self, guess: LanguageGuess) -> str:
        """The language the subtitle is in: English when translating."""
        return "en" if self.settings.language.task == "translate" else guess.iso_code

    def _target(self, guess: LanguageGuess) -> Path:
        return output_path(self.path, self._label(guess), self.settings.output.template)

    def _file_language(self, media: MediaInfo) -> LanguageGuess | None:
        """A given language, English for English-only models, else the vote over windows."""
        wanted = self.settings.language.language
        transcriber = self.tools.transcriber
        if wanted != "auto":
            code = languages.normalize(wanted)
            if code is None:
                raise ConfigError(f"unknown language code {wanted!r}", stage="language")
            if not transcriber.multilingual and code != "en":
                raise ConfigError(f"{transcriber.description} knows only English, not {code}",
                                  stage="language")
            return LanguageGuess(languages.to_whisper(code), 1.0, 0)
        if not transcriber.multilingual:
            return LanguageGuess("en", 1.0, 0)
        return self._vote(media)

    def _vote(self, media: MediaInfo) -> LanguageGuess | None:
        options = self.settings.language
        observations = []
        for start in window_starts(media.duration_seconds, options.vote_windows,
                                   options.vote_window_seconds):
            audio = self._speech_only(self.tools.open_audio(
                media, start, options.vote_window_seconds))
            if len(audio) >= 16_000:
                probabilities = self.tools.transcriber.detect_language(audio)
                observations.append((probabilities, len(audio) / 16_000))
        guess = vote(observations, self.allowed)
        if guess:
            logger.info("%s: language %s (%.0f%% of %d windows)", self.path, guess.iso_code,
                        100 * guess.confidence, guess.windows)
        return guess

    def _speech_only(self, blocks: Iterable[np.ndarray]) -> np.ndarray:
        """The speech of a short window, glued together (at most one chunk long)."""
        chunker = SpeechChunker(self.tools.speech_probabilities(), self.settings.speech)
        chunks = [c for block in blocks for c in chunker.feed(block)] + chunker.finish()
        return chunks[0].audio if chunks else np.zeros(0, dtype=np.float32)

    def _transcribe(self, media: MediaInfo, guess: LanguageGuess | None
                    ) -> tuple[list[Word], float, LanguageGuess | None]:
        chunker = SpeechChunker(self.tools.speech_probabilities(), self.settings.speech)
        words: list[Word] = []
        for chunk in self._chunks(media, chunker):
            if guess is None:  # no window had speech to vote on: use the first chunk
                guess = vote([(self.tools.transcriber.detect_language(chunk.audio), 1.0)],
                             self.allowed)
                assert guess is not None
            for language, part in self._languages_of(chunk, guess.code):
                words.extend(self._decode(part, language, media))
            self.progress(chunk.source_end_seconds, media.duration_seconds, self._label(guess))
        self.progress(self.audio_seconds, self.audio_seconds, self._label(guess) if guess else None)
        return words, chunker.speech_seconds, guess

    def _chunks(self, media: MediaInfo, chunker: SpeechChunker) -> Iterator[Chunk]:
        for block in self.tools.open_audio(media, None, None):
            self.audio_seconds += len(block) / 16_000
            yield from chunker.feed(block)
        yield from chunker.finish()

    def _languages_of(self, chunk: Chunk, file_language: str) -> list[tuple[str, Chunk]]:
        if self.settings.language.mode == "per-chunk" and self.tools.transcriber.multilingual \
                and self.settings.language.language == "auto":
            return label_pieces(chunk, self.tools.transcriber.detect_language, self.allowed,
                                file_language)
        return [(file_language, chunk)]

    def _decode(self, chunk: Chunk, language: str, media: MediaInfo) -> list[Word]:
        """Transcribe, keep the speech, place it on the programme's timeline; on GPU
        out-of-memory free the cache and retry in halves."""
        transcriber = self.tools.transcriber
        try:
            failpoints.fail_once("oom-in-engine", self.path.name,
                                 "CUDA out of memory (injected by the oom-in-engine failpoint)")
            segments = transcriber.transcribe(chunk.audio, language=language,
                                              task=self.settings.language.task)
        except Exception as err:
            if not is_out_of_memory(err):
                raise
            transcriber.release_memory()
            if chunk.duration_seconds < _MIN_OOM_RETRY_SECONDS:
                raise TransientError(
                    f"out of GPU memory even on {chunk.duration_seconds:.1f} s of audio; "
                    "use a smaller model or free the GPU", stage="transcribe") from err
            logger.warning("%s: out of GPU memory on %.1f s of audio; retrying in halves",
                           self.path, chunk.duration_seconds)
            return [w for half in chunk.halves() for w in self._decode(half, language, media)]
        kept = keep_speech(segments, self.settings.filters)
        return [word for segment in kept for word in _placed(chunk, segment, media)]


def _placed(chunk: Chunk, segment: Segment, media: MediaInfo) -> list[Word]:
    """The segment's words moved from chunk time to the programme's timeline."""
    offset = media.audio.start_offset_seconds
    placed = []
    for word in segment_words(segment):
        start, end = chunk.to_source(word.start_seconds, word.end_seconds)
        placed.append(Word(max(0.0, start + offset), max(0.0, end + offset), word.text,
                           word.probability))
    return placed
