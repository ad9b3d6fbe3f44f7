"""One media file through the pipeline: probe, language, decode, write. The order of things
and when to stop early live here; the parts are in `sampling` and `decoder`."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Generator, Iterable, Iterator, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

from subtitled import languages
from subtitled.config import TranscribeSettings
from subtitled.cues import Cue, shape_cues
from subtitled.engines.base import Word
from subtitled.errors import ConfigError, EnvironmentFault, MediaError
from subtitled.language import LanguageGuess, label_pieces, vote
from subtitled.levels import Dialogue, Levels, raised
from subtitled.media import AudioStream, MediaInfo
from subtitled.pipeline.decoder import BatchDecoder, Work
from subtitled.pipeline.decoding import Decoding
from subtitled.pipeline.engine_calls import batch_or_each, call_watched
from subtitled.pipeline.foreign import ForeignFinder
from subtitled.pipeline.sampling import sample_language
from subtitled.pipeline.second_look import second_look
from subtitled.pipeline.sidecars import Sidecars
from subtitled.pipeline.tools import Hooks, Outcome, Resume, Role, Status, Tools
from subtitled.prefetch import Prefetch
from subtitled.quality import Verdict, judge
from subtitled.speech import Chunk, SpeechChunker
from subtitled.subtitles import (
    review_path,
)

logger = logging.getLogger(__name__)


# Outcomes that leave a subtitle in their language beside the file (written, someone's,
# or ours held back): another audio track in that language has nothing to add.
_GAVE = ("written", "exists", "held")


class MediaJob:
    """`taken`: for another audio track's job, the languages the file has a subtitle in
    already (its main track's, a translation's, an earlier track's)."""

    def __init__(self, path: Path, settings: TranscribeSettings, tools: Tools, hooks: Hooks,
                 started: float, taken: Collection[str] | None = None) -> None:
        self.path, self.settings, self.tools, self.hooks = path, settings, tools, hooks
        self.started = started
        self.taken = taken or ()
        self.allowed = tuple(languages.to_whisper(c) for c in settings.language.allowed)
        # Another track's job leaves the main subtitle's review copies alone.
        self.sidecars = Sidecars(path, settings, tools.write, hooks.previous, hooks.wrote,
                                 review_copies=taken is None)
        self.audio_seconds = 0.0  # of the whole file, once it has all been read
        self._extracted_seconds = 0.0  # so far, counted by the extraction thread
        self._windows = 0
        self._first_look: float | None = None  # quality.judge
        # Where the translation and the forced subtitle go, decided once the language is
        # known ([]: none is made).
        self._translation_targets: list[Path] | None = None
        self._finder: ForeignFinder | None = None  # for a forced subtitle
        self._forced_targets: list[Path] | None = None
        self._foreign_saved = 0  # of them, those in checkpoints
        self._levels = Levels(settings.speech.quiet_margin_db,  # as the audio is read
                              settings.speech.bed_margin_db)
        self.dialogue: Dialogue | None = None  # what the levels said, at the end
        self._second_look_words = 0

    def run(self) -> Outcome:
        media = self.tools.probe(self.path)
        skip = self.settings.skip
        if media.duration_seconds is not None and \
                media.duration_seconds < skip.min_duration_seconds:
            return self._outcome("skipped", None, None, 0, 0.0,
                                 f"shorter than {skip.min_duration_seconds:g} s")
        outcome = self._main_track(media)
        if not self.settings.language.each_audio_language or not media.other_tracks():
            return outcome
        # The languages with a subtitle now: the main track's, its translation's.
        taken = {outcome.language} if outcome.language and outcome.status in _GAVE else set()
        taken |= {"en"} if outcome.translation else set()
        return replace(outcome, tracks=tuple(other_track_subtitles(
            self.path, self.settings, self.tools, self.hooks, media, taken)))

    def _main_track(self, media: MediaInfo) -> Outcome:
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
                if guess is not None:
                    self._save(0.0, guess, [], [] if self._translation(guess) else None,
                               [] if self._forcing(guess) else None)
            # Before the long part: an hour of decoding must not end in a folder we cannot
            # write.
            self.tools.check_output(self.path)
            words, translated, guess = self._transcribe(media, chunks, guess, resume)
        self.dialogue = self._levels.finish()
        if self.dialogue.quiet:
            logger.info("%s: quiet: %s", self.path, self.dialogue.describe())
            if self.settings.speech.second_look:
                heard, guess = second_look(self.path, self.settings, self.tools,
                                           self.hooks.alive, self.allowed, media, guess,
                                           self._levels, self._windows)
                self._second_look_words = len(heard)
                words = sorted(words + heard, key=lambda w: w.start_seconds)
        return self._write(media, words, translated, guess, chunker.speech_seconds)

    def _write(self, media: MediaInfo, words: list[Word], translated: list[Word] | None,
               guess: LanguageGuess | None, speech_seconds: float) -> Outcome:
        verdict = self._judge(words, guess, speech_seconds)
        if guess is None or not words:
            self.sidecars.drop_ours()
            return self._outcome("no-speech", None, guess, 0, speech_seconds,
                                 verdict=verdict)
        if done := self._already_done(media, guess):
            return done
        cues = shape_cues(words, self.settings.cues)
        gate = self.settings.quality.gate if verdict else "off"
        targets = self._targets(guess)
        # The subtitles written beside this one: the translation, the forced subtitle.
        extras = {kind: (paths, found) for kind, paths, found in (
            ("translation", self._translation(guess) or [], translated or []),
            ("forced", self._forced_targets or [], self._foreign_words(words)))}
        if gate == "hold":  # and no subtitle of ours from before shows meanwhile
            self.sidecars.drop_ours(also=targets,
                                    extras=[p for ps, _ in extras.values() for p in ps])
            return self._outcome("held", None, guess, len(cues), speech_seconds,
                                 verdict=verdict)
        target, *beside = [review_path(p) for p in targets] if gate == "review" else targets
        # The other formats beside the tracked one: ours when it is (a redo replaces them,
        # but one edited since), else someone's where they exist (a tagger's Song.lrc),
        # and kept.
        ours = target.exists() and self.hooks.previous is not None and \
            self.hooks.previous(target) == "ours"
        self.tools.write(target, cues, "tracked")  # first: once in place, the job is done
        for other in beside:
            self.sidecars.write_beside(other, cues, replace=self.settings.output.overwrite or
                                       (ours and not self.sidecars.edited(other)))
        # Nothing beside a subtitle written for review: its doubtful words are not shown
        # translated either. Ours from before goes where nothing replaces it.
        shown = {kind: paths[0] for kind, (paths, found) in extras.items()
                 if paths and found and gate != "review"}
        self.sidecars.drop_ours(
            also=targets if gate == "review" else (), keep=(target, *beside),
            extras=[p for kind, (ps, _) in extras.items() if kind not in shown for p in ps])
        for kind in shown:
            paths, found = extras[kind]
            extra_cues = shape_cues(found, self.settings.cues)
            for path in paths:
                self.sidecars.write_beside(path, extra_cues, replace=False)
        return self._outcome("written", target, guess, len(cues), speech_seconds,
                             verdict=verdict, translation=shown.get("translation"),
                             forced=shown.get("forced"))

    def _judge(self, words: list[Word], guess: LanguageGuess | None,
               speech_seconds: float) -> Verdict | None:
        if self.settings.quality.gate == "off":
            return None
        detected = guess is not None and guess.windows > 0
        return judge(words, self.audio_seconds, speech_seconds,
                     guess.iso_code if guess else None,
                     guess.confidence if guess and detected else None,
                     self.settings.quality, self._first_look)

    def _already_done(self, media: MediaInfo, guess: LanguageGuess) -> Outcome | None:
        """A subtitle in this language exists beside the file or inside it, or comes from
        another audio track of it."""
        label = self._label(guess)
        if label in self.taken:
            return self._outcome("skipped", None, guess, 0, 0.0,
                                 f"the file has its {label} subtitle already")
        if kept := self.sidecars.kept(label, self._targets(guess)):
            return self._outcome("exists", kept[0], guess, 0, 0.0, kept[1])
        if self.settings.skip.embedded_text_subtitles and \
                label in media.text_subtitle_languages and not self.settings.output.overwrite:
            return self._outcome("skipped", None, guess, 0, 0.0,
                                 f"has an embedded {label} text subtitle")
        return None

    def _translation(self, guess: LanguageGuess) -> list[Path] | None:
        """Where the English translation beside the transcript goes, in each format (LRC
        names no language: the transcript's alone), if one is made: `also_translate`, a
        file not in English, and no English subtitle of someone else's there."""
        if self._translation_targets is None:
            language = self.settings.language
            targets = self.sidecars.beside_targets("en")
            wanted = language.also_translate and language.task == "transcribe" and \
                self.tools.transcriber.multilingual and guess.code != "en" and \
                self.sidecars.someone_elses("en", targets) is None
            self._translation_targets = targets if wanted else []
        return self._translation_targets or None

    def _forcing(self, guess: LanguageGuess) -> bool:
        """A forced subtitle (Movie.en.forced.srt: the stretches in other languages,
        translated) is made: `forced_subtitles`, a film in English, and no forced subtitle
        of someone else's there."""
        if self._forced_targets is None:
            language = self.settings.language
            targets = self.sidecars.beside_targets("en.forced")
            theirs = self.sidecars.someone_elses("en.forced", targets)
            wanted = language.forced_subtitles and language.task == "transcribe" and \
                self.tools.transcriber.multilingual and guess.code == "en"
            if wanted and theirs is not None:
                logger.info("%s: %s is not ours; kept, and no forced subtitle made",
                            self.path, theirs.name)
            self._forced_targets = targets if wanted and theirs is None else []
        return bool(self._forced_targets)

    def _forced(self, guess: LanguageGuess, media: MediaInfo) -> ForeignFinder | None:
        """What finds the foreign stretches for the forced subtitle, if one is made."""
        if not self._forcing(guess):
            return None
        return ForeignFinder(guess.code, self.allowed, self._detect_many,
                             media.audio.start_offset_seconds)

    def _foreign_words(self, words: list[Word]) -> list[Word]:
        """The words spoken in a foreign stretch (their middle in it)."""
        return [w for w in words if any(start <= (w.start_seconds + w.end_seconds) / 2 <= end
                                        for start, end in self._finder.spans)] \
            if self._finder else []

    def _outcome(self, status: Status, target: Path | None, guess: LanguageGuess | None,
                 cue_count: int, speech_seconds: float, reason: str | None = None, *,
                 verdict: Verdict | None = None, translation: Path | None = None,
                 forced: Path | None = None) -> Outcome:
        return Outcome(self.path, status, target, self._label(guess) if guess else None,
                       guess.confidence if guess else None, cue_count, self.audio_seconds,
                       speech_seconds, time.monotonic() - self.started, reason, self._windows,
                       verdict.text if verdict else None, verdict.flags if verdict else (),
                       translation, forced,
                       self._finder.windows if self._finder else 0,
                       quiet=self.dialogue.describe() if self.dialogue and self.dialogue.quiet
                       else None, second_look_words=self._second_look_words)

    def _label(self, guess: LanguageGuess) -> str:
        """The language the subtitle is in: English when translating."""
        return "en" if self.settings.language.task == "translate" else guess.iso_code

    def _targets(self, guess: LanguageGuess) -> list[Path]:
        """The subtitle's file in each of the output formats, the first format's first."""
        return self.sidecars.targets(self._label(guess))

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
                    ) -> tuple[list[Word], list[Word] | None, LanguageGuess | None]:
        """The transcript's words and the translation's (None when none is made)."""
        saved_through = resume.decoded_seconds if resume else 0.0
        line = saved_through + media.audio.start_offset_seconds if resume else 0.0
        decoding: Decoding | None = None
        windows = 0
        for chunk in chunks:
            if guess is None:  # no window had speech to vote on: use the first chunk
                guess = vote([(self._detect(chunk.audio), 1.0)], self.allowed)
                assert guess is not None
            if decoding is None:
                decoding = self._decoding(media, guess, resume, line)
            self.hooks.alive(True)
            decoding.add([Work(code, part)
                          for code, part in self._languages_of(chunk, guess.code)])
            self._windows = decoding.windows_decoded
            self.hooks.progress(chunk.source_end_seconds, media.duration_seconds,
                                self._label(guess))
            # After a batch was decoded (not merely queued): a checkpoint is progress.
            if decoding.windows_decoded > windows and \
                    decoding.decoded_through() > saved_through:
                windows, saved_through = decoding.windows_decoded, decoding.decoded_through()
                line = saved_through + media.audio.start_offset_seconds
                words, *translated = decoding.take(line)
                self._save(saved_through, guess, words, translated[0] if translated else None,
                           self._foreign_before(line))
        if decoding is None:
            decoding = self._decoding(media, guess, resume, line)
        words, *translated = decoding.finish()
        self._windows, self._first_look = decoding.windows_decoded, decoding.first_look
        self.audio_seconds = self._extracted_seconds  # every chunk is in: it has all been read
        # The file's own decoding is over (a quiet file's second look may follow, and may
        # still be stopped: it is looked at again on the next run).
        self.hooks.progress(self.audio_seconds, self.audio_seconds,
                            self._label(guess) if guess else None)
        return words, translated[0] if translated else None, guess

    def _decoding(self, media: MediaInfo, guess: LanguageGuess | None,
                  resume: Resume | None, line: float) -> Decoding:
        """The transcript's decoder, and the translation's when one is made (and, resumed,
        was made before: its words before the line are in the checkpoints)."""
        self._finder = self._forced(guess, media) if guess is not None else None
        if self._finder is not None and resume is not None:
            if resume.foreign is None:
                logger.info("%s: resumed where no foreign stretches were saved; no forced "
                            "subtitle is made", self.path)
                self._finder, self._forced_targets = None, []
            else:
                self._finder.spans = list(resume.foreign)
                self._foreign_saved = len(resume.foreign)
        decoders = [BatchDecoder(self.path, self.settings, self.tools.transcriber, media,
                                 self.hooks.alive, self._finder)]
        resumed = [resume.words if resume else ()]
        if guess is not None and self._translation(guess):
            if resume is not None and resume.translated is None:
                logger.info("%s: resumed where no translation was saved; none is made",
                            self.path)
                self._translation_targets = []
            else:
                translate = replace(self.settings, language=replace(
                    self.settings.language, task="translate"))
                decoders.append(BatchDecoder(self.path, translate, self.tools.transcriber,
                                             media, self.hooks.alive))
                resumed.append(resume.translated or () if resume else ())
        return Decoding(decoders, resumed, line)

    def _save(self, through: float, guess: LanguageGuess | None, words: list[Word],
              translated: list[Word] | None = None,
              foreign: Sequence[tuple[float, float]] | None = None) -> None:
        if self.hooks.checkpoints is not None and guess is not None:
            self.hooks.checkpoints.save(through, guess, words, translated, foreign)

    def _foreign_before(self, line: float) -> list[tuple[float, float]] | None:
        """The foreign stretches that start before `line` and no checkpoint holds yet
        (None: no forced subtitle is made)."""
        if self._finder is None:
            return None
        found = [span for span in self._finder.spans[self._foreign_saved:] if span[0] < line]
        self._foreign_saved += len(found)
        return found

    def _chunks(self, media: MediaInfo, chunker: SpeechChunker, resume_at: float
                ) -> Generator[Chunk, None, None]:
        """The file's speech chunks that end after `resume_at` (source seconds), in source
        time. The audio is always read from the start: speech detection then cuts exactly
        the chunks an uninterrupted run decodes, so a resumed file comes out as one that was
        never stopped (detection costs a small part of what decoding does)."""
        self._extracted_seconds = 0.0
        for block in self.tools.open_audio(media, None, None):
            self._extracted_seconds += len(block) / 16_000
            self._levels.add_block(block)
            yield from self._leveled(chunker.feed(block), resume_at)
        yield from self._leveled(chunker.finish(), resume_at)

    def _leveled(self, chunks: list[Chunk], resume_at: float) -> Iterator[Chunk]:
        """The chunks measured (the dialogue's level), the ones after `resume_at` each
        raised to the dialogue's level so far where it lies well below it."""
        below = self.settings.speech.raise_below_db
        for chunk in chunks:
            dialogue = self._levels.dialogue_dbfs
            self._levels.add_chunk(chunk)
            if chunk.source_end_seconds <= resume_at:
                continue
            if below is not None:
                chunk, gain = raised(chunk, dialogue, below)
                if gain:
                    logger.debug("%s: speech at %.0f s raised %.0f dB to the dialogue's "
                                 "level", self.path, chunk.source_start_seconds, gain)
            yield chunk

    def _detect_many(self, audios: Sequence[np.ndarray]) -> list[dict[str, float]]:
        """The clips' languages in one batch; out of memory, each clip heard alone (a
        window alone that still runs out fails as the decoder's would)."""
        transcriber = self.tools.transcriber
        return batch_or_each(transcriber.detect_languages, audios, self.hooks.alive,
                             transcriber.release_memory, what="language window",
                             path=self.path, stage="language")

    def _languages_of(self, chunk: Chunk, file_language: str) -> list[tuple[str, Chunk]]:
        """The chunk whole in the file's language, or in runs of pieces by language
        (`per-chunk`; a forced subtitle's runs are found as the chunk is decoded)."""
        language = self.settings.language
        if self._finder is None and language.mode == "per-chunk" and \
                self.tools.transcriber.multilingual and language.language == "auto":
            return label_pieces(chunk, self._detect, self.allowed, file_language)
        return [(file_language, chunk)]

    def _detect(self, audio: np.ndarray) -> dict[str, float]:
        detect = self.tools.transcriber.detect_language
        return call_watched(partial(detect, audio), self.hooks.alive)



