"""`subtitled run`: owns the threads, the signals and the reload; the worker loop."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TypeVar

from subtitled import __version__, allocator, config_file, failpoints, faults
from subtitled.config import DaemonSettings, TranscribeSettings
from subtitled.engines import build_transcriber
from subtitled.engines.base import Transcriber
from subtitled.errors import ConfigError, EngineStuck, EnvironmentFault, SubtitledError, shown
from subtitled.eta import Backlog, duration
from subtitled.health import Health
from subtitled.metrics import Metrics
from subtitled.notifications import Notifications
from subtitled.notify import Notifier
from subtitled.pipeline import Tools
from subtitled.service import control
from subtitled.service import requests as service_requests
from subtitled.service.backlog import LengthProber
from subtitled.service.breaker import NO_ANSWER, PROBE_SECONDS, Breaker, Pause
from subtitled.service.intake import Intake
from subtitled.service.requests import PRIORITY_REQUESTS, REQUESTS_FOLDER, Requests
from subtitled.service.worker import Worker
from subtitled.settle import Settler
from subtitled.store import DATABASE_NAME, STORE_ERRORS, JobStore, open_store
from subtitled.subtitles import SUBTITLE_SUFFIXES
from subtitled.watcher import Watcher
from subtitled.web.refresh import Refresher
from subtitled.wiring import real_tools

if TYPE_CHECKING:
    from subtitled.web.page import Now
    from subtitled.web.server import HttpServer

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

STATUS_NAME = "status.json"  # the pauses, for `subtitled status` (see service.breaker)
LOCK_NAME = "subtitled.lock"  # held by the running daemon; holds its pid
_IDLE_SECONDS = 0.5
# Settings a running daemon cannot change: its database and its listener stay where they are.
_RESTART_ONLY = ("state_dir", "state", "http", "media_servers")
_BACKFILL_WAIT_SECONDS = 600.0
_STATUS_EVERY_SECONDS = 5.0
# Without a systemd watchdog, a worker silent this long still counts as stuck.
_DEFAULT_STALL_SECONDS = 600.0


def prepare_state_dir(folder: Path) -> Path:
    """Create the state folder and prove it writable, or say why in one line."""
    probe = folder / ".write-test"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"state directory {folder} is not writable: {err.strerror or err}",
                          stage="state_dir") from err
    return folder / DATABASE_NAME


def lock_state_dir(folder: Path) -> int:
    """An exclusive lock on the state directory, held for the life of the process (the
    returned descriptor): a second daemon on the same state (an admin trying something
    beside the unit) would take the first one's running job for a crashed one and
    transcribe it too. The lock file holds the holder's pid, for the error line."""
    path = folder / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as err:
        raise ConfigError(f"cannot open {path}: {err.strerror or err}",
                          stage="state_dir") from err
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise ConfigError(f"another subtitled (pid {holder}) is running with state "
                              f"directory {folder}; stop it first, or give this one its own "
                              "state_dir", stage="state_dir") from err
        raise ConfigError(f"cannot lock {path}: {err.strerror or err}",
                          stage="state_dir") from err
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def remove_temp_subtitles(media: Path) -> None:
    """Temp files a crash left beside `media` (`Movie.en.srt.tmp`, `Movie.en.vtt.tmp`,
    `Movie.lrc.tmp`...)."""
    try:
        for leftover in media.parent.glob(f"{_glob_escape(media.stem)}.*.tmp"):
            if Path(leftover.stem).suffix.lower() in SUBTITLE_SUFFIXES:
                leftover.unlink(missing_ok=True)
    except OSError as err:
        logger.warning("%s: cannot remove temp files: %s", media, err)


def _root_fault(root: Path) -> EnvironmentFault | None:
    """Why the daemon cannot read `root` or write subtitles into it, with the fix, or None."""
    verb = "read it"
    try:
        with os.scandir(root) as entries:
            next(entries, None)
        verb = "write subtitles into it"
        faults.can_write(root)
    except OSError as err:
        found = faults.from_os_error(err, path=None, stage="watch", where=root)
        return _root_fault_with_fix(f"cannot {verb} ({found.message})", root,
                                    found.kind if isinstance(found, EnvironmentFault)
                                    else "access")
    return None


