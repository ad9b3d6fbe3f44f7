"""The worker's job policy: one claimed job through the pipeline, and what its outcome,
error, stop or change of file means for the job store."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import srt

from subtitled import failpoints, faults
from subtitled.config import DaemonSettings, RetrySettings
from subtitled.cues import Cue
from subtitled.engines.base import Word, is_out_of_memory
from subtitled.errors import (
    ConfigError,
    EngineStuck,
    EnvironmentFault,
    MediaError,
    SubtitledError,
    TransientError,
)
from subtitled.health import Health
from subtitled.language import LanguageGuess
from subtitled.metrics import Metrics
from subtitled.notify import Notifier
from subtitled.pipeline import (
    Hooks,
    Outcome,
    Resume,
    Role,
    Tools,
    Write,
    engine_calls,
    process_media_file,
)
from subtitled.pipeline import checkpoints as saved_words
from subtitled.pipeline.tools import Previous
from subtitled.service import requests
from subtitled.service.breaker import Breaker
from subtitled.service.requests import Request
from subtitled.store import (
    RENEWALS_PER_LEASE,
    STORE_ERRORS,
    Fingerprint,
    Job,
    JobStore,
    LeaseLost,
    LeaseUnrenewed,
    Result,
    file_sha256,
    text_sha256,
)
from subtitled.subtitles import count_cues, output_paths, renamed, render, write_atomic

logger = logging.getLogger(__name__)


# A file on which the GPU needed a new process this many times fails; before that it
# waits this long times the count, so that the other files go first after the restart.
STICKY_EXITS = 3
STICKY_WAIT_SECONDS = 600.0


class Cancelled(Exception):
    """The daemon is stopping; the current job is abandoned and requeued."""


class PausedByAdmin(Cancelled):
    """`subtitled pause`: the current job is abandoned and requeued, as for a stop."""


class StoredCheckpoints:
    """A job's decoded words, kept in the job store after each batch; `held` raises when
    the job is no longer this process's."""

    def __init__(self, store: JobStore, job: Job, held: Callable[[], None]) -> None:
        self.store, self.job, self.held = store, job, held

    def load(self) -> Resume | None:
        self.held()
        return saved_words.decode(*self.store.checkpoint(self.job))

    def save(self, decoded_seconds: float, language: LanguageGuess, words: list[Word],
             translated: list[Word] | None = None,
             foreign: Sequence[tuple[float, float]] | None = None) -> None:
        self.held()
        self.store.add_checkpoint(self.job, decoded_seconds,
                                  saved_words.encode(language, words, translated, foreign))


@dataclass
class _Lease:
    """A running job's hold in a shared store, kept by its renewing thread."""

    # Until when (by the worker's clock) the job is worked on: half its lease after the
    # start of the last renewal that got through (renewals come every quarter of the
    # lease, and four times as often after one fails). The work then ends at its next
    # engine call, progress note or checkpoint: in time, unless a store call hangs past
    # its wait for a connection (a network cut: keepalives end it in about 30 s), before
    # the lease runs out and another host may take the job.
    until: float = float("inf")
    # Set when a renewal found the job taken by another host.
    lost: threading.Event = field(default_factory=threading.Event)
    # The last renewal tried failed in the database (not a host too stalled to try).
    failing: bool = False

    def renewed(self, started: float, lease_seconds: float) -> None:
        """A renewal (the keeper's, or a progress note's) that started at `started` got
        through."""
        self.until = max(self.until, started + lease_seconds / 2)
        self.failing = False


