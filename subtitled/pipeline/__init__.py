"""One media file → one subtitle file. Imports none of ffmpeg, whisper or torch: the probe,
the audio source, the transcriber and the writer are passed in."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np

from subtitled import failpoints, languages
from subtitled.config import TranscribeSettings
from subtitled.cues import Cue, segment_words, shape_cues
from subtitled.engines.base import Segment, Transcriber, Word, is_out_of_memory
from subtitled.errors import ConfigError, SubtitledError, TransientError
from subtitled.filters import keep_speech, needs_fallback
from subtitled.language import (
    MIN_VOTE_SPEECH_SECONDS,
    LanguageGuess,
    label_pieces,
    vote,
    window_starts,
)
from subtitled.media import MediaInfo
from subtitled.prefetch import Prefetch
from subtitled.speech import Chunk, Piece, SpeechChunker, SpeechProbabilities, glue
from subtitled.subtitles import existing_subtitle, output_path

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

Status = Literal["written", "no-speech", "exists", "skipped"]
Probe = Callable[[Path], MediaInfo]
OpenAudio = Callable[[MediaInfo, float | None, float | None], Iterable[np.ndarray]]
"""(media, start seconds, duration seconds) → 16 kHz mono float32 blocks."""
Write = Callable[[Path, list[Cue]], None]
Progress = Callable[[float, float | None, str | None], None]
"""(audio seconds done, total seconds or None, ISO code of the language being decoded)."""

# The language is detected on this much speech, sampled from windows over the whole file.
_VOTE_SAMPLE_SECONDS = 28.0
# Shorter pieces of speech left without words are not decoded again (a cough, a breath).
_MIN_SKIPPED_SECONDS = 1.0
_SKIPPED_GAP_SECONDS = 1.0
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
class _Work:
    """A chunk to decode in a language; on its second pass, speech skipped again is not
    sent round a third time but decoded alone."""

    language: str
    chunk: Chunk
    second_pass: bool = False


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
        self.audio_seconds = 0.0  # of the whole file, once it has all been read
        self._extracted_seconds = 0.0  # so far, counted by the extraction thread

    def run(self) -> Outcome:
        media = self.tools.probe(self.path)
        skip = self.settings.skip
        if media.duration_seconds is not None and \
                media.duration_seconds < skip.min_duration_seconds:
            return self._outcome("skipped", None, None, 0, 0.0,
                                 f"shorter than {skip.min_duration_seconds:g} s")
        guess = self._given_language()
        if guess is not None and (done := self._already_done(media, guess)):
            return done
        chunker = SpeechChunker(self.tools.speech_probabilities(), self.settings.speech)
        # Extraction and speech detection start now, in a thread, and run ahead while the
        # language is detected and the model decodes.
        with Prefetch(self._chunks(media, chunker), self._batch_size) as chunks:
            if guess is None and self.tools.transcriber.multilingual:
                guess = self._vote(media)
                if guess is not None and (done := self._already_done(media, guess)):
                    return done
            # Before the long part: an hour of decoding must not end in a folder we cannot
            # write.
            self.tools.check_output(self.path)
            words, guess = self._transcribe(media, chunks, guess)
        speech_seconds = chunker.speech_seconds
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

    def _given_language(self) -> LanguageGuess | None:
        """A given language, English for English-only models; None: detect it."""
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
        return None

    @property
    def _batch_size(self) -> int:
        return max(1, self.settings.model.batch_size)

    def _vote(self, media: MediaInfo) -> LanguageGuess | None:
        """One detection over a sample of the whole file: a few seconds of speech from each
        window spread over it, glued into one Whisper window. The encoder costs the same
        for 3 s as for 30 s, so this hears every window for the price of one (a detection
        per window cost 5.4 s more on a 10-minute programme on two CPU cores)."""
        options = self.settings.language
        starts = window_starts(media.duration_seconds, options.vote_windows,
                               options.vote_window_seconds)
        share = _VOTE_SAMPLE_SECONDS / len(starts)
        samples = [audio[: int(share * 16_000)] for audio in (
            self._speech_only(self.tools.open_audio(media, start, options.vote_window_seconds),
                              share)
            for start in starts) if len(audio) >= 16_000 * MIN_VOTE_SPEECH_SECONDS]
        if not samples:
            return None
        gap = np.zeros(16_000 // 2, dtype=np.float32)
        glued = np.concatenate([part for sample in samples for part in (sample, gap)][:-1])
        seconds = sum(len(sample) for sample in samples) / 16_000
        guess = vote([(self.tools.transcriber.detect_language(glued), seconds)], self.allowed)
        if guess:
            guess = replace(guess, windows=len(samples))
            logger.info("%s: language %s (%.0f%%, %d windows)", self.path, guess.iso_code,
                        100 * guess.confidence, guess.windows)
        return guess

    def _speech_only(self, blocks: Iterable[np.ndarray], enough_seconds: float) -> np.ndarray:
        """The speech of a short window, glued together; reading stops (and ffmpeg with it)
        once the speech found is enough."""
        chunker = SpeechChunker(self.tools.speech_probabilities(), self.settings.speech)
        chunks = []
        stream = iter(blocks)
        for block in stream:
            chunks += chunker.feed(block)
            if chunker.pending_seconds >= enough_seconds:
                break
        if hasattr(stream, "close"):
            stream.close()
        chunks += chunker.finish()
        return chunks[0].audio if chunks else np.zeros(0, dtype=np.float32)

    def _transcribe(self, media: MediaInfo, chunks: Iterable[Chunk],
                    guess: LanguageGuess | None) -> tuple[list[Word], LanguageGuess | None]:
        words: list[Word] = []
        batch: list[_Work] = []
        for chunk in chunks:
            if guess is None:  # no window had speech to vote on: use the first chunk
                guess = vote([(self.tools.transcriber.detect_language(chunk.audio), 1.0)],
                             self.allowed)
                assert guess is not None
            batch += [_Work(code, part) for code, part in self._languages_of(chunk, guess.code)]
            # Per chunk taken in, not per batch decoded: the daemon's heartbeat and its
            # check for a stop request must not wait for a whole batch of work.
            self.progress(chunk.source_end_seconds, media.duration_seconds,
                          self._label(guess))
            while len(batch) >= self._batch_size:
                # What the batch skipped rides along with the next one.
                found, batch = self._decode_batch(batch, media)
                words += found
        found, batch = self._decode_batch(batch, media)
        words += found
        # The last batch's skipped speech has nothing to ride along with: Whisper's own
        # decoding, which carries on after an early end of text, one window at a time.
        for work in batch:
            words += self._decode(work.chunk, work.language, media)
        self.audio_seconds = self._extracted_seconds  # every chunk is in: it has all been read
        self.progress(self.audio_seconds, self.audio_seconds, self._label(guess) if guess else None)
        # Per-chunk languages are decoded language by language; put the words back in order.
        words.sort(key=lambda w: w.start_seconds)
        return words, guess

    def _chunks(self, media: MediaInfo, chunker: SpeechChunker) -> Generator[Chunk, None, None]:
        for block in self.tools.open_audio(media, None, None):
            self._extracted_seconds += len(block) / 16_000
            yield from chunker.feed(block)
        yield from chunker.finish()

    def _languages_of(self, chunk: Chunk, file_language: str) -> list[tuple[str, Chunk]]:
        if self.settings.language.mode == "per-chunk" and self.tools.transcriber.multilingual \
                and self.settings.language.language == "auto":
            return label_pieces(chunk, self.tools.transcriber.detect_language, self.allowed,
                                file_language)
        return [(file_language, chunk)]

    def _decode_batch(self, batch: list[_Work], media: MediaInfo
                      ) -> tuple[list[Word], list[_Work]]:
        """The words of the batch, decoded language by language, and the speech it skipped
        (a stretch of a chunk left without words), glued into as few chunks as fit, for a
        second pass; speech skipped on its second pass is decoded at once, stretch by
        stretch. A chunk whose text looks like a loop or is improbable is decoded again at
        once, alone, with Whisper's temperature fallback."""
        words: list[Word] = []
        again: list[_Work] = []
        for language in dict.fromkeys(work.language for work in batch):
            items = [work for work in batch if work.language == language]
            skipped: list[Chunk] = []
            for work, segments in zip(items, self._batch_segments(
                    [work.chunk for work in items], language), strict=True):
                if segments is None or needs_fallback(segments, self.settings.filters):
                    words += self._decode(work.chunk, language, media)
                    continue
                found = self._kept_words(work.chunk, segments, media)
                missing = skipped_pieces(work.chunk, found, media.audio.start_offset_seconds)
                words += [w for w in found if not _inside(w, work.chunk, missing, media)]
                pieces = [work.chunk.sub(i, i + 1) for i in missing]
                if not work.second_pass:
                    skipped += pieces
                    continue
                for piece in pieces:  # skipped twice: each stretch alone, the ordinary way
                    words += self._decode(piece, language, media)
            if skipped:
                logger.debug("%s: %d skipped stretches of speech go round again", self.path,
                             len(skipped))
            # Glued, a second apart: each 30 s window costs the encoder the same.
            again += [_Work(language, chunk, second_pass=True) for chunk in glue(
                skipped, self.settings.speech.max_chunk_seconds, _SKIPPED_GAP_SECONDS)]
        return words, again

    def _batch_segments(self, chunks: list[Chunk], language: str
                        ) -> list[list[Segment]] | list[None]:
        """The batch's segments; Nones (decode one by one) when there is a single chunk or
        the batch ran out of GPU memory."""
        if len(chunks) < 2:
            return [None] * len(chunks)
        batch = self._engine(lambda: self.tools.transcriber.transcribe_batch(
            [c.audio for c in chunks], language=language, task=self.settings.language.task))
        if batch is None:
            logger.warning("%s: out of GPU memory on a batch of %d chunks; decoding them "
                           "one by one", self.path, len(chunks))
            return [None] * len(chunks)
        return batch

    def _decode(self, chunk: Chunk, language: str, media: MediaInfo) -> list[Word]:
        """Transcribe one chunk; on GPU out-of-memory free the cache and retry in halves."""
        segments = self._engine(lambda: self.tools.transcriber.transcribe(
            chunk.audio, language=language, task=self.settings.language.task))
        if segments is not None:
            return self._kept_words(chunk, segments, media)
        if chunk.duration_seconds < _MIN_OOM_RETRY_SECONDS:
            raise TransientError(
                f"out of GPU memory even on {chunk.duration_seconds:.1f} s of audio; "
                "use a smaller model or free the GPU", stage="transcribe")
        logger.warning("%s: out of GPU memory on %.1f s of audio; retrying in halves",
                       self.path, chunk.duration_seconds)
        return [w for half in chunk.halves() for w in self._decode(half, language, media)]

    def _engine(self, call: Callable[[], _T]) -> _T | None:
        """The engine's answer, or None when the GPU ran out of memory (its cache freed)."""
        try:
            failpoints.fail_once("oom-in-engine", self.path.name,
                                 "CUDA out of memory (injected by the oom-in-engine failpoint)")
            return call()
        except Exception as err:
            if not is_out_of_memory(err):
                raise
            self.tools.transcriber.release_memory()
            return None

    def _kept_words(self, chunk: Chunk, segments: list[Segment], media: MediaInfo
                    ) -> list[Word]:
        """The speech among the segments, placed on the programme's timeline."""
        kept = keep_speech(segments, self.settings.filters)
        return [word for segment in kept for word in _placed(chunk, segment, media)]