def _root_fault_with_fix(reason: str, root: Path, kind: str) -> EnvironmentFault:
    return EnvironmentFault(f"{reason}; under systemd, add it to ReadWritePaths= in a "
                            "drop-in (systemctl edit subtitled)", kind=kind, stage="watch",
                            where=root)


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)


class Daemon:
    def __init__(self, config_path: Path, settings: DaemonSettings) -> None:
        self.config_path, self.settings = config_path, settings
        self._stop = threading.Event()
        self._reload = threading.Event()
        self.store: JobStore | None = None
        self.transcriber: Transcriber | None = None
        self.tools: Tools | None = None
        self.watcher: Watcher | None = None
        self.settler = Settler(settings.scan.settle_seconds)
        self._settle_thread: threading.Thread | None = None
        self.notifier = Notifier()
        self.health = Health(self.notifier.watchdog_seconds or _DEFAULT_STALL_SECONDS)
        self._heartbeat_thread: threading.Thread | None = None
        self._status_at = 0.0
        self._gpu_released = False
        self._reload_problem: str | None = None  # the last reload's, until one succeeds
        self.metrics: Metrics | None = None
        self.refresher: Refresher | None = None
        self.requests: Requests | None = None  # Bazarr's, through the HTTP server
        self.http: HttpServer | None = None
        self.notifications = Notifications([], ())  # from the configuration, at start
        self.worker: Worker | None = None
        self.breaker = Breaker([r.path for r in settings.watch],
                               status_file=settings.state_dir / STATUS_NAME,
                               first_backoff=settings.retry.fault_probe_seconds)
        self._state_lock: int | None = None  # released by the kernel when the process ends
        self._admin_paused: control.AdminPause | None = None
        self._backfill_queued = threading.Event()  # see _backfill_ordered
        self._reload_seen_in_job = False  # see _reload_during_job
        self._started = time.monotonic()

    def run(self) -> int:
        # First, so that a SIGTERM while the model loads still ends in a clean exit.
        self._install_signals()
        prepare_state_dir(self.settings.state_dir)
        self._state_lock = lock_state_dir(self.settings.state_dir)
        self.notifications = Notifications.of(self.settings.notifications)
        self.breaker.listener = self._tell_pause
        self.store = open_store(self.settings.state, self.settings.state_dir)
        self.metrics = Metrics(self.store.counts, self._gpu_bytes, self._batch_size,
                               self.breaker.pauses, lambda: self._admin_paused is not None,
                               self.store.hosts, self._backlog, self.store.flagged_count)
        self.requests = Requests(self.store, self.settings.state_dir / REQUESTS_FOLDER)
        self.requests.drop()
        self._open_http()
        self.refresher = Refresher(self.settings.media_servers, self.metrics.refreshes)
        self.refresher.start()
        try:
            for path in self.store.finish_written():
                logger.warning("%s: its subtitle was written just before the process "
                               "stopped; recorded as done", path)
            for path in self.store.recover(self.settings.retry.max_attempts):
                remove_temp_subtitles(path)
                job = self.store.get(path)
                if job is not None and job.state == "dead":
                    logger.error("%s: dead-lettered: %s", path, job.last_error)
                    self._gave_up(path, "dead", job.last_error or "dead")
                    continue
                logger.warning("%s: was being worked on when the process stopped; requeued",
                               path)
        except STORE_ERRORS as err:  # at start: one line, and systemd starts it again
            raise self.store.unreachable(err) from err
        with self.notifier.extending_timeout(
                f"loading model {self.settings.transcribe.model.name}"):
            self._load_model(self.settings.transcribe)
        if self._stop.is_set():
            self._shutdown()
            return 0
        self._start_watching()  # in the background: READY=1 says the model is loaded
        LengthProber(self.store, self._stop).start()
        self.notifier.ready(self._idle_status())
        self._check_roots()
        self._start_heartbeat()
        try:
            self._loop()
        except EngineStuck as err:
            logger.critical("%s; ending the process so that a new one gets a fresh GPU "
                            "context (exit status %d)", err.one_line(), err.exit_code)
            self.notifier.status(f"restarting: {err.message}")
            raise
        except Exception as err:
            self.notifier.watchdog_trigger(f"{type(err).__name__}: {err}")
            raise
        finally:
            self._shutdown()
        return 0

    def _loop(self) -> None:
        assert self.store is not None
        worker = self.worker = Worker(
            self.store, self.health, self.notifier, self.metrics, self._stop,
            self.settler.settle_seconds, self.breaker, lambda: self._admin_pause() is not None,
            self._reload_during_job, self._written, self._gave_up, self._flagged)
        idle_since: float | None = None
        while not self._stop.is_set():
            self.health.beat("idle")
            if self._reload.is_set():
                self._do_reload()
            self._probe_pauses()
            job = None
            if worker.owed and not any(p.kind == "state" for p in self.breaker.pauses()):
                self._give_back_owed(worker)  # whatever else is paused
            if self._admin_pause() is None and not self.breaker.paused_everything() and \
                    self._backfill_ordered():
                job = self._store_call(partial(
                    self.store.claim, self.breaker.paused_folders(),
                    roots=[(self.settings.state_dir / REQUESTS_FOLDER, PRIORITY_REQUESTS),
                           *((r.path, r.priority) for r in self.settings.watch)],
                    newest_first=self.settings.scan.backfill == "newest-first",
                    max_attempts=self.settings.retry.max_attempts,
                    dead=lambda path, why: self._gave_up(path, "dead", why)))
            if job is None:
                idle_since = self._idle(idle_since)
                self._report_idle()
                self._stop.wait(_IDLE_SECONDS)
                continue
            assert self.tools is not None
            worker.settle_seconds = self.settler.settle_seconds
            try:
                worker.work(job, self.settings, self.tools)
            except STORE_ERRORS as err:  # the job could not be recorded: put back later
                worker.owed.append(job)
                self._state_failed(err)
            idle_since = None

    def _give_back_owed(self, worker: Worker) -> None:
        """The jobs let go while the job database failed (a lease that could not be
        renewed, an end that could not be recorded) get their attempts back before the
        next claim, wherever they went meanwhile: the outage was not the files' failure.
        A failure opens the state pause, which holds the claims back."""
        assert self.store is not None
        while worker.owed:
            job = worker.owed[0]
            try:
                done = self.store.give_back(job)
            except STORE_ERRORS as err:
                self._state_failed(err)
                return
            worker.owed.pop(0)
            if done is not None:
                # (A dead letter taken back was announced as one: this says otherwise.)
                logger.log(logging.WARNING if "dead" in done else logging.INFO,
                           "%s: let go while the job database failed (%s): its attempt is "
                           "given back", job.path, done)

    def _written(self, path: Path) -> None:
        if self.refresher is not None:
            self.refresher.written(path)
        self.notifications.send("done", f"{self._host()}: subtitle written", str(path))

    def _gave_up(self, path: Path, state: str, why: str) -> None:
        self.notifications.send("failed", f"{self._host()}: gave up on {path.name}",
                                f"{why} ({state}; `subtitled retry` queues it again)")

    def _flagged(self, path: Path, why: str) -> None:
        self.notifications.send("flagged", f"{self._host()}: likely a bad subtitle for "
                                f"{path.name}", why)

    def _tell_pause(self, event: str, pause: Pause) -> None:
        where = "" if pause.scope == "all" else f" {shown(pause.scope)}"
        if event == "paused":
            body = f"{pause.cause}. The files there wait and lose no attempt; the daemon " \
                   "checks again by itself and resumes."
        else:
            body = f"the {pause.kind} fault has cleared after " \
                   f"{duration(time.time() - pause.since)}; the waiting files run again"
        self.notifications.send(event, f"{self._host()}: {event}{where}", body)

    def _host(self) -> str:
        return f"subtitled on {self._host_name()}"

    def _host_name(self) -> str:
        return self.settings.state.host_name or socket.gethostname()

    def _backfill_ordered(self) -> bool:
        """newest-first means nothing until the library found at start is in the queue:
        claims wait for the first scan to be queued (at most _BACKFILL_WAIT_SECONDS, should
        the scan never end)."""
        return self.settings.scan.backfill != "newest-first" or \
            self._backfill_queued.is_set() or \
            time.monotonic() - self._started > _BACKFILL_WAIT_SECONDS

    def _store_call(self, call: Callable[[], _T]) -> _T | None:
        """Run `call`; a failing job store (a full or broken state directory) pauses
        everything instead of ending the daemon."""
        try:
            return call()
        except STORE_ERRORS as err:
            self._state_failed(err)
            return None

    def _state_failed(self, err: Exception) -> None:
        assert self.store is not None
        if self.store.shared:  # a server: it answers again, or not
            fault = EnvironmentFault(
                f"the job database {self.store.path} fails: {str(err).strip() or err!r}",
                kind="state", stage="state", check=self._database_answers)
        else:
            fault = EnvironmentFault(f"the job database fails: {err}", kind="state",
                                     stage="state_dir", where=self.settings.state_dir)
        if self.breaker.fault(fault) is not None:
            logger.error("%s; nothing is claimed until it works again",
                         self.breaker.describe())
            self.notifier.status(self.breaker.describe())

    def _database_answers(self) -> str | None:
        assert self.store is not None
        return None if self.store.writable() else "no answer"

    def _probe_pauses(self) -> None:
        """Probe the pauses that are due; resume what cleared."""
        if not self.breaker.pauses():
            return
        assert self.store is not None
        for pause in self.breaker.probe_due():
            folder = None if pause.scope == "all" else Path(pause.scope)
            woken = self._store_call(partial(self.store.wake, folder)) or 0
            logger.warning("resumed%s after %.0f s: the %s fault has cleared; %d waiting "
                           "file%s run again", "" if folder is None else f" {shown(folder)}",
                           time.time() - pause.since, pause.kind, woken, "s" * (woken != 1))
            self.notifier.status(self._idle_status())

    def _check_roots(self) -> None:
        """Every watched root readable and writable, or paused with the fix in one line;
        the other roots keep working. Each check has PROBE_SECONDS: a hard-mounted share
        that hangs must not hang the daemon."""
        self.breaker.set_roots([r.path for r in self.settings.watch])
        self.breaker.first_backoff = self.settings.retry.fault_probe_seconds
        for root in self.settings.watch:
            late = _root_fault_with_fix(NO_ANSWER, root.path, "storage")
            fault = faults.within(PROBE_SECONDS, partial(_root_fault, root.path), late)
            if fault is not None and self.breaker.fault(fault, at_once=True) is not None:
                logger.error("%s: %s; its files wait", root.path, fault.message)

    def _idle(self, since: float | None) -> float:
        """Between jobs: host memory goes back at once when the queue runs dry (the next
        file may be hours away), GPU memory after `gpu_idle_release_seconds`."""
        now = time.monotonic()
        if since is None:
            allocator.release_freed_memory()
            since, self._gpu_released = now, False
        wait = self.settings.transcribe.model.gpu_idle_release_seconds
        if self.transcriber is not None and wait > 0 and now - since >= wait and \
                not self._gpu_released:
            self.transcriber.idle()
            self._gpu_released = True
        return since

    def _report_idle(self) -> None:
        if time.monotonic() - self._status_at > _STATUS_EVERY_SECONDS:
            self._status_at = time.monotonic()
            self.notifier.status(self._idle_status())

    def _open_http(self) -> None:
        options = self.settings.http
        if not options.enabled or self.metrics is None:
            return
        # Here, not at the top: the ASGI stack is loaded only when the server is on.
        from subtitled.paths import local_path
        from subtitled.web.access import Access
        from subtitled.web.app import IDLE_CLIENT_SECONDS, Services, build_app
        from subtitled.web.asr import AsrServices
        from subtitled.web.media_servers import ItemPaths
        from subtitled.web.page import PageServices
        from subtitled.web.server import HttpServer

        metrics, queue, store = self.metrics, self.requests, self.store
        assert store is not None and queue is not None
        intake = Intake(lambda: self.settings, self.settler, lambda: self.store)
        requests = AsrServices(
            folder=queue.folder, submit=queue.submit, job=store.get,
            finished=queue.answered, stopping=self._stop.is_set,
            video=lambda sent: intake.file(Path(local_path(sent, options.path_map))),
            subtitle_of=queue.subtitle_of, version=f"subtitled {__version__}",
            idle_client_seconds=IDLE_CLIENT_SECONDS,
            cannot=lambda work: service_requests.cannot(self.transcriber, work),
            held=self._why_held)
        app = build_app(Services(self._health, metrics.exposition, intake.offer,
                                 intake.moved, Access.of(options), options.path_map,
                                 ItemPaths(self.settings.media_servers), requests,
                                 PageServices(lambda: store, self._page_now,
                                              partial(self._set_paused, True),
                                              partial(self._set_paused, False),
                                              self._host_name())))
        try:
            self.http = HttpServer(options.host, options.port, app)
        except OSError as err:
            raise ConfigError(f"cannot listen on {options.host}:{options.port}: "
                              f"{err.strerror or err}", stage="http") from err
        self.http.start()
        logger.info("HTTP on http://%s:%d/ (health, metrics, webhooks)", options.host,
                    self.http.port)

    def _page_now(self) -> Now:
        from subtitled.web.page import Now

        admin = control.paused(self.settings.state_dir)
        held = ([admin.describe()] if admin is not None else []) + \
            [pause.describe(time.time()) for pause in self.breaker.pauses()]
        degraded = list(self.watcher.degraded) if self.watcher is not None else []
        if self._reload_problem:
            degraded.append(f"reload failed: {self._reload_problem}")
        worker = self.worker

        def phase(job_id: int) -> tuple[str, str | None] | None:
            current = worker.phase if worker is not None else None
            return current[1:] if current is not None and current[0] == job_id else None

        return Now(held, degraded, phase, admin is not None)

    def _set_paused(self, held: bool) -> str:
        """`subtitled pause` or `resume`, from the page."""
        try:
            return control.set_paused(self.settings.state_dir, held)
        except OSError as err:
            return f"cannot {'pause' if held else 'resume'}: {err.strerror or err}"

    def _why_held(self) -> str | None:
        """Why no job is claimed now, whatever its folder, or None."""
        if self._admin_paused is not None:
            return self._admin_paused.describe()
        if self.breaker.paused_everything():
            return "; ".join(p.describe(time.time()) for p in self.breaker.pauses())
        return None

    def _gpu_bytes(self) -> float | None:
        held = self.transcriber.gpu_bytes() if self.transcriber is not None else None
        return None if held is None else float(held)

    def _backlog(self) -> Backlog | None:
        """The backlog and its ETA; None while the job store cannot say."""
        try:
            return self.store.backlog() if self.store is not None else None
        except STORE_ERRORS:
            return None

    def _batch_size(self) -> float | None:
        return None if self.transcriber is None else float(self.transcriber.batch_size)

    def _problems(self) -> list[str]:
        """The liveness checks of the heartbeat: what a restart could cure. A pause is not
        among them (a new process would meet the same full disk)."""
        if self.store is None or self.watcher is None:
            return ["starting"]
        return self.health.problems(observers_alive=self.watcher.alive(),
                                    database_writable=self.store.writable()
                                    or self.breaker.paused_everything())

    def _health(self) -> list[str]:
        """What /health reports: the liveness problems and every pause, with its cause."""
        return self._problems() + [p.describe(time.time()) for p in self.breaker.pauses()]

    def _admin_pause(self) -> control.AdminPause | None:
        """`subtitled pause` in force; said in the log when it starts and ends."""
        found = control.paused(self.settings.state_dir)
        if (found is None) != (self._admin_paused is None):
            if found is not None:
                logger.info("%s", found.describe())
            else:
                logger.info("resumed (`subtitled resume`)")
        self._admin_paused = found
        return found

    def _idle_status(self) -> str:
        assert self.store is not None
        admin = self._admin_paused
        paused = admin.describe() if admin is not None else self.breaker.describe()
        backlog = self._backlog()
        queued = "queue unreadable" if backlog is None else f"{backlog.files} queued"
        if backlog is not None and backlog.files:
            queued += f", {backlog.describe()}"
        degraded = f"; degraded: {'; '.join(self.watcher.degraded)}" \
            if self.watcher is not None and self.watcher.degraded else ""
        if self.watcher is not None and not self.watcher.watching.is_set():
            degraded = f"; setting up watches on {len(self.settings.watch)} folder(s)" \
                f"{degraded}"
        reload = f"; reload failed: {self._reload_problem}" if self._reload_problem else ""
        return f"{paused or 'idle'}, {queued}{degraded}{reload}"

    def _start_heartbeat(self) -> None:
        interval = self.notifier.watchdog_seconds
        if interval is None:
            return
        # sd_watchdog_enabled(3) asks for half the interval; a third leaves room for jitter.
        self._heartbeat_thread = threading.Thread(target=self._heartbeat, args=(interval / 3,),
                                                  name="watchdog", daemon=True)
        self._heartbeat_thread.start()

    def _heartbeat(self, every_seconds: float) -> None:
        """WATCHDOG=1 only while the service is really healthy; silence lets systemd act."""
        reported: list[str] = []
        while not self._stop.wait(every_seconds):
            problems = self._problems()
            if not problems:
                self.notifier.watchdog()
            elif problems != reported:
                logger.error("unhealthy, withholding the watchdog ping: %s", "; ".join(problems))
                self.notifier.status(f"degraded: {'; '.join(problems)}")
            reported = problems

    def stop(self) -> None:
        self._stop.set()

    def _install_signals(self) -> None:
        def on_stop(signum: int, frame: FrameType | None) -> None:
            del frame
            logger.info("signal %d: stopping", signum)
            self.notifier.stopping()
            self._stop.set()

        def on_reload(signum: int, frame: FrameType | None) -> None:
            del signum, frame
            self._reload_seen_in_job = False  # a new request: look at the file again
            self._reload.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_reload)

    def _load_model(self, settings: TranscribeSettings) -> None:
        self._use_model(self._build_model(settings), settings)

    def _build_model(self, settings: TranscribeSettings) -> Transcriber:
        started = time.monotonic()
        failpoints.delay("slow-load", 5.0)
        transcriber = build_transcriber(settings.model)
        if self.metrics is not None:
            self.metrics.model_load_seconds.set(time.monotonic() - started)
        return transcriber

    def _use_model(self, transcriber: Transcriber, settings: TranscribeSettings) -> None:
        self.transcriber = transcriber
        self.tools = real_tools(settings, transcriber)

    def _start_watching(self) -> None:
        self.settler.settle_seconds = self.settings.scan.settle_seconds
        since = control.backfill_since(self.settings.state_dir) \
            if self.settings.scan.backfill == "none" else None
        self.watcher = Watcher(self.settings.watch, self.settings.scan, self.settler,
                               self._gone, backfill_since=since)
        self.watcher.start()
        if self._settle_thread is None:
            self._settle_thread = threading.Thread(target=self._settle_loop, name="settle",
                                                   daemon=True)
            self._settle_thread.start()

    def _settle_loop(self) -> None:
        assert self.store is not None
        while not self._stop.wait(_IDLE_SECONDS):
            scanned = self.watcher is not None and self.watcher.scanned.is_set()
            due = self.settler.due()
            try:
                for path in self.store.enqueue_many(due):
                    logger.debug("%s: queued", path)
            except STORE_ERRORS as err:
                self._state_failed(err)
                # Noted again, queued once the store works (what was queued stays so).
                for path, _, priority in due:
                    self.settler.note(path, priority)
                self._stop.wait(self.breaker.first_backoff)
                continue
            if scanned:  # everything the first scan found and could settle is queued
                self._backfill_queued.set()

    def _gone(self, path: Path) -> None:
        lost = self.breaker.root_lost(path)
        if lost is not None:  # an unmount looks like a delete of everything under it
            logger.warning("%s: seen as deleted, but %s; its jobs are kept", path, lost)
            return
        if self.store is None:
            return
        dropped: int | None = self._store_call(partial(self.store.forget_queued, path))
        if dropped:
            logger.info("%s: moved away or deleted; dropped from the queue", path)

    def _reload_during_job(self) -> None:
        """A reload asked for while a file is transcribed (which can take hours): watched
        folders and scan settings apply at once; the rest (a model, how files are
        transcribed) waits for the file to end, when the whole reload runs."""
        if not self._reload.is_set() or self._reload_seen_in_job:
            return
        self._reload_seen_in_job = True
        try:
            new = config_file.load(self.config_path)
        except ConfigError:
            return  # the whole reload, after this file, says what is wrong
        if self._apply_watch(replace(self.settings, watch=new.watch, scan=new.scan)):
            logger.info("reload: the watched folders and scan settings apply now; the rest "
                        "of the configuration when the current file is done")

    def _apply_watch(self, new: DaemonSettings) -> bool:
        """Take `new` as the settings, watching its folders (the observers started again
        when they or the scan settings changed) and checking its roots; True when the
        watch changed."""
        old, self.settings = self.settings, new
        changed = (new.watch, new.scan) != (old.watch, old.scan)
        if changed and self.watcher is not None:
            self.watcher.stop()
            self._start_watching()
        self._check_roots()
        return changed

    def _do_reload(self) -> None:
        self._reload.clear()
        self._reload_seen_in_job = False
        self.notifier.reloading()
        try:
            self._apply_new_config()
        finally:
            self.notifier.ready(self._idle_status())

    def _apply_new_config(self) -> None:
        """The new configuration, all of it or nothing: a model that fails to load (a
        mistyped name, no memory beside the running one) leaves the running configuration
        and model in place, and says so in the log and in systemd's status line."""
        try:
            new = config_file.load(self.config_path)
            notifications = Notifications.of(new.notifications)
        except ConfigError as err:
            problems = err.message.splitlines()
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            self._reload_failed(f"{self.config_path}: {problems[0]}{more}",
                                "\n".join(problems[1:]))
            return
        old = self.settings
        for name in _RESTART_ONLY:
            if getattr(new, name) != getattr(old, name):
                logger.warning("reload: %s changed; it takes effect at the next restart", name)
                new = replace(new, **{name: getattr(old, name)})
        transcriber = self.transcriber
        if new.transcribe.model != old.transcribe.model or transcriber is None:
            logger.info("model settings changed: loading %s", new.transcribe.model.name)
            try:
                transcriber = self._build_model(new.transcribe)
            except Exception as err:  # noqa: BLE001 - whatever it was, the old model stays
                cause = err.one_line() if isinstance(err, SubtitledError) else \
                    f"{type(err).__name__}: {err}"
                self._reload_failed(f"model {new.transcribe.model.name} did not load: "
                                    f"{cause}")
                notifications.close()
                return
        self.notifications.close()
        self.notifications = notifications
        self._reload_problem = None
        self._use_model(transcriber, new.transcribe)
        self._apply_watch(new)
        if self.breaker.lift("config") and self.store is not None:
            self._store_call(self.store.wake)  # the files that waited for it, now
        logger.info("configuration reloaded")

    def _reload_failed(self, why: str, details: str = "") -> None:
        logger.error("reload failed, keeping the running configuration and model: %s%s", why,
                     f"\n{details}" if details else "")
        self._reload_problem = why

    def _shutdown(self) -> None:
        self._stop.set()
        if self.watcher is not None:
            self.watcher.stop()
        for thread in (self._settle_thread, self._heartbeat_thread):
            if thread is not None:
                thread.join(timeout=10)
        if self.http is not None:
            self.http.stop()
        if self.refresher is not None:
            self.refresher.stop()
        # (What is still owed is not given back here: a call to a database that does not
        # answer could outlast the stop. The next start counts it, as a crash.)
        self.notifications.close()
        if self.store is not None:
            self.store.close()
        logger.info("stopped")
