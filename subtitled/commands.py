"""The commands besides the daemon: one-shot `transcribe`, and `status`/`retry`, which read
the daemon's job store while it runs."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from subtitled.config import DaemonSettings, TranscribeSettings
from subtitled.engines import build_transcriber
from subtitled.errors import ConfigError, EngineStuck, SubtitledError, shown
from subtitled.pipeline import Hooks, Outcome, process_media_file
from subtitled.progress import ProgressBar
from subtitled.store import DATABASE_NAME, STORE_ERRORS, JobStore, SqliteStore, open_store
from subtitled.wiring import real_tools

logger = logging.getLogger(__name__)


def describe(outcome: Outcome) -> str:
    """The one result line for a file."""
    source = shown(outcome.path)
    # From the other audio tracks, whatever became of the main one.
    tracks = "".join(f"; {shown(p)} from another audio track" for p in outcome.tracks)
    if outcome.quiet:
        tracks = f"; quiet: {outcome.quiet}, {outcome.second_look_words} words found by a " \
                 f"second look{tracks}"
    if outcome.status == "exists":
        return f"{source}: {shown(outcome.output or '')} already exists (--force replaces " \
               f"it){tracks}"
    if outcome.status == "skipped":
        return f"{source}: skipped, {shown(outcome.reason or '')}{tracks}"
    flag = f"; likely bad: {outcome.quality}" if outcome.quality else ""
    if outcome.status == "no-speech":
        return f"{source}: no speech found, no subtitle written " \
               f"({outcome.audio_seconds:.1f} s audio{flag}){tracks}"
    confidence = f" {outcome.language_confidence:.0%}" if outcome.language_confidence else ""
    written = "held back, not written (quality.gate: hold)" if outcome.status == "held" \
        else " + ".join(shown(p) for p in (outcome.output, outcome.translation, outcome.forced)
                        if p is not None)
    return (f"{source} -> {written} ({outcome.language}{confidence}, "
            f"{outcome.cue_count} cues, {outcome.audio_seconds:.1f} s audio in "
            f"{outcome.wall_seconds:.1f} s, {outcome.realtime_factor:.1f}x realtime{flag})"
            f"{tracks}")


def media_files(paths: Sequence[Path]) -> list[Path]:
    """The paths, each folder replaced by the media files in it and its subfolders (by the
    daemon's default extensions and ignore rules, in name order); a folder without any is
    said on stderr."""
    from subtitled.config import ScanSettings
    from subtitled.settle import is_candidate
    from subtitled.watcher import walk

    found: list[Path] = []
    for path in paths:
        if not path.is_dir():
            found.append(path)
            continue
        inside = sorted(p for p in walk(path, True, threading.Event())
                        if is_candidate(p, ScanSettings()))
        if not inside:
            print(f"subtitled: {shown(path)}: no media files in this folder", file=sys.stderr)
        found += inside
    return found


def transcribe(settings: TranscribeSettings, paths: Sequence[Path]) -> int:
    """Returns the exit status: 0 when every file succeeded or was skipped, else 1; 75 at
    once when the GPU is in a sticky error state (no later file could succeed)."""
    paths = media_files(paths)
    if not paths:
        return 1  # only folders without media: nothing was done, and no model is loaded
    transcriber = build_transcriber(settings.model)
    tools = real_tools(settings, transcriber)
    failures = 0
    for path in paths:
        bar = ProgressBar(sys.stderr, path.name) if sys.stderr.isatty() else None
        try:
            outcome = process_media_file(path, settings, tools,
                                         Hooks(progress=bar) if bar is not None else None)
        except EngineStuck as err:  # every later file would fail the same way
            _clear(bar)
            print(f"subtitled: error: {err.one_line()}", file=sys.stderr)
            return err.exit_code
        except SubtitledError as err:
            failures += 1
            _clear(bar)
            print(f"subtitled: error: {err.one_line()}", file=sys.stderr)
            continue
        except Exception:  # a bug must not cost the user the other files
            failures += 1
            _clear(bar)
            logger.exception("%s: unexpected failure", path)
            continue
        _clear(bar)
        logger.info("%s", describe(outcome))
        print(describe(outcome), flush=True)
    return 1 if failures else 0


def _clear(bar: ProgressBar | None) -> None:
    if bar is not None:
        bar.clear()


@contextmanager
def _job_store(settings: DaemonSettings, *, read_only: bool) -> Iterator[JobStore]:
    """The daemon's job database, closed after; a problem with it (none yet, no permission
    to read or write it, a server that does not answer) in one line."""
    if settings.state.database is not None:  # PostgreSQL: its own one-line errors
        store = open_store(settings.state, settings.state_dir, read_only=read_only)
        try:
            yield store
        except STORE_ERRORS as err:
            raise store.unreachable(err) from err
        finally:
            store.close()
        return
    database = settings.state_dir / DATABASE_NAME

    def refused(err: Exception) -> ConfigError:
        cause = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        return ConfigError(f"cannot {'read' if read_only else 'write'} the job database "
                           f"{database} ({cause}): run this as the daemon's user, e.g. "
                           "`sudo -u subtitled subtitled ...`", stage="state_dir")

    try:
        database.stat()
        store = SqliteStore(database, read_only=read_only)
    except FileNotFoundError:
        raise ConfigError(f"no job database at {database}: has `subtitled run` started with "
                          "this configuration?", stage="state_dir") from None
    except OSError as err:
        raise refused(err) from err
    except STORE_ERRORS as err:
        raise refused(err) from err
    try:
        yield store
    except STORE_ERRORS as err:
        raise refused(err) from err
    finally:
        store.close()


def migrate_db(settings: DaemonSettings, to: str | None = None) -> int:
    """Copy this host's SQLite store into the PostgreSQL store at `to` (by default the one
    `state.database` names; empty, the daemon stopped), so that done files stay done on
    the shared store."""
    from subtitled.config import database_url
    from subtitled.service.daemon import lock_state_dir
    from subtitled.store.postgres import PostgresStore

    url = to or settings.state.database
    if url is None:
        raise ConfigError("migrate-db copies the SQLite store into PostgreSQL: give --to "
                          "postgresql://… or set state.database", stage="options")
    try:  # the same check as the configuration's
        database_url(url)
    except ValueError as err:
        raise ConfigError(f"--to: {err}", stage="options") from None
    lock = lock_state_dir(settings.state_dir)  # refused while the daemon runs
    try:
        # Writable: an older release's database is brought up to this schema first.
        with _job_store(replace(settings, state=replace(settings.state, database=None)),
                        read_only=False) as source:
            assert isinstance(source, SqliteStore)
            # What the last run left running is settled as its own start would have.
            source.finish_written()
            source.recover(settings.retry.max_attempts)
            jobs, checkpoints = source.dump()
        target = PostgresStore(url, host=settings.state.host_name,
                               lease_seconds=settings.state.lease_seconds,
                               path_map=settings.state.path_map)
        try:
            copied = target.adopt(jobs, checkpoints)
            counts = target.counts()
        finally:
            target.close()
    finally:
        os.close(lock)
    print(f"{copied} jobs copied into {target.path}: "
          + " · ".join(f"{state} {count}" for state, count in counts.items()))
    return 0


def status(settings: DaemonSettings) -> int:
    with _job_store(settings, read_only=True) as store:
        counts = store.counts()
        print(" · ".join(f"{state} {count}" for state, count in counts.items()))
        from subtitled.service import control
        from subtitled.service.breaker import read_status
        from subtitled.service.daemon import STATUS_NAME

        admin = control.paused(settings.state_dir)
        if admin is not None:
            print(admin.describe())
        now = time.time()
        for pause in read_status(settings.state_dir / STATUS_NAME):
            since = time.strftime("%Y-%m-%d %H:%M", time.localtime(pause.since))
            print(f"{pause.describe(now)} (since {since})")
        backlog = store.backlog()
        if backlog.files or backlog.running_seconds:
            print(backlog.describe())
        hosts = store.hosts()
        for host in hosts:
            lease = f"expires in {host.expires_in:.0f} s" if host.expires_in >= 0 else \
                f"EXPIRED {-host.expires_in:.0f} s ago (another host will take it)"
            print(f"host {host.host}: {host.running} running, lease renewed "
                  f"{host.renewed_ago:.0f} s ago, {lease}")
        for job in store.in_state("running", limit=len(hosts) or 1):
            done, total = store.progress(job)
            share = f", {done / total:.0%}" if done is not None and total else ""
            seconds = f"{done:.0f}/{total:.0f} s" if done is not None and total else "starting"
            on = f" on {job.host}" if hosts else ""
            print(f"running{on}: {shown(job.path)} ({seconds}{share}, attempt {job.attempts})")
        flagged = store.flagged(limit=5)
        if flagged:
            print(f"likely bad subtitles ({store.flagged_count()}, the last {len(flagged)}):")
            for job in flagged:
                print(f"  {shown(job.path)}: {job.quality}")
        failures = store.in_state("failed", limit=5) + store.in_state("dead", limit=5)
        if failures:
            print("recent failures:")
            for job in sorted(failures, key=lambda j: -j.updated)[:5]:
                print(f"  {job.state}: {job.last_error} [{job.error_class}]")
    return 0


def retry(settings: DaemonSettings, path: Path | None, force: bool = False) -> int:
    with _job_store(settings, read_only=False) as store:
        count = store.retry(path.absolute() if path else None, force=force)
        if path is not None and not count:
            job = store.get(path.absolute())
            why = "it is being transcribed now" if job is not None else \
                "the daemon has not seen it (is it under a watched folder?)"
            print(f"subtitled: {shown(path)}: not queued again: {why}", file=sys.stderr)
    print(f"queued again: {count}")
    return 0 if count or path is None else 1


def pause(settings: DaemonSettings, held: bool) -> int:
    """`subtitled pause` (`held`): the daemon gives up the batch in hand (the file resumes
    from its checkpoint) and claims nothing, across restarts; `subtitled resume` lifts it."""
    from subtitled.service import control

    try:
        said = control.set_paused(settings.state_dir, held)
    except OSError as err:
        raise ConfigError(f"cannot {'pause' if held else 'resume'} in {settings.state_dir}: "
                          f"{err.strerror or err}; run this as the daemon's user",
                          stage="state_dir") from err
    print(said)
    return 0