def other_track_subtitles(path: Path, settings: TranscribeSettings, tools: Tools,
                          hooks: Hooks, media: MediaInfo, taken: set[str]) -> list[Path]:
    """A subtitle from each other audio track in a language no track before it gave (an
    English dub beside a Japanese film), written beside the main one: decoded whole, with
    no checkpoints (a stop decodes it again), no translation or forced subtitle, and a
    likely bad one flagged in the log, never held (the gate is the main subtitle's). Like
    a translation, it takes no subtitle from anyone (but with `output.overwrite`): only
    ours is replaced. A track that cannot be read, or that the memory does not hold, is
    said and left; the main subtitle stands."""
    settings = replace(settings, language=replace(
        settings.language, each_audio_language=False, also_translate=False,
        forced_subtitles=False), quality=replace(settings.quality, gate="flag")
        if settings.quality.gate in ("review", "hold") else settings.quality,
        # LRC's name says no language: the main track's alone.
        output=replace(settings.output, formats=tuple(
            f for f in settings.output.formats if f != "lrc") or ("srt",)))
    hooks = Hooks(alive=hooks.alive, previous=hooks.wrote or hooks.previous,
                  wrote=hooks.wrote or hooks.previous)
    def beside(target: Path, cues: list[Cue], role: Role) -> None:
        del role  # the main track's subtitle is the tracked one
        tools.write(target, cues, "beside")

    written = []
    for stream in media.other_tracks():
        track = replace(tools, probe=partial(_with_track, media, stream), write=beside)
        name = f"audio track {stream.index}" + (f" ({stream.language})"
                                                 if stream.language else "")
        try:
            outcome = MediaJob(path, settings, track, hooks, time.monotonic(),
                               frozenset(taken)).run()
        except (MediaError, EnvironmentFault) as err:
            # A broken track, or one the memory does not hold: the main subtitle stands
            # (a stop, a changed file, a share gone and a hung engine end the job).
            if isinstance(err, EnvironmentFault) and err.kind != "memory":
                raise
            logger.warning("%s: %s: no subtitle from it: %s", path, name, err.one_line())
            continue
        if outcome.language and outcome.status in _GAVE:
            taken.add(outcome.language)
        if outcome.quality:
            logger.warning("%s: %s: likely a bad subtitle: %s", path, name, outcome.quality)
        if outcome.status == "written" and outcome.output is not None:
            logger.info("%s: %s: %s (%s, %d cues)", path, name, outcome.output.name,
                        outcome.language, outcome.cue_count)
            written.append(outcome.output)
        else:
            logger.info("%s: %s: %s", path, name, outcome.reason or outcome.status)
    return written


def _with_track(media: MediaInfo, stream: AudioStream, path: Path) -> MediaInfo:
    del path  # probed once, for the main track
    return replace(media, audio=stream)