def skipped_pieces(chunk: Chunk, words: list[Word], offset_seconds: float) -> list[int]:
    """Pieces of at least a second that the decoder left (nearly) without words: the words
    placed in them span less than half of the piece. Speech detection made each piece one
    stretch of speech with no long pause, so its words should fill it."""
    missing = []
    for index, piece in enumerate(chunk.pieces):
        if piece.duration_seconds < _MIN_SKIPPED_SECONDS:
            continue
        start = _span(piece, offset_seconds)[0]
        inside = [w for w in words if _holds(piece, w, offset_seconds)]
        covered = max((w.end_seconds for w in inside), default=start) - \
            min((w.start_seconds for w in inside), default=start)
        if covered < piece.duration_seconds / 2:
            missing.append(index)
    return missing


def _span(piece: Piece, offset_seconds: float) -> tuple[float, float]:
    """Where a piece lies on the programme's timeline."""
    start = piece.source_start_seconds + offset_seconds
    return start, start + piece.duration_seconds


def _holds(piece: Piece, word: Word, offset_seconds: float) -> bool:
    start, end = _span(piece, offset_seconds)
    return start - 1e-6 <= word.start_seconds < end


def _inside(word: Word, chunk: Chunk, pieces: list[int], media: MediaInfo) -> bool:
    return any(_holds(chunk.pieces[i], word, media.audio.start_offset_seconds) for i in pieces)


def _placed(chunk: Chunk, segment: Segment, media: MediaInfo) -> list[Word]:
    """The segment's words moved from chunk time to the programme's timeline."""
    offset = media.audio.start_offset_seconds
    placed = []
    for word in segment_words(segment):
        start, end = chunk.to_source(word.start_seconds, word.end_seconds)
        placed.append(Word(max(0.0, start + offset), max(0.0, end + offset), word.text,
                           word.probability))
    return placed