@dataclass
class Worker:
    """Runs claimed jobs. The daemon owns the threads and hands over what it has."""

    store: JobStore
    health: Health
    notifier: Notifier
    metrics: Metrics | None
    stop: threading.Event
    settle_seconds: float
    breaker: Breaker
    admin_paused: Callable[[], bool] = lambda: False  # `subtitled pause`, asked meanwhile
    # A reload asked for meanwhile: what need not wait for the file applies now.
    reload_now: Callable[[], None] = lambda: None
    # A subtitle was written beside this video: the media servers hear of it.
    written: Callable[[Path], None] = lambda _: None
    # A file was given up on (failed, or dead after its attempts): (path, state, why).
    gave_up: Callable[[Path, str, str], None] = lambda path, state, why: None
    # A file's subtitle is likely bad (subtitled.quality): (path, why).
    flagged: Callable[[Path, str], None] = lambda path, why: None
    # The job in hand, its phase (probing, language, decoding, writing) and its language
    # once known, for the web page.
    phase: tuple[int, str, str | None] | None = None
    # The clock of the lease's own deadline (monotonic: no wall-clock step moves it).
    clock: Callable[[], float] = time.monotonic
    # The running job's lease, as its keeper thread last knew it.
    _lease: _Lease = field(default_factory=_Lease)
    # Jobs let go while the job database failed (a lease that could not be renewed, an
    # end that could not be recorded): the daemon gives their attempts back once the
    # database answers (`JobStore.give_back`).
    owed: list[Job] = field(default_factory=list)

    def work(self, job: Job, settings: DaemonSettings, tools: Tools) -> None:
        """Take the claimed job to its end (or back to the queue). In a shared store its
        lease is renewed meanwhile; a lost lease (another host took the job) ends the
        work here without writing anything of it."""
        # In a shared store, each claim and its end are logged: which host decoded what,
        # when, under which lease.
        level = logging.INFO if self.store.shared else logging.DEBUG
        logger.log(level, "%s: claimed by %s (lease %d, attempt %d)", job.path,
                   self.store.host or "this host", job.lease, job.attempts)
        try:
            with self._leased(job):
                self._work(job, settings, tools)
        except LeaseLost as lost:
            logger.warning("%s; nothing of it is written here", lost)
            self._engine_done(job)  # the engine call given up on, before the next file
            if isinstance(lost, LeaseUnrenewed):  # its attempt is owed, not spent
                self.owed.append(job)
        finally:
            logger.log(level, "%s: let go by %s (lease %d)", job.path,
                       self.store.host or "this host", job.lease)

    @contextmanager
    def _leased(self, job: Job) -> Iterator[None]:
        lease = self._lease = _Lease()
        if not self.store.shared:
            yield
            return
        done = threading.Event()
        interval = self.store.lease_seconds / RENEWALS_PER_LEASE
        # Claimed a moment ago (the claim's own call is far shorter than an interval).
        lease.until = self.clock() + self.store.lease_seconds / 2

        def renew() -> None:
            wait = interval
            while not done.wait(wait):
                started = self.clock()
                try:
                    if not self.store.renew(job):
                        lease.lost.set()
                        return
                except STORE_ERRORS as err:  # the next renewal may get through
                    lease.failing = True
                    logger.warning("%s: its lease was not renewed: %s", job.path, err)
                    # Tried again soon: one blip must not cost the job its half lease.
                    wait = interval / 4
                    continue
                lease.renewed(started, self.store.lease_seconds)
                wait = interval

        # Not waited for at the end: a renewal in hand may wait for a connection as long
        # as an interval, and the job is let go now. What it learns goes to this job's
        # lease alone.
        threading.Thread(target=renew, name="lease", daemon=True).start()
        try:
            yield
        finally:
            done.set()

    def _work(self, job: Job, settings: DaemonSettings, tools: Tools) -> None:
        path = job.path
        try:
            current = Fingerprint.of(path)
        except OSError as err:
            self._unreadable(job, err, "before it was processed", settings.retry)
            return
        if not current.same_content(job.fingerprint):
            self.store.requeue_changed(job, current, time.time() + self.settle_seconds)
            logger.info("%s: changed since it was queued; waiting for it to settle", path)
            return
        try:
            marker = _skip_marker(path, settings)
        except OSError as err:  # Path.exists() raises on EIO, ESTALE, EACCES...
            self._unreadable(job, err, "before it was processed", settings.retry)
            return
        if marker is not None:
            self.store.finish(job, "skipped", None, f"skip marker {marker}")
            return
        failpoints.hit("after-claim", path.name)
        # A request names its own language and task: a copy of another name's subtitle
        # (a request on a library file links to it) would not be what it asked for.
        if job.request is None and self._copied_from_twin(job, settings):
            return
        self._process(job, settings, tools)

    def _copied_from_twin(self, job: Job, settings: DaemonSettings) -> bool:
        """The same file under another name (a hard link, as *arr imports make) already has
        a subtitle: write a copy beside this name instead of transcribing it again."""
        twin = self.store.twin(job)
        if twin is None or twin.written_path is None or twin.language is None:
            return False
        output = settings.for_file(job.path).output
        target, *extras = output_paths(job.path, twin.language, output.template,
                                       output.formats)
        # The twin's files in the same formats, where it has them (it may live under a root
        # with other formats).
        sources = output_paths(twin.path, twin.language, output.template, output.formats)
        try:
            if not job.path.samefile(twin.path) or target.exists() or \
                    sources[0] != Path(twin.written_path):
                return False
            texts = [path.read_text(encoding="utf-8") for path in sources]
            cues = count_cues(target, texts[0])
            self.store.writing(job, target, cues, text_sha256(texts[0]))
            # The other formats beside it, and the twin's other subtitles (a translation, a
            # forced subtitle), where the names are free.
            beside = [(extra, text) for extra, text in [
                *zip(extras, texts[1:], strict=True),
                *_others_of(twin, job, sources, output.formats)] if not extra.exists()]
            for extra, text in beside:
                self.store.writing_beside(job, extra, text_sha256(text))
            with self.store.fenced(job):
                write_atomic(target, texts[0])
                for extra, text in beside:
                    write_atomic(extra, text)
        except (OSError, ValueError, srt.SRTParseError, SubtitledError):
            return False  # the twin moved, or its subtitle is gone: transcribe this one
        self.store.finish(job, "done", Result(twin.language, cues, twin.audio_seconds or 0.0,
                                              0.0, target, quality=twin.quality,
                                              quiet=twin.quiet))
        self._count("done")
        logger.info("%s: the same file as %s (a hard link); its subtitle copied to %s",
                    job.path, twin.path, target.name)
        self.written(job.path)
        return True

    def _process(self, job: Job, settings: DaemonSettings, tools: Tools) -> None:
        hooks = Hooks(progress=lambda done, total, language:
                      self._progress(job, done, total, language),
                      alive=lambda computing: self._alive(job, computing),
                      checkpoints=StoredCheckpoints(self.store, job,
                                                    partial(self._check_lease, job)),
                      # Forced: whatever subtitle is there in its language is replaced.
                      previous=None if job.force else partial(_previous, job),
                      wrote=partial(_previous, job),
                      language_hint=job.language)
        self.health.beat(f"transcribing {job.path.name}")
        self.notifier.status(f"transcribing {job.path.name}")
        self.phase = (job.id, "probing", None)
        failpoints.hang("hang-in-engine", job.path.name)
        try:
            transcribe = settings.for_file(job.path)
            if job.force:
                transcribe = replace(transcribe, output=replace(transcribe.output,
                                                                overwrite=True))
            request = Request.loads(job.request) if job.request else None
            if request is not None:
                transcribe = requests.settings_for(transcribe, request)
                tools = requests.tools_for(tools, transcribe)
            tools = replace(tools, write=self._guarded_write(job, tools))
            if request is not None and request.kind == "detect":
                run = partial(requests.detect, job.path, transcribe, tools, hooks.alive)
            else:
                run = partial(process_media_file, job.path, transcribe, tools, hooks)
            self._process_and_record(job, run, settings)
        finally:
            self.phase = None
            if self.metrics is not None:
                self.metrics.progress.set(0)

    def _check_lease(self, job: Job) -> None:
        """Raises LeaseLost once the job is, or soon may be, another host's: taken (a
        renewal said so), or half its lease gone without a renewal that got through (the
        database down or cut off: once the lease runs out, the other hosts may claim it the
        moment the database answers them)."""
        if self._lease.lost.is_set():
            raise LeaseLost(job.path)
        if self.clock() > self._lease.until:
            if self._lease.failing:  # the database's doing: the attempt is owed
                raise LeaseUnrenewed(job.path)
            # A host too stalled to renew (swapping, a paused machine): its own doing.
            raise LeaseLost(job.path, "its lease was not renewed in time")

    def _progress(self, job: Job, done: float, total: float | None,
                  language: str | None) -> None:
        self._check_lease(job)
        started = self.clock()
        try:
            held = self.store.set_progress(job, done, total)
        except STORE_ERRORS as err:  # a blip: the figure is for `status`, the work goes on
            self._lease.failing = True
            logger.warning("%s: progress not recorded: %s", job.path, err)
        else:  # the note renews the lease in a shared store
            if self.store.shared and held:
                self._lease.renewed(started, self.store.lease_seconds)
            elif self.store.shared:
                self._lease.lost.set()
        self.phase = (job.id, "writing" if total and done >= total else "decoding"
                      if language else "language", language)
        if done > 0:
            failpoints.hit("mid-transcription", job.path.name)
        self.health.beat(f"transcribing {job.path.name}")
        if self.metrics is not None and total:
            self.metrics.progress.set(min(1.0, done / total))
        share = f": {done / total:.0%}" if total else ""
        spoken = f" ({language})" if language else ""
        self.notifier.status(f"transcribing {job.path.name}{share}{spoken}")

    def _alive(self, job: Job, computing: bool) -> None:
        """While the engine computes: beat for work being done (CPU time used), and leave
        at once when the daemon is stopping; the batch in hand is given up, the ones
        before it are checkpointed."""
        if computing:
            self.health.beat(f"transcribing {job.path.name}")
        if self.stop.is_set():
            raise Cancelled
        self._check_lease(job)
        if self.admin_paused():
            raise PausedByAdmin
        self.reload_now()

    def _engine_done(self, job: Job) -> None:
        """A pause leaves the engine call it gave up on running on its thread (a stop ends
        the process instead): wait for it, alive, so that nothing else uses the model
        beside it, and the machine is really free when the pause says so."""
        while engine_calls.abandoned() and not self.stop.wait(0.2):
            self.health.beat(f"pausing: the engine finishes its batch of {job.path.name}")

    def _process_and_record(self, job: Job, run: Callable[[], Outcome],
                            daemon: DaemonSettings) -> None:
        try:
            outcome = run()
        except Cancelled as cancelled:
            if isinstance(cancelled, PausedByAdmin):
                self._engine_done(job)
            self.store.release(job)
            why = "a pause" if isinstance(cancelled, PausedByAdmin) else "shutdown"
            logger.info("%s: abandoned for %s; requeued, and resumes from its last "
                        "checkpoint", job.path, why)
            return
        except EnvironmentFault as err:
            self._environment(job, err, daemon.retry)
            return
        except ConfigError as err:
            if job.request is not None:  # what a client asked: its answer, not a pause
                self._failed(job, err, daemon.retry)
                return
            # The settings fail here, not the file: every file waits.
            self._environment(job, EnvironmentFault(
                f"the configuration does not work: {err.message}; fix it and reload",
                kind="config", path=job.path, stage=err.stage or "config"), daemon.retry)
            return
        except SubtitledError as err:
            self._failed(job, err, daemon.retry)
            return
        except STORE_ERRORS:
            raise  # the job store itself: the daemon pauses (the state directory failed)
        except LeaseLost:
            raise  # another host has the job: nothing of it is recorded here
        except OSError as err:  # one the pipeline met outside its classified steps
            self._unreadable(job, err, "while being transcribed", daemon.retry)
            return
        except Exception as err:  # a bug: record it, keep the daemon alive
            if is_out_of_memory(err):  # memory the decoder could not make do without
                self._environment(job, EnvironmentFault(
                    f"out of memory: {err}", kind="memory", path=job.path, stage="transcribe"),
                    daemon.retry)
                return
            stuck = faults.from_engine_error(err, path=job.path)
            if isinstance(stuck, EngineStuck):  # raised outside an engine call (a cache free)
                self._environment(job, stuck, daemon.retry)
                return
            logger.exception("%s: unexpected failure", job.path)
            why = f"{job.path}: {type(err).__name__}: {err}"
            self.store.fail(job, why, type(err).__name__, transient=False, budget_seconds=0,
                            backoff_seconds=0, backoff_max_seconds=0)
            self._count("failed")
            self._failure("transcribe", type(err).__name__)
            self.gave_up(job.path, "failed", why)
            return
        if outcome.status in ("written", "held"):  # decoded to the end
            self.breaker.succeeded(job.path)
        self._record(job, outcome)

    def _environment(self, job: Job, err: EnvironmentFault, retry: RetrySettings) -> None:
        """The world failed, not the file: the file waits with its attempts as they were,
        and the breaker decides whether everything under the fault pauses. A sticky engine
        error ends the process (the caller sees EngineStuck) after the job is put back."""
        if err.path is None:
            err.path = job.path
        if isinstance(err, EngineStuck):
            self._stuck(job, err, retry)
            return
        pause = self.breaker.fault(err)
        if self.breaker.blames_file(job.path):
            self._record_failure(job, MediaError(
                f"fails here every time while other files are done: {err.message}",
                path=job.path, stage=err.stage), retry)
            return
        self.store.defer(job, err.one_line(), type(err).__name__, self.breaker.retry_at(err))
        self._count("deferred")
        if pause is not None:
            logger.error("%s; the files there wait and lose no attempt",
                         pause.describe(time.time()))
            self.notifier.status(self.breaker.describe())
        else:
            logger.warning("%s (the file waits; not counted as an attempt)", err.one_line())

    def _stuck(self, job: Job, err: EngineStuck, retry: RetrySettings) -> None:
        """The GPU needs a new process: the file waits (longer each time, so that others
        go first after the restart) and the caller ends the process. A file on which this
        happened STICKY_EXITS times fails instead: it, not the GPU, is the likely cause."""
        if job.sticky_exits + 1 >= STICKY_EXITS:
            self._record_failure(job, MediaError(
                f"the GPU failed on this file {STICKY_EXITS} times, each needing a new "
                f"process: {err.message}", path=job.path, stage=err.stage), retry)
        else:
            wait = STICKY_WAIT_SECONDS * (job.sticky_exits + 1)
            self.store.defer(job, err.one_line(), type(err).__name__, time.time() + wait,
                             sticky=True)
            self._count("deferred")
        raise err

    def _unreadable(self, job: Job, err: OSError, when: str, retry: RetrySettings) -> None:
        """The file's own metadata cannot be read: gone, the world's fault, or the file's.
        Not found under a root that looks unmounted is the world's too."""
        if faults.is_gone(err):
            lost = self.breaker.root_lost(job.path)
            if lost is None:
                self.store.forget(job)
                logger.info("%s: gone %s; no subtitle written", job.path, when)
                return
            root = self.breaker.root_of(job.path) or job.path.parent
            self._environment(job, EnvironmentFault(lost, kind="storage", path=job.path,
                                                    stage="open", where=root), retry)
            return
        found = faults.from_os_error(err, path=job.path, stage="open")
        if isinstance(found, EnvironmentFault):
            self._environment(job, found, retry)
        else:
            self._record_failure(job, found, retry)

    def _failed(self, job: Job, err: SubtitledError, retry: RetrySettings) -> None:
        path = job.path
        try:
            current = Fingerprint.of(path)
        except OSError as unreadable:
            self._unreadable(job, unreadable, "while being transcribed", retry)
            return
        if not current.same_content(job.fingerprint):  # replaced: the error is moot
            self.store.requeue_changed(job, current, time.time() + self.settle_seconds)
            logger.info("%s: changed while it was being transcribed (%s); starting over once "
                        "it settles", path, err.message)
            return
        self._record_failure(job, err, retry)

    def _record_failure(self, job: Job, err: SubtitledError, retry: RetrySettings) -> None:
        transient = isinstance(err, TransientError)
        state = self.store.fail(job, err.one_line(), type(err).__name__, transient=transient,
                                budget_seconds=retry.transient_budget_hours * 3600,
                                backoff_seconds=retry.backoff_seconds,
                                backoff_max_seconds=retry.backoff_max_seconds)
        logger.error("%s (%s)", err.one_line(), state)
        self._count(state)
        if state != "queued":
            self._failure(err.stage or "unknown", type(err).__name__)
            self.gave_up(job.path, state, err.one_line())

    def _failure(self, stage: str, error: str) -> None:
        if self.metrics is not None:
            self.metrics.failures.labels(stage, error).inc()

    def _guarded_write(self, job: Job, tools: Tools) -> Write:
        """Write only if the source is still the file that was transcribed, and with the
        hash of what is written noted first: the tracked subtitle's (the job writes it
        first), then each one's beside it."""

        def write(target: Path, cues: list[Cue], role: Role) -> None:
            try:
                current = Fingerprint.of(job.path)
            except OSError as err:
                if not faults.is_gone(err):
                    raise faults.from_os_error(err, path=job.path, stage="write") from err
                raise MediaError("the file vanished while it was being transcribed; no "
                                 "subtitle written", path=job.path, stage="write") from err
            if not current.same_content(job.fingerprint):
                raise TransientError("the file changed while it was being transcribed",
                                     path=job.path, stage="write")
            failpoints.hit("before-write", job.path.name)
            sha256 = text_sha256(render(target, cues))
            if role == "beside":
                self.store.writing_beside(job, target, sha256)
            else:
                self.store.writing(job, target, len(cues), sha256)
            with self.store.fenced(job):  # not in place unless the job is still ours
                tools.write(target, cues, role)
            if role == "tracked":
                failpoints.hit("after-write", job.path.name)
        return write

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.outcomes.labels(outcome).inc()

    def _record(self, job: Job, outcome: Outcome) -> None:
        self._finish(job, outcome)
        if outcome.quiet is not None and self.metrics is not None:
            self.metrics.quiet.inc()
            self.metrics.second_look_words.inc(outcome.second_look_words)
        if outcome.quality is None:
            return
        logger.warning("%s: likely a bad subtitle: %s", job.path, outcome.quality)
        self.flagged(job.path, outcome.quality)
        if self.metrics is not None:
            for flag in outcome.flags:
                self.metrics.flagged.labels(flag).inc()

    def _finish(self, job: Job, outcome: Outcome) -> None:
        result = Result(outcome.language, outcome.cue_count, outcome.audio_seconds,
                        outcome.wall_seconds, outcome.output, outcome.language_confidence,
                        outcome.quality, outcome.quiet)
        if outcome.status == "detected":
            self.store.finish(job, "done", result)
            logger.info("%s: language %s (%.0f%%), asked for by a client", job.path,
                        outcome.language, 100 * (outcome.language_confidence or 0))
            return
        self._count({"written": "done", "held": "held"}.get(outcome.status, "skipped"))
        if self.metrics is not None:
            self.metrics.audio_seconds.inc(outcome.audio_seconds)
            if outcome.status == "written":
                self.metrics.realtime.observe(outcome.realtime_factor)
        if outcome.tracks and outcome.status != "written" and job.request is None:
            self.written(job.path)  # the other audio tracks' subtitles are new all the same
        if outcome.status == "held":
            self.store.finish(job, "done", result)
            logger.info("%s: %s, %.1f s audio in %.1f s, %d cues held back, not written",
                        job.path, outcome.language, outcome.audio_seconds,
                        outcome.wall_seconds, outcome.cue_count)
            return
        if outcome.status == "written":
            self.store.finish(job, "done", result)
            beside = "".join(f" and {p.name}" for p in (outcome.translation, outcome.forced,
                                                        *outcome.tracks) if p is not None)
            logger.info("%s: %s%s, %s, %.1f s audio in %.1f s (%.1fx realtime), %d cues, "
                        "%d windows decoded", job.path, outcome.output, beside,
                        outcome.language, outcome.audio_seconds, outcome.wall_seconds,
                        outcome.realtime_factor, outcome.cue_count, outcome.windows_decoded)
            if job.request is None:  # an upload is nothing the media servers know
                self.written(job.path)
            return
        reason = {"no-speech": "no speech", "exists": f"subtitle exists: {outcome.reason}",
                  "skipped": outcome.reason or "skipped"}[outcome.status]
        self.store.finish(job, "skipped", result, reason)
        logger.info("%s: skipped (%s)", job.path, reason)


