"""One media file through the pipeline: probe, language, decode, write. The order of things
and when to stop early live here; the parts are in `sampling` and `decoder`."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Generator, Iterable, Sequence
from functools import partial
from pathlib import Path

import numpy as np

from subtitled import languages
from subtitled.config import TranscribeSettings
from subtitled.cues import shape_cues
from subtitled.engines.base import Word
from subtitled.errors import ConfigError
from subtitled.language import LanguageGuess, label_pieces, vote
from subtitled.media import MediaInfo
from subtitled.pipeline.decoder import BatchDecoder, Work
from subtitled.pipeline.engine_calls import call_watched
from subtitled.pipeline.sampling import sample_language
from subtitled.pipeline.tools import Hooks, Outcome, Resume, Status, Tools
from subtitled.prefetch import Prefetch
from subtitled.quality import Verdict, judge
from subtitled.speech import Chunk, SpeechChunker
from subtitled.subtitles import (
    SUBTITLE_SUFFIXES,
    existing_subtitle,
    in_formats,
    is_review,
    named_like,
    output_paths,
    review_path,
    under_review,
)

logger = logging.getLogger(__name__)


class MediaJob:
    def __init__(self, path: Path, settings: TranscribeSettings, tools: Tools, hooks: Hooks,
                 started: float) -> None:
        self.path, self.settings, self.tools, self.hooks = path, settings, tools, hooks
        self.started = started
        self.allowed = tuple(languages.to_whisper(c) for c in settings.language.allowed)
        self.audio_seconds = 0.0  # of the whole file, once it has all been read
        self._extracted_seconds = 0.0  # so far, counted by the extraction thread
        self._windows = 0

    def run(self) -> Outcome:
        media = self.tools.probe(self.path)
        skip = self.settings.skip
        if media.duration_seconds is not None and \
                media.duration_seconds < skip.min_duration_seconds:
            return self._outcome("skipped", None, None, 0, 0.0,
                                 f"shorter than {skip.min_duration_seconds:g} s")
        if (spoken := self._needs_no_subtitle(media.audio.language)) is not None:
            return spoken  # decided by the track's tag, before any audio is read
        resume = self.hooks.checkpoints.load() if self.hooks.checkpoints else None
        guess = resume.language if resume else self._given_language(media)
        if guess is not None and (done := self._already_done(media, guess)):
            return done
        hint = self._hinted_language() if guess is None else None
        if hint is not None and (done := self._already_done(media, hint)):
            return done  # decided before any audio is read
        start = resume.decoded_seconds if resume else 0.0
        if resume:
            logger.info("%s: resuming at %.0f s with the %d words decoded before; speech "
                        "before it is found again, not decoded", self.path, start,
                        len(resume.words))
        chunker = SpeechChunker(self.tools.speech_probabilities(), self.settings.speech)
        # Extraction and speech detection start now, in a thread, and run ahead while the
        # language is detected and the model decodes.
        with Prefetch(self._chunks(media, chunker, start), self.tools.transcriber.batch_size,
                      waiting=lambda: self.hooks.alive(True)) as chunks:
            if guess is None and self.tools.transcriber.multilingual:
                guess = sample_language(self.path, media, self.settings, self.tools,
                                        self.allowed, self.hooks.alive)
                if guess is not None and (done := self._needs_no_subtitle(guess.iso_code)
                                          or self._already_done(media, guess)):
                    return done
                self._save(0.0, guess, [])
            # Before the long part: an hour of decoding must not end in a folder we cannot
            # write.
            self.tools.check_output(self.path)
            words, guess = self._transcribe(media, chunks, guess, resume)
        return self._write(media, words, guess, chunker.speech_seconds)

    def _write(self, media: MediaInfo, words: list[Word], guess: LanguageGuess | None,
               speech_seconds: float) -> Outcome:
        verdict = self._judge(words, guess, speech_seconds)
        if guess is None or not words:
            self._drop_ours()
            return self._outcome("no-speech", None, guess, 0, speech_seconds,
                                 verdict=verdict)
        if done := self._already_done(media, guess):
            return done
        cues = shape_cues(words, self.settings.cues)
        gate = self.settings.quality.gate if verdict else "off"
        targets = self._targets(guess)
        if gate == "hold":  # and no subtitle of ours from before shows meanwhile
            self._drop_ours(also=targets)
            return self._outcome("held", None, guess, len(cues), speech_seconds,
                                 verdict=verdict)
        target, *beside = [review_path(p) for p in targets] if gate == "review" else targets
        # The other formats beside the tracked one: ours when it is (a redo replaces them),
        # else someone's where they exist (a tagger's Song.lrc), and kept.
        ours = self.settings.output.overwrite or (
            target.exists() and self.hooks.previous is not None and
            self.hooks.previous(target) == "ours")
        self.tools.write(target, cues)  # first: once it is in place, the job is done
        for other in beside:
            if other.exists() and not ours:
                logger.info("%s: %s exists and is not ours; kept", self.path, other.name)
                continue
            self.tools.write(other, cues)
        self._drop_ours(also=targets if gate == "review" else (), keep=(target, *beside))
        return self._outcome("written", target, guess, len(cues), speech_seconds,
                             verdict=verdict)

    def _drop_ours(self, also: Sequence[Path] = (), keep: Collection[Path] = ()) -> None:
        """Our subtitle from before that this outcome does not put back, with the other
        formats written beside it: a copy written for review (in whichever language), and
        `also` (the subtitle itself, where this one is held back or written for review).
        Only the one this job last wrote, unedited since, is ours; a forced redo (which
        knows no such thing) takes the review copy in this language."""
        previous = self.hooks.previous
        if previous is None:
            if self.settings.output.overwrite and not also and keep:
                for path in keep:
                    review_path(path).unlink(missing_ok=True)
            return
        for path in [*also, *self._review_copies()]:
            if path not in keep and path.exists() and previous(path) == "ours":
                for stale in self._with_formats(path):
                    if stale not in keep:
                        stale.unlink(missing_ok=True)
                logger.info("%s: %s, written before for this file, removed", self.path,
                            path.name)
                return  # a job tracks one subtitle

    def _review_copies(self) -> list[Path]:
        return sorted(p for p in named_like(self.path)
                      if p.suffix.lower() in SUBTITLE_SUFFIXES and is_review(p))

    def _with_formats(self, path: Path) -> list[Path]:
        """A subtitle of ours and the other formats of the settings beside it, named as
        they were written (`output_paths`, each for review where it is)."""
        formats = self.settings.output.formats
        if not is_review(path):
            return list(dict.fromkeys([path, *in_formats(self.path, path, formats)]))
        return list(dict.fromkeys([path, *map(review_path, in_formats(
            self.path, under_review(path), formats))]))

    def _judge(self, words: list[Word], guess: LanguageGuess | None,
               speech_seconds: float) -> Verdict | None:
        if self.settings.quality.gate == "off":
            return None
        detected = guess is not None and guess.windows > 0
        return judge(words, self.audio_seconds, speech_seconds,
                     guess.iso_code if guess else None,
                     guess.confidence if guess and detected else None,
                     self.settings.quality)

    def _already_done(self, media: MediaInfo, guess: LanguageGuess) -> Outcome | None:
        """A subtitle in this language exists beside the file or inside it. Our own, from
        before the file changed, does not count (it is replaced); one edited by hand since
        we wrote it does, and is kept."""
        label, (target, *beside) = self._label(guess), self._targets(guess)
        existing = target if target.exists() else None
        previous = self.hooks.previous(target) if existing and self.hooks.previous else None
        if previous == "edited":  # a person's work: kept, whatever the settings
            return self._outcome("exists", target, guess, 0, 0.0,
                                 f"{target} was edited since it was written; kept")
        if self.settings.output.overwrite:
            return None
        if previous == "ours":
            existing = None
        if existing is None and self.settings.skip.existing_sidecar:
            # Ours is replaced, and the other formats we wrote beside it with it.
            ours = (target, *beside) if previous else ()
            existing = existing_subtitle(self.path, label, ignore=ours)
        if existing is not None:
            return self._outcome("exists", existing, guess, 0, 0.0, str(existing))
        if self.settings.skip.embedded_text_subtitles and \
                label in media.text_subtitle_languages:
            return self._outcome("skipped", None, guess, 0, 0.0,
                                 f"has an embedded {label} text subtitle")
        return None

    def _outcome(self, status: Status, target: Path | None, guess: LanguageGuess | None,
                 cue_count: int, speech_seconds: float, reason: str | None = None, *,
                 verdict: Verdict | None = None) -> Outcome:
        return Outcome(self.path, status, target, self._label(guess) if guess else None,
                       guess.confidence if guess else None, cue_count, self.audio_seconds,
                       speech_seconds, time.monotonic() - self.started, reason, self._windows,
                       verdict.text if verdict else None, verdict.flags if verdict else ())

    def _label(self, guess: LanguageGuess) -> str:
        """The language the subtitle is in: English when translating."""
        return "en" if self.settings.language.task == "translate" else guess.iso_code

    def _target(self, guess: LanguageGuess) -> Path:
        return self._targets(guess)[0]

    def _targets(self, guess: LanguageGuess) -> list[Path]:
        """The subtitle's file in each of the output formats, the first format's first."""
        output = self.settings.output
        return output_paths(self.path, self._label(guess), output.template, output.formats)

    def _hinted_language(self) -> LanguageGuess | None:
        """The language recorded for this file before it changed, if the caller knows one
        and the folder still allows it."""
        hint = self.hooks.language_hint
        code = languages.normalize(hint) if hint else None
        if code is None or (self.allowed and languages.to_whisper(code) not in self.allowed):
            return None
        return LanguageGuess(languages.to_whisper(code), 1.0, 0)

    def _needs_no_subtitle(self, spoken: str | None) -> Outcome | None:
        """Skipped: the audio is in a language that `skip.audio_languages` says the viewers
        understand."""
        if spoken is None or spoken not in self.settings.skip.audio_languages:
            return None
        return self._outcome("skipped", None, None, 0, 0.0,
                             f"its audio is in {spoken} (skip.audio_languages)")

    def _given_language(self, media: MediaInfo) -> LanguageGuess | None:
        """A given language, English for English-only models, the audio track's tag when
        trusted (and allowed here); None: detect it."""
        wanted = self.settings.language.language
        transcriber = self.tools.transcriber
        tag = media.audio.language
        if wanted == "auto" and self.settings.language.trust_track_tags and tag and \
                transcriber.multilingual and languages.whisper_knows(tag) and \
                (not self.allowed or languages.to_whisper(tag) in self.allowed):
            return LanguageGuess(languages.to_whisper(tag), 1.0, 0)
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

    def _transcribe(self, media: MediaInfo, chunks: Iterable[Chunk],
                    guess: LanguageGuess | None, resume: Resume | None
                    ) -> tuple[list[Word], LanguageGuess | None]:
        decoder = BatchDecoder(self.path, self.settings, self.tools.transcriber, media,
                               self.hooks.alive)
        words = list(resume.words) if resume else []
        unsaved: list[Word] = []  # decoded, but not yet before the checkpoint's line
        saved_through = resume.decoded_seconds if resume else 0.0
        # A chunk that straddles the resume point is decoded whole, as before the stop;
        # its words before the point are in the checkpoint already.
        line = saved_through + media.audio.start_offset_seconds if resume else 0.0

        def after_resume(found: list[Word]) -> list[Word]:
            return [w for w in found if w.start_seconds >= line]

        windows = 0
        for chunk in chunks:
            if guess is None:  # no window had speech to vote on: use the first chunk
                guess = vote([(self._detect(chunk.audio), 1.0)], self.allowed)
                assert guess is not None
            self.hooks.alive(True)
            unsaved += after_resume(decoder.add(
                [Work(code, part) for code, part in self._languages_of(chunk, guess.code)]))
            self._windows = decoder.windows_decoded
            self.hooks.progress(chunk.source_end_seconds, media.duration_seconds,
                                self._label(guess))
            # After a batch was decoded (not merely queued): a checkpoint is progress.
            if decoder.windows_decoded > windows and decoder.decoded_through() > saved_through:
                windows, saved_through = decoder.windows_decoded, decoder.decoded_through()
                unsaved = self._checkpoint(saved_through, media, guess, words, unsaved)
        words += unsaved + after_resume(decoder.finish())
        self._windows = decoder.windows_decoded
        self.audio_seconds = self._extracted_seconds  # every chunk is in: it has all been read
        # Decoding is over: from here on nothing is abandoned, the subtitle is written.
        self.hooks.progress(self.audio_seconds, self.audio_seconds,
                            self._label(guess) if guess else None)
        # Per-chunk languages are decoded language by language; put the words back in order.
        words.sort(key=lambda w: w.start_seconds)
        return words, guess

    def _checkpoint(self, through: float, media: MediaInfo, guess: LanguageGuess,
                    done: list[Word], unsaved: list[Word]) -> list[Word]:
        """Save the words before `through`; the others wait for a later line."""
        line = through + media.audio.start_offset_seconds
        ready = [w for w in unsaved if w.start_seconds < line]
        done += ready
        self._save(through, guess, ready)
        return [w for w in unsaved if w.start_seconds >= line]

    def _save(self, through: float, guess: LanguageGuess | None, words: list[Word]) -> None:
        if self.hooks.checkpoints is not None and guess is not None:
            self.hooks.checkpoints.save(through, guess, words)

    def _chunks(self, media: MediaInfo, chunker: SpeechChunker, resume_at: float
                ) -> Generator[Chunk, None, None]:
        """The file's speech chunks that end after `resume_at` (source seconds), in source
        time. The audio is always read from the start: speech detection then cuts exactly
        the chunks an uninterrupted run decodes, so a resumed file comes out as one that was
        never stopped (detection costs a small part of what decoding does)."""
        self._extracted_seconds = 0.0
        for block in self.tools.open_audio(media, None, None):
            self._extracted_seconds += len(block) / 16_000
            yield from (c for c in chunker.feed(block) if c.source_end_seconds > resume_at)
        yield from (c for c in chunker.finish() if c.source_end_seconds > resume_at)

    def _languages_of(self, chunk: Chunk, file_language: str) -> list[tuple[str, Chunk]]:
        if self.settings.language.mode == "per-chunk" and self.tools.transcriber.multilingual \
                and self.settings.language.language == "auto":
            return label_pieces(chunk, self._detect, self.allowed, file_language)
        return [(file_language, chunk)]

    def _detect(self, audio: np.ndarray) -> dict[str, float]:
        detect = self.tools.transcriber.detect_language
        return call_watched(partial(detect, audio), self.hooks.alive)

