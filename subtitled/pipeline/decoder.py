"""Speech chunks → words, in batches: one encoder pass and one search per batch, a second
pass for speech the batch skipped, Whisper's temperature fallback for what looks wrong,
within a budget of one retry per window of the first pass, and smaller work when memory
runs out."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from subtitled import failpoints
from subtitled.config import Task, TranscribeSettings
from subtitled.cues import segment_words
from subtitled.engines.base import Segment, Transcriber, Word, is_out_of_memory
from subtitled.errors import EnvironmentFault
from subtitled.filters import keep_speech, needs_fallback
from subtitled.media import MediaInfo
from subtitled.pipeline.engine_calls import Alive, call_watched
from subtitled.pipeline.foreign import ForeignFinder
from subtitled.quality import LogProbability
from subtitled.speech import Chunk, Piece, glue

logger = logging.getLogger(__name__)
_T = TypeVar("_T")
# A chunk's segments (None: decode it alone), and the language it was heard in (None: not
# asked for, or not heard).
Decoded = tuple[list[Segment] | None, dict[str, float] | None]

# Shorter pieces of speech left without words are not decoded again (a cough, a breath).
_MIN_SKIPPED_SECONDS = 1.0
_SKIPPED_GAP_SECONDS = 1.0
# Below this, a chunk that still runs out of memory is not worth splitting further.
_MIN_OOM_RETRY_SECONDS = 4.0
# Whisper's own fallback schedule: a window whose text looks like a loop (compression
# ratio) or is improbable (log probability) is decoded again, hotter.
TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
# Retries (a chunk decoded again at a higher temperature, speech the batch skipped decoded
# again) are what hard audio multiplies: noise, accents, a language the model barely
# knows. A run may spend one retry per window of its first pass, pooled (a hard window of
# a film may take Whisper's whole fallback from what easy ones left), so that its
# decoding costs at most twice its first pass. Whisper's own transcribe decodes at least
# one window per window of our first pass (it reads the whole file, silence included, and
# we only its speech), so no file costs more than twice its windows: a short clip whose
# first decode fails Whisper's checks gets one hotter try, not five, even where Whisper's
# own passes at temperature 0 (they hear the clip cut differently). Past the budget, the
# first decode of a chunk stands (its loops and improbable non-speech are still filtered
# out).
RETRIES_PER_WINDOW = 1
# Hotter tries than this decode without the hotwords' prompt, as Whisper's transcribe
# drops its prompt there (prompt_reset_on_temperature): sampled text that strays is not
# led further by it.
_PROMPT_UP_TO_TEMPERATURE = 0.5


@dataclass(frozen=True)
class Work:
    """A chunk to decode in a language, with a task (None: the settings' own); on its
    second pass, speech skipped again is not sent round a third time but decoded alone."""

    language: str
    chunk: Chunk
    second_pass: bool = False
    task: Task | None = None
    labelled: bool = False  # a run of pieces in one language (forced subtitles)


class BatchDecoder:
    """Takes work in as the audio is read; decodes a batch whenever one is full."""

    def __init__(self, path: Path, settings: TranscribeSettings, transcriber: Transcriber,
                 media: MediaInfo, alive: Alive, foreign: ForeignFinder | None = None) -> None:
        self.path, self.settings, self.transcriber = path, settings, transcriber
        self.media, self.alive = media, alive
        # For a forced subtitle: each chunk's language, heard as it is decoded; a chunk
        # that leaves the film's language is decoded again, run by run, the foreign runs
        # translated.
        self.foreign = foreign
        self.windows_decoded = 0  # engine work, for the log and the resume tests
        self.retries = 0  # of those windows, the ones that decoded speech again
        self._speech_seconds = 0.0  # taken in for its first pass
        self._first_pass_windows = 0  # chunks taken in for it: one window each
        self._out_of_retries_logged = False
        # What the first decode of each chunk kept, before any fallback (quality.judge).
        self.first_look = LogProbability()
        self._queue: list[Work] = []
        self._read_to_seconds = 0.0
        # Names separated by spaces, as faster-whisper's own `hotwords` reads them: Whisper
        # carries a prompt's style into what it writes, and a comma-separated list came
        # back as lists of names (BENCHMARKS.md).
        self._prompt = " ".join(settings.hotwords) or None

    def add(self, work: list[Work]) -> list[Word]:
        """Queue the work of one chunk; the words of every batch that filled up."""
        self._queue += work
        self._speech_seconds += sum(piece.duration_seconds for w in work
                                    if not w.second_pass for piece in w.chunk.pieces)
        self._first_pass_windows += sum(not w.second_pass for w in work)
        self._read_to_seconds = max([self._read_to_seconds,
                                     *(w.chunk.source_end_seconds for w in work)])
        words: list[Word] = []
        while len(self._queue) >= self.transcriber.batch_size:
            # What the batch skipped rides along with the next one.
            found, self._queue = self._decode_batch(self._queue)
            words += found
        return words

    def finish(self) -> list[Word]:
        """The rest: a last batch, then the speech it skipped, in a batch of its own (whose
        skipped speech is decoded stretch by stretch); before that, for a forced subtitle,
        the runs of a chunk found to leave the film's language."""
        words, again = self._decode_batch(self._queue)
        self._queue = []
        for _ in range(2):  # runs in one language, then second passes, which end there
            found, again = self._decode_batch(again)
            words += found
        assert not again, "second-pass work is not sent round a third time"
        return words

    def decoded_through(self) -> float:
        """Source time before which every chunk taken in has been decoded."""
        return min((w.chunk.source_start_seconds for w in self._queue),
                   default=self._read_to_seconds)

    def _decode_batch(self, batch: list[Work]) -> tuple[list[Word], list[Work]]:
        """The words of the batch, decoded language by language, and the speech it skipped
        (a stretch of a chunk left without words), glued into as few chunks as fit, for a
        second pass; speech skipped on its second pass is decoded at once, stretch by
        stretch. A chunk whose text looks like a loop or is improbable is decoded again at
        once, alone, with Whisper's temperature fallback."""
        words: list[Word] = []
        again: list[Work] = []
        for language, task in dict.fromkeys((w.language, self._task(w)) for w in batch):
            items = [w for w in batch if (w.language, self._task(w)) == (language, task)]
            hear = any(self._to_hear(w) for w in items)
            skipped: list[tuple[Chunk, list[Word]]] = []  # and what the batch heard there
            for work, (segments, language_heard) in zip(items, self._segments(
                    [work.chunk for work in items], language, task, hear), strict=True):
                if self._to_hear(work) and (runs := self._relabelled(work, language_heard)):
                    again += runs  # decoded again, run by run, in their languages
                    continue
                if segments is not None and not (work.second_pass or work.labelled):
                    self.first_look.add([word for segment in keep_speech(
                        segments, self.settings.filters) for word in segment.words])
                if segments is None or self._looks_wrong(segments, task):
                    # A second pass's window was paid for when it was glued.
                    words += self.decode_alone(work.chunk, language, task, first=segments)
                    continue
                if task == "translate":  # its words need not fill the speech: no second pass
                    words += self._kept_words(work.chunk, segments)
                    continue
                found, pieces = self._split_skipped(work.chunk, segments)
                words += found
                if not work.second_pass:
                    skipped += pieces
                    continue
                for piece, heard in pieces:  # skipped twice: each stretch alone
                    words += self.decode_alone(piece, language, task, retry=True) \
                        if self._retries_left() >= 1 else heard
            # Glued, a second apart: each 30 s window costs the encoder the same.
            glued = glue([piece for piece, _ in skipped],
                         self.settings.speech.max_chunk_seconds, _SKIPPED_GAP_SECONDS)
            affordable = [chunk for chunk in glued if self._spend_retry()]
            if skipped:
                logger.debug("%s: %d skipped stretches of speech go round again in %d of %d "
                             "windows", self.path, len(skipped), len(affordable), len(glued))
            # Past the budget, a stretch keeps the few words its batch heard there.
            again_from = {p.source_start_seconds for chunk in affordable for p in chunk.pieces}
            words += [w for piece, heard in skipped
                      if piece.pieces[0].source_start_seconds not in again_from for w in heard]
            again += [Work(language, chunk, second_pass=True, task=task)
                      for chunk in affordable]
        return words, again

    def _task(self, work: Work) -> Task:
        return work.task or self.settings.language.task

    def _to_hear(self, work: Work) -> bool:
        """The language a chunk is heard in is wanted (for a forced subtitle: a chunk in
        the film's language, not yet cut into runs)."""
        return self.foreign is not None and not work.second_pass and not work.labelled \
            and work.task is None and work.language == self.foreign.main

    def _relabelled(self, work: Work, heard: dict[str, float] | None) -> list[Work]:
        """The chunk's runs of pieces, to decode again, where it leaves the film's
        language; none where it does not (its decode stands)."""
        assert self.foreign is not None
        runs = self.foreign.label(work.chunk, heard)
        main = self.foreign.main
        if len(runs) == 1 and runs[0][0] == main:
            return []
        logger.debug("%s: %.0f-%.0f s leaves %s: decoded again as %s", self.path,
                     work.chunk.source_start_seconds, work.chunk.source_end_seconds, main,
                     ", ".join(code for code, _ in runs))
        return [Work(code, part, task=None if code == main else "translate", labelled=True)
                for code, part in runs]

    def _split_skipped(self, chunk: Chunk, segments: list[Segment]
                       ) -> tuple[list[Word], list[tuple[Chunk, list[Word]]]]:
        """The words outside the stretches the decoder skipped, and those stretches with
        the few words it heard in each."""
        found = self._kept_words(chunk, segments)
        offset = self.media.audio.start_offset_seconds
        missing = skipped_pieces(chunk, found, offset)
        inside = {i: [w for w in found if _holds(chunk.pieces[i], w, offset)] for i in missing}
        kept = [w for w in found if not any(w in heard for heard in inside.values())]
        return kept, [(chunk.sub(i, i + 1), inside[i]) for i in missing]

    def _segments(self, chunks: list[Chunk], language: str, task: Task, hear: bool
                  ) -> list[Decoded]:
        """Each chunk's segments (and, if asked, the language it was heard in), in batches
        of at most the transcriber's batch size; None (decode it alone) for a batch of
        one whose language is not wanted."""
        size = max(1, self.transcriber.batch_size)
        found: list[Decoded] = []
        for first in range(0, len(chunks), size):
            found += self._batch_segments(chunks[first:first + size], language, task, hear)
        return found

    def _batch_segments(self, chunks: list[Chunk], language: str, task: Task, hear: bool
                        ) -> list[Decoded]:
        """One batched decode; out of memory, the batch is halved, for this call and, from
        then on, for every later batch of the process."""
        if len(chunks) < 2 and not (hear and chunks):
            return [(None, None)] * len(chunks)  # decoded alone, with the fallback
        # (A chunk alone whose language is wanted: its first decode is this one.)
        audios = [c.audio for c in chunks]
        batch = self._engine(lambda: self.transcriber.transcribe_and_hear(
            audios, language=language, task=task, prompt=self._prompt) if hear else
            (self.transcriber.transcribe_batch(audios, language=language, task=task,
                                               prompt=self._prompt), []))
        if batch is not None:
            self._count(len(chunks))
            segments, heard = batch
            languages: list[dict[str, float] | None] = [*heard] or [None] * len(chunks)
            return list(zip(segments, languages, strict=True))
        if len(chunks) == 1:  # alone, out of memory: decoded alone, in halves if need be
            return [(None, None)]
        size = len(chunks) // 2
        if self.transcriber.batch_size > size:
            self.transcriber.batch_size = size
            logger.warning("%s: out of memory on a batch of %d chunks; batches of %d from "
                           "now on", self.path, len(chunks), size)
        return [decoded for first in range(0, len(chunks), size)
                for decoded in self._batch_segments(chunks[first:first + size], language,
                                                    task, hear)]

    def decode_alone(self, chunk: Chunk, language: str, task: Task, *,
                     first: list[Segment] | None = None, retry: bool = False) -> list[Word]:
        """One chunk with Whisper's temperature fallback: decoded (or, given its `first`
        decode at temperature 0, decoded again) at each higher temperature until its text
        no longer looks like a loop or improbable, while the budget lasts; the best
        attempt counts. A `retry` decodes speech again, so even its first decode is paid
        for from the budget. Out of memory, in halves."""
        attempts = [] if first is None else [first]
        for temperature in TEMPERATURES[len(attempts):]:
            if attempts and self._passed(attempts[-1], len(attempts), task):
                break
            paid = bool(attempts) or retry
            if paid and not self._spend_retry():
                break
            decoded = self._engine(partial(
                self.transcriber.transcribe_batch, [chunk.audio], language=language,
                task=task, temperature=temperature,
                prompt=self._prompt if temperature <= _PROMPT_UP_TO_TEMPERATURE else None))
            if decoded is None:  # out of memory
                self.retries -= paid  # nothing was decoded for it
                if attempts:  # a hotter try failed: what was decoded stands
                    return self._kept_words(chunk, self._best(attempts, task))
                return self._in_halves(chunk, language, task, retry)
            self._count(1)
            attempts.append(decoded[0])
        return self._kept_words(chunk, self._best(attempts, task)) if attempts else []

    def _looks_wrong(self, segments: list[Segment], task: Task) -> bool:
        """Whisper's checks fail: its text compresses like a loop, or (a transcript) it
        is improbable. A translation is held to the loop check alone: its tokens are less
        probable than a transcript's for text as good, and on the dense German programme
        nearly every window of it fell under the threshold, decoded again hotter for a
        translation no better (BENCHMARKS.md)."""
        if task == "translate":
            threshold = self.settings.filters.compression_ratio_threshold
            return any(s.compression_ratio > threshold for s in segments)
        return needs_fallback(segments, self.settings.filters)

    def _passed(self, attempt: list[Segment], tries: int, task: Task) -> bool:
        """Whisper's checks passed. An empty hotter try passes nothing: sampled text that
        ends at once is not evidence that the window held no speech."""
        return not self._looks_wrong(attempt, task) and (bool(attempt) or tries == 1)

    def _in_halves(self, chunk: Chunk, language: str, task: Task, retry: bool) -> list[Word]:
        if chunk.duration_seconds < _MIN_OOM_RETRY_SECONDS:  # the machine's, not the file's
            raise EnvironmentFault(
                f"out of memory even on {chunk.duration_seconds:.1f} s of audio; "
                "use a smaller model or free the GPU", kind="memory", path=self.path,
                stage="transcribe")
        logger.warning("%s: out of memory on %.1f s of audio; retrying in halves",
                       self.path, chunk.duration_seconds)
        return [w for half in chunk.halves()
                for w in self.decode_alone(half, language, task, retry=retry)]

    def _best(self, attempts: list[list[Segment]], task: Task) -> list[Segment]:
        """The attempt that passed Whisper's checks (the last, since they stop there); if
        none did, the most probable one whose text is not a loop, else the first."""
        filters = self.settings.filters
        if self._passed(attempts[-1], len(attempts), task):
            return attempts[-1]
        unlooped = [a for a in attempts
                    if a and all(s.compression_ratio <= filters.compression_ratio_threshold
                                 for s in a)]
        if not unlooped:
            return attempts[0]
        return max(unlooped, key=lambda a: min((s.avg_logprob for s in a), default=0.0))

    def _retries_left(self) -> float:
        return RETRIES_PER_WINDOW * self._first_pass_windows - self.retries

    def _spend_retry(self) -> bool:
        """One retry from the file's budget, if any is left."""
        if self._retries_left() < 1:
            budget = self._retries_left() + self.retries
            if not self._out_of_retries_logged:
                logger.info("%s: the retry budget (%.0f windows for %d windows of %.0f s of "
                            "speech so far) is spent; hard passages keep their first decode",
                            self.path, budget, self._first_pass_windows,
                            self._speech_seconds)
                self._out_of_retries_logged = True
            return False
        self.retries += 1
        return True

    def _count(self, windows: int) -> None:
        self.windows_decoded += windows
        logger.debug("%s: decoded %d window%s", self.path, windows, "s" * (windows > 1))

    def _engine(self, call: Callable[[], _T]) -> _T | None:
        """The engine's answer, or None when memory ran out (the GPU cache freed)."""
        try:
            failpoints.fail_once("oom-in-engine", self.path.name,
                                 "CUDA out of memory (injected by the oom-in-engine failpoint)")
            return call_watched(partial(self._injected, call), self.alive)
        except Exception as err:
            if not is_out_of_memory(err):
                raise
            self.transcriber.release_memory()
            return None

    def _injected(self, call: Callable[[], _T]) -> _T:
        """`call`, unless a failpoint makes the engine raise as a broken GPU does."""
        failpoints.raise_error("sticky-engine-error", self.path.name, "CUDA error: an illegal "
                               "memory access was encountered (sticky-engine-error failpoint)")
        failpoints.raise_error("engine-error", self.path.name,
                               "the engine failed (engine-error failpoint)")
        return call()

    def _kept_words(self, chunk: Chunk, segments: list[Segment]) -> list[Word]:
        """The speech among the segments, placed on the programme's timeline."""
        kept = keep_speech(segments, self.settings.filters)
        offset = self.media.audio.start_offset_seconds
        return [word for segment in kept for word in placed_words(chunk, segment, offset)]


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


def placed_words(chunk: Chunk, segment: Segment, offset: float) -> list[Word]:
    """The segment's words moved from chunk time to the programme's timeline; words heard
    outside the chunk's speech are dropped."""
    placed = []
    for word in segment_words(segment):
        if chunk.outside_speech(word.start_seconds, word.end_seconds):
            continue
        start, end = chunk.to_source(word.start_seconds, word.end_seconds)
        placed.append(Word(max(0.0, start + offset), max(0.0, end + offset), word.text,
                           word.probability))
    return placed