def _others_of(twin: Job, job: Job, copied: list[Path], formats: Sequence[str]
               ) -> list[tuple[Path, str]]:
    """The other subtitles the twin wrote beside its own (a translation, a forced
    subtitle), in the formats wanted here, as named beside `job`'s file, with their text:
    where they are still there as written (not edited since, nor someone else's now)."""
    found = []
    for name, hashes in sorted(twin.beside.items()):
        source = twin.path.parent / name
        target = renamed(source, twin.path, job.path)
        if source in copied or target is None or source.suffix.lower().lstrip(".") \
                not in formats:
            continue
        try:
            text = source.read_text(encoding="utf-8")
        except OSError:
            continue  # gone since: the copy goes without it
        if text_sha256(text) in hashes:
            found.append((target, text))
    return found


def _previous(job: Job, target: Path) -> Previous:
    """Whether the subtitle at `target` is one written for this job ("ours": it may be
    replaced) or was edited by someone since ("edited": it is kept)."""
    written = job.wrote(target)
    if written is None:
        return None
    found = file_sha256(target)
    if found is None or not written:  # cannot tell: keep it
        return "edited"
    return "ours" if found in written else "edited"


def _skip_marker(path: Path, settings: DaemonSettings) -> Path | None:
    name = settings.transcribe.skip.marker_file
    if not name:
        return None
    for folder in path.parents:
        if (folder / name).exists():
            return folder / name
        if any(folder == root.path for root in settings.watch):
            break
    return None
