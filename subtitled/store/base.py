"""The job store's rules, in SQL that SQLite and PostgreSQL both run: one row per media
file, claimed in a transaction that also counts the attempt, so that a file that kills
the process every time runs out of attempts instead of crash-looping the service.
Checkpoints of decoded words let a long file resume after a stop or crash, and a crash
after checkpointed progress is not counted: a film killed while decoding fine never dies.

A claim is a lease: it carries a token (`lease`), and every write of the job's outcome is
fenced by it, so a process that lost its claim (put back, or, in a shared store, expired
and taken by another host) writes nothing. The databases differ in what the subclasses
provide: the connection and its transactions, how a path is stored, and the clock."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import astuple
from pathlib import Path
from typing import Any, Literal, Protocol

from subtitled import failpoints
from subtitled.config import PathMapping
from subtitled.errors import ConfigError, EnvironmentFault
from subtitled.eta import RECENT_FILES, Backlog
from subtitled.paths import local_path, remote_path
from subtitled.store.model import (
    PRIORITY_NEW,
    STATES,
    Fingerprint,
    HostClaims,
    Job,
    LeaseLost,
    Result,
    State,
    file_sha256,
)

# Files queued per transaction: one fsync each, and the worker's writes wait no longer.
_ENQUEUE_BATCH = 500
logger = logging.getLogger(__name__)

# What a job starts from again when its file changed or someone asked for a retry; and a
# `force` asked for by `retry --force` goes with it (retry sets it as asked).
_RESTART = "first_failure = NULL, failures = 0, sticky_exits = 0, kept_lease = NULL"
_FRESH = f"{_RESTART}, force = 0"
# A changed file's length and progress are its old content's: probed again (the backlog).
_UNMEASURED = "progress_seconds = NULL, total_seconds = NULL"
# Finished, and judged likely bad (subtitled.quality); the partial index jobs_flagged.
_FLAGGED = "quality IS NOT NULL AND state IN ('done', 'skipped')"
# How far a job row's checkpoints reach at the row's own fingerprint (0 when none).
_REACHED = ("COALESCE((SELECT c.decoded_seconds FROM checkpoints c WHERE c.job_id = jobs.id"
            " AND c.size = jobs.size AND c.mtime_ns = jobs.mtime_ns AND c.inode = jobs.inode"
            " ORDER BY c.seq DESC LIMIT 1), 0)")
# An attempt given back (never below 0).
_REFUNDED = "attempts - (CASE WHEN attempts > 0 THEN 1 ELSE 0 END)"


def check_version(store: object, version: int, known: int, *, read_only: bool,
                  newer_fix: str, stage: str) -> None:
    """Refuse a database of a newer schema than this release `known`s, and (to read it
    alone) one of an older schema, which only the daemon brings up to date."""
    if version > known:
        raise ConfigError(f"{store} was made by a newer release of subtitled (schema "
                          f"{version}; this one knows up to {known}): {newer_fix}",
                          stage=stage)
    if read_only and version < known:
        raise ConfigError(f"{store} is at schema {version}, this release reads {known}: "
                          "start the daemon once to bring it up to date", stage=stage)


class Db(Protocol):
    """A connection inside a transaction: `?` placeholders, rows by index or column name."""

    def execute(self, sql: str, args: Sequence[Any] = (), /) -> Any: ...


Where = tuple[str, tuple[Any, ...]]  # an SQL condition and its arguments


class JobStore:
    """The store's operations. `shared` stores (PostgreSQL) are used by several hosts at
    once: leases expire there, and each host recovers only its own claims at start."""

    shared = False
    host: str = ""
    lease_seconds = 0.0  # how long a claim lasts unrenewed (a shared store)
    path: object  # what the error lines name: a file, or the server
    # How this host's paths map to the library's names in the store: hosts that mount
    # the library at different folders (a shared store) still name each file alike.
    path_map: tuple[PathMapping, ...] = ()
    _UNINDEXED = ""  # prefix of a column compared without its index, where that plans better
    # Row locks, where the database has them (a SQLite transaction locks the whole file);
    # a claim passes over rows that another host's transaction holds.
    _FOR_UPDATE = ""
    _SKIP_LOCKED = ""

    # -- what a database provides

    def _transaction(self) -> AbstractContextManager[Db]:
        raise NotImplementedError

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    def _now(self, db: Db) -> float:
        """Seconds since the epoch, by the clock that all writers share."""
        return time.time()

    def _encode(self, path: Path) -> str | bytes:
        """How a (canonical) path is stored."""
        raise NotImplementedError

    def _key(self, path: Path) -> str | bytes:
        """A path of this host, as the store keeps it: its canonical name (`path_map`),
        encoded."""
        return self._encode(self._canonical(path))

    def _canonical(self, path: Path) -> Path:
        return Path(remote_path(str(path), self.path_map)) if self.path_map else path

    def _local(self, stored: str | bytes) -> Path:
        """A stored path, as this host names it."""
        text = os.fsdecode(stored)
        return Path(local_path(text, self.path_map) if self.path_map else text)

    def _local_text(self, stored: str | bytes | None) -> str | None:
        return None if stored is None else str(self._local(stored))

    def _one_bulk_writer(self, db: Db) -> None:
        """Make a write of many rows (a batch of enqueues, a folder forgotten, a retry of
        every failure) wait for any other host's: hosts scanning one library lock the
        same rows, in orders that could otherwise deadlock."""

    def _range_keys(self, low: bytes, high: bytes) -> list[tuple[Any, Any]]:
        """The stored forms of the range of paths from `low` to `high` (exclusive)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def writable(self) -> bool:
        """Can a write transaction start? (For the health checks.)"""
        raise NotImplementedError

    def unreachable(self, err: Exception) -> EnvironmentFault:
        """The database failing (a server or connection gone), as one line."""
        cause = " ".join(str(err).split()) or type(err).__name__
        return EnvironmentFault(f"the job database {self.path} cannot be used: {cause}",
                                kind="state", stage="state")

    def hosts(self) -> list[HostClaims]:
        """The hosts holding claims now, in a shared store (empty in a store of one)."""
        if not self.shared:
            return []
        with self._transaction() as db:
            now = self._now(db)
            rows = db.execute(
                "SELECT host, COUNT(*) AS n, MAX(lease_renewed) AS renewed, MIN(lease_expires)"
                " AS expires FROM jobs WHERE state = 'running' GROUP BY host ORDER BY host"
            ).fetchall()
        return [HostClaims(row["host"] or "?", int(row["n"]), now - (row["renewed"] or now),
                           (row["expires"] or now) - now) for row in rows]

    # -- paths in SQL

    def _inside(self, path: Path) -> Where:
        """SQL for "the job's path is `path` or lies under it": ranges of the path index,
        so that a folder deleted from a library of 100,000 files costs a lookup, not a
        scan. A path under `path` sorts between `path/` and `path0` ('0' is the character
        after '/'), compared byte by byte."""
        path = self._canonical(path)
        low = os.fsencode(path).rstrip(b"/") + b"/"
        high = low[:-1] + b"0"
        clauses = ["path = ?"]
        args: list[Any] = [self._encode(path)]
        for start, end in self._range_keys(low, high):
            clauses.append("(path >= ? AND path < ?)")
            args += [start, end]
        return f"({' OR '.join(clauses)})", tuple(args)

    def _outside(self, folders: Sequence[Path]) -> Where:
        """SQL for "the job's path lies under none of `folders`"."""
        clauses: list[str] = ["1 = 1"]
        args: list[Any] = []
        for folder in folders:
            inside, more = self._inside(folder)
            clauses.append(f"NOT {inside}")
            args.extend(more)
        return " AND ".join(clauses), tuple(args)

    def _root_rank(self, roots: Sequence[tuple[Path, int]]) -> Where:
        """The ORDER BY term for the priority of the watched root a job's path lies under
        (0 for none), empty when no root has one."""
        cases: list[str] = []
        args: list[Any] = []
        for folder, priority in roots:
            if priority:
                inside, more = self._inside(folder)
                cases.append(f"WHEN {inside} THEN ?")
                args.extend((*more, priority))
        if not cases:
            return "", ()
        return f"(CASE {' '.join(cases)} ELSE 0 END) DESC, ", tuple(args)

    def _mine(self) -> Where:
        """The rows this host claimed (every row, in a store of one host)."""
        return ("host = ?", (self.host,)) if self.shared else ("1 = 1", ())

    # -- rows

    def _job(self, row: Any) -> Job:
        return Job(row["id"], self._local(row["path"]),
                   Fingerprint(row["size"], row["mtime_ns"], row["inode"]), row["state"],
                   row["priority"], row["attempts"], row["last_error"], row["error_class"],
                   row["updated"], row["started"], row["language"], row["audio_seconds"],
                   row["wall_seconds"], self._local_text(row["output"]), row["sticky_exits"],
                   self._local_text(row["written_path"]), row["written_sha256"],
                   bool(row["force"]),
                   row["request"], row["confidence"], row["host"], row["lease"],
                   row["lease_expires"], row["quality"], _beside(row["beside"]), row["quiet"])

    @staticmethod
    def _drop_checkpoints(db: Db, where: str, args: Sequence[Any]) -> None:
        """Delete the checkpoints of the jobs that `where` selects (nothing cascades:
        every path that ends or deletes a job calls this)."""
        db.execute("DELETE FROM checkpoints WHERE job_id IN (SELECT id FROM jobs WHERE"
                   f" {where})", tuple(args))

    def _insert(self, db: Db, path: Path, fingerprint: Fingerprint, priority: int,
                request: str | None, now: float) -> bool:
        """A new row (False when another writer inserted the path first)."""
        # A client's request is this host's alone: its upload is in this host's state
        # directory, and its client waits on this host.
        return bool(db.execute(
            "INSERT INTO jobs (path, size, mtime_ns, inode, state, priority, created,"
            " updated, request, host) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)"
            " ON CONFLICT (path) DO NOTHING",
            (self._key(path), fingerprint.size, fingerprint.mtime_ns, fingerprint.inode,
             priority, now, now, request, self.host if request else None)).rowcount)

    def _enqueue(self, db: Db, path: Path, fingerprint: Fingerprint, priority: int,
                 now: float) -> bool:
        row = db.execute(f"SELECT * FROM jobs WHERE path = ?{self._FOR_UPDATE}",
                         (self._key(path),)).fetchone()
        if row is None:
            return self._insert(db, path, fingerprint, priority, None, now)
        known = self._job(row).fingerprint
        if known.same_content(fingerprint):
            if known.inode != fingerprint.inode and row["state"] != "running":
                # Nothing to redo: note the new inode (a running job notes nothing while it
                # checkpoints under the old one).
                db.execute("UPDATE jobs SET inode = ? WHERE id = ?",
                           (fingerprint.inode, row["id"]))
                db.execute("UPDATE checkpoints SET inode = ? WHERE job_id = ? AND size = ?"
                           " AND mtime_ns = ?", (fingerprint.inode, row["id"], known.size,
                                                 known.mtime_ns))
            if row["state"] == "queued" and priority > row["priority"]:
                db.execute("UPDATE jobs SET priority = ? WHERE id = ?", (priority, row["id"]))
            return False
        if row["state"] == "running":  # the worker notices the change itself
            return False
        if row["state"] != "queued":
            logger.info("%s: changed since it was %s (size %d → %d); queued to be redone",
                        path, row["state"], known.size, fingerprint.size)
        self._adopt_legacy_output(db, row)
        self._drop_checkpoints(db, "id = ?", (row["id"],))
        db.execute(
            "UPDATE jobs SET size = ?, mtime_ns = ?, inode = ?, state = 'queued',"
            " priority = ?, attempts = 0, not_before = 0, last_error = NULL,"
            f" error_class = NULL, {_UNMEASURED}, {_FRESH}, updated = ? WHERE id = ?",
            (fingerprint.size, fingerprint.mtime_ns, fingerprint.inode, priority, now,
             row["id"]))
        return True

    # -- queueing

    def enqueue(self, path: Path, fingerprint: Fingerprint, priority: int) -> bool:
        """Queue a complete file. A file already known with the same fingerprint is left
        as it is (done stays done); a changed one starts over. True when queued anew."""
        return bool(self.enqueue_many([(path, fingerprint, priority)]))

    def enqueue_many(self, files: Sequence[tuple[Path, Fingerprint, int]]) -> list[Path]:
        """`enqueue` for each of `files`, a transaction (one fsync) per _ENQUEUE_BATCH
        files: a first start finds a whole library at once. The files queued anew."""
        queued: list[Path] = []
        for first in range(0, len(files), _ENQUEUE_BATCH):
            with self._transaction() as db:
                self._one_bulk_writer(db)
                now = self._now(db)
                queued += [path for path, fingerprint, priority
                           in files[first:first + _ENQUEUE_BATCH]
                           if self._enqueue(db, path, fingerprint, priority, now)]
        return queued

    def enqueue_request(self, path: Path, fingerprint: Fingerprint, request: str) -> Job:
        """Queue work a client waits for (its folder's rank puts it before the library:
        `claim`'s roots); an identical request (the same file, as the caller names it by
        its content) shares the job."""
        with self._transaction() as db:
            self._insert(db, path, fingerprint, PRIORITY_NEW, request, self._now(db))
        found = self.get(path)
        assert found is not None
        return found

    def drop_requests(self, folder: Path) -> list[Path]:
        """This host's requests' jobs under `folder` (their clients went with the last
        process)."""
        inside, args = self._inside(folder)
        mine, more = self._mine()
        inside, args = f"{inside} AND {mine}", (*args, *more)
        with self._transaction() as db:
            self._one_bulk_writer(db)
            rows = db.execute(f"SELECT path FROM jobs WHERE {inside}", args).fetchall()
            self._drop_checkpoints(db, inside, args)
            db.execute(f"DELETE FROM jobs WHERE {inside}", args)
        return [self._local(row["path"]) for row in rows]

    # -- claims and leases

    def claim(self, exclude: Sequence[Path] = (), *, roots: Sequence[tuple[Path, int]] = (),
              newest_first: bool = False, max_attempts: int = 3,
              dead: Callable[[Path, str], None] = lambda path, why: None) -> Job | None:
        """The next job outside the `exclude`d folders, now `running` under a new lease
        held by this host, this attempt counted and how far its checkpoints reach noted
        (`recover` refunds the attempt if a crash comes after more). Next: the highest
        priority of the watched root it is under (`roots`: folder and priority), then new
        arrivals before the backfill, then (with `newest_first`) the most recently
        modified, then the order they were found in. In a shared store, the claims of
        hosts whose leases expired are recovered first, as `recover` does after a crash
        (`max_attempts`); `dead` hears of each that this dead-letters (path, why), once the
        claim is committed."""
        dead_letters: list[tuple[Path, str]] = []
        job = self._claim(exclude, roots, newest_first, max_attempts, dead_letters)
        for path, why in dead_letters:
            dead(path, why)
        return job

    def _claim(self, exclude: Sequence[Path], roots: Sequence[tuple[Path, int]],
               newest_first: bool, max_attempts: int,
               dead_letters: list[tuple[Path, str]]) -> Job | None:
        outside, args = self._outside(exclude)
        if self.shared:  # another host's request waits for that host
            outside, args = f"{outside} AND (request IS NULL OR host = ?)", (*args, self.host)
        rank, rank_args = self._root_rank(roots)
        newest = "mtime_ns DESC, " if newest_first else ""
        with self._transaction() as db:
            now = self._now(db)
            if self.shared:
                expired = ("state = 'running' AND lease_expires < ?", (now,))
                for path in self._finish_written(db, expired, now):
                    logger.warning("%s: its subtitle was written by a host whose lease "
                                   "expired; recorded as done", path)
                for path, why in self._recover(db, expired, max_attempts, now, expired=True):
                    if why is not None:
                        logger.error("%s: the host working on it stopped renewing its lease;"
                                     " dead-lettered: %s", path, why)
                        dead_letters.append((path, why))
                        continue
                    logger.warning("%s: the host working on it stopped renewing its lease; "
                                   "requeued", path)
            row = db.execute(
                f"SELECT id FROM jobs WHERE state = 'queued' AND not_before <= ? AND {outside}"
                f" ORDER BY {rank}priority DESC, {newest}id LIMIT 1{self._SKIP_LOCKED}",
                (now, *args, *rank_args)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE jobs SET state = 'running', attempts = attempts + 1,"
                       " started = ?, updated = ?, output = NULL, output_sha256 = NULL,"
                       f" claimed_seconds = {_REACHED}, host = ?, lease = lease + 1,"
                       " lease_expires = ?, lease_renewed = ? WHERE id = ?",
                       (now, now, self.host, now + self.lease_seconds, now, row["id"]))
            claimed = db.execute("SELECT * FROM jobs WHERE id = ?", (row["id"],)).fetchone()
            return self._job(claimed)

    def renew(self, job: Job) -> bool:
        """Extend the job's lease by `lease_seconds` from now; False when it is no longer
        this claim's (the caller gives the job up)."""
        held, args = self._held(job)
        with self._transaction() as db:
            now = self._now(db)
            return bool(db.execute(
                f"UPDATE jobs SET lease_expires = ?, lease_renewed = ? WHERE {held}",
                (now + self.lease_seconds, now, *args)).rowcount)

    @contextmanager
    def fenced(self, job: Job) -> Iterator[None]:
        """Hold the job's row while the caller puts its subtitle in place: raises LeaseLost
        (and nothing is put in place) when the claim is no longer this one; while the
        block runs, nobody can take the job."""
        if not self.shared:  # one host: nobody else takes a running job; no lock held
            held, args = self._held(job)
            if not self._query(f"SELECT id FROM jobs WHERE {held}", args):
                raise LeaseLost(job.path)
            yield
            return
        with self._transaction() as db:
            if not self._hold(db, job):
                raise LeaseLost(job.path)
            yield

    def _held(self, job: Job) -> Where:
        """The job's row, while this claim holds it."""
        return "id = ? AND lease = ? AND state = 'running'", (job.id, job.lease)

    def _hold(self, db: Db, job: Job) -> bool:
        """Lock the job's row for this transaction, if this claim still holds it (in
        PostgreSQL an INSERT … SELECT or a DELETE would not wait for another host's
        claim of the row, and could act on a claim that has just been taken)."""
        held, args = self._held(job)
        return db.execute(f"SELECT id FROM jobs WHERE {held}{self._FOR_UPDATE}",
                          args).fetchone() is not None

    def _lost(self, job: Job, what: str) -> None:
        logger.warning("%s: %s not recorded: the job is no longer this process's (its lease "
                       "was lost)", job.path, what)

    # -- reading

    def twin(self, job: Job) -> Job | None:
        """A done job of another path with this job's size, mtime and inode, whose
        subtitle was written: perhaps the same file under a second name (a hard link).
        Never a client's request: its subtitle is in the language and task it asked for."""
        rows = self._query(
            "SELECT * FROM jobs WHERE id != ? AND state = 'done' AND size = ? AND"
            " mtime_ns = ? AND inode = ? AND written_path IS NOT NULL AND request IS NULL"
            " ORDER BY id",
            (job.id, job.fingerprint.size, job.fingerprint.mtime_ns, job.fingerprint.inode))
        return self._job(rows[0]) if rows else None

    def get_by_id(self, job_id: int) -> Job | None:
        rows = self._query("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return self._job(rows[0]) if rows else None

    def get(self, path: Path) -> Job | None:
        rows = self._query("SELECT * FROM jobs WHERE path = ?", (self._key(path),))
        return self._job(rows[0]) if rows else None

    def counts(self) -> dict[str, int]:
        rows = self._query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        found = {r["state"]: r["n"] for r in rows}
        return {state: int(found.get(state, 0)) for state in STATES}

    def in_state(self, state: State, limit: int = 10) -> list[Job]:
        rows = self._query("SELECT * FROM jobs WHERE state = ? ORDER BY updated DESC LIMIT ?",
                           (state, limit))
        return [self._job(r) for r in rows]

    def flagged(self, limit: int = 10) -> list[Job]:
        """Files finished with a subtitle likely bad (subtitled.quality), the last first."""
        rows = self._query(f"SELECT * FROM jobs WHERE {_FLAGGED} ORDER BY updated DESC"
                           " LIMIT ?", (limit,))
        return [self._job(r) for r in rows]

    def flagged_count(self) -> int:
        return int(self._query(f"SELECT COUNT(*) FROM jobs WHERE {_FLAGGED}")[0][0])

    def progress(self, job: Job) -> tuple[float | None, float | None]:
        rows = self._query("SELECT progress_seconds, total_seconds FROM jobs WHERE id = ?",
                           (job.id,))
        return (rows[0][0], rows[0][1]) if rows else (None, None)

    # -- the backlog and its ETA (subtitled.eta). A file's audio length is `total_seconds`:
    # probed in the background while it is queued, and the worker's own once it runs.

    def unprobed(self, limit: int) -> list[Job]:
        """Queued files whose length is not known yet, a random sample of them: the mean of
        a sample estimates a large backlog as well as all of it."""
        rows = self._query("SELECT * FROM jobs WHERE state = 'queued' AND total_seconds IS"
                           " NULL ORDER BY RANDOM() LIMIT ?", (limit,))
        return [self._job(r) for r in rows]

    def set_length(self, job: Job, seconds: float) -> None:
        """A queued file's audio length, as probed (kept only while the file is the same)."""
        with self._transaction() as db:
            db.execute("UPDATE jobs SET total_seconds = ? WHERE id = ? AND state = 'queued'"
                       " AND size = ? AND mtime_ns = ?",
                       (seconds, job.id, job.fingerprint.size, job.fingerprint.mtime_ns))

    def backlog(self) -> Backlog:
        """What is left, and how fast the files finished last went (any host's)."""
        with self._transaction() as db:
            queued = db.execute("SELECT COUNT(*), COUNT(total_seconds),"
                                " COALESCE(SUM(total_seconds), 0) FROM jobs"
                                " WHERE state = 'queued'").fetchone()
            running = db.execute("SELECT total_seconds, progress_seconds, host FROM jobs"
                                 " WHERE state = 'running'").fetchall()
            recent = db.execute("SELECT audio_seconds, wall_seconds FROM jobs WHERE state ="
                                " 'done' AND audio_seconds > 0 AND wall_seconds > 0"
                                " ORDER BY updated DESC LIMIT ?", (RECENT_FILES,)).fetchall()
        left = sum(max(0.0, (row[0] or 0.0) - (row[1] or 0.0)) for row in running)
        hosts = len({row[2] for row in running}) if self.shared else 1
        return Backlog(int(queued[0]), int(queued[1]), float(queued[2]), left,
                       sum(float(row[0]) for row in recent),
                       sum(float(row[1]) for row in recent), max(1, hosts))

    # -- the running job

    def set_progress(self, job: Job, done_seconds: float, total_seconds: float | None) -> bool:
        """Note how far the job is; the lease is renewed with it. False when the job is no
        longer this claim's."""
        held, args = self._held(job)
        with self._transaction() as db:
            now = self._now(db)
            return bool(db.execute("UPDATE jobs SET progress_seconds = ?, total_seconds = ?,"
                       f" lease_expires = ?, lease_renewed = ? WHERE {held}",
                       (done_seconds, total_seconds, now + self.lease_seconds, now,
                        *args)).rowcount)

    def add_checkpoint(self, job: Job, decoded_seconds: float, data: str) -> None:
        """Append one checkpoint: the file is decoded up to `decoded_seconds` (source time);
        `data` (opaque JSON text) holds what this batch added. One fsynced transaction.
        Only the claim's holder may add: for a job not `running` under this claim at
        job.fingerprint (released, ended, forgotten, taken by another host, file changed)
        it is refused with a warning, so ended jobs keep no checkpoints and `recover`
        judges the crashed claim by its own."""
        held, args = self._held(job)
        with self._transaction() as db:
            added = self._hold(db, job) and db.execute(
                "INSERT INTO checkpoints (job_id, seq, size, mtime_ns, inode,"
                " decoded_seconds, data, created) SELECT id, (SELECT COALESCE(MAX(seq), 0) + 1"
                " FROM checkpoints WHERE job_id = jobs.id), size, mtime_ns, inode, ?, ?, ?"
                f" FROM jobs WHERE {held} AND size = ? AND mtime_ns = ? AND inode = ?",
                (decoded_seconds, data, self._now(db), *args,
                 *astuple(job.fingerprint))).rowcount
        if not added:
            logger.warning("%s: checkpoint at %.1f s refused: the job is no longer being "
                           "worked on", job.path, decoded_seconds)

    def checkpoint(self, job: Job) -> tuple[float, list[str]]:
        """(decoded_seconds of the newest checkpoint, the data of every checkpoint in
        order) for this job at job.fingerprint; (0.0, []) when there is none. Checkpoints
        saved under another fingerprint describe another file: they are deleted."""
        with self._transaction() as db:
            db.execute("DELETE FROM checkpoints WHERE job_id = ? AND NOT (size = ? AND"
                       " mtime_ns = ? AND inode = ?)",
                       (job.id, *astuple(job.fingerprint)))
            rows = db.execute("SELECT decoded_seconds, data FROM checkpoints"
                              " WHERE job_id = ? ORDER BY seq", (job.id,)).fetchall()
        if not rows:
            return 0.0, []
        return float(rows[-1]["decoded_seconds"]), [row["data"] for row in rows]

    def writing(self, job: Job, target: Path, cue_count: int, sha256: str) -> None:
        """Note, before the subtitle is written, where it goes and the hash of what it will
        hold: a crash after the rename but before `finish` is then recognised by
        `finish_written` instead of being redone, and the subtitle known for ours. Raises
        LeaseLost when the claim is no longer this one (nothing may be written)."""
        held, args = self._held(job)
        with self._transaction() as db:
            if not db.execute("UPDATE jobs SET output = ?, cue_count = ?, output_sha256 = ?,"
                              f" updated = ? WHERE {held}",
                              (self._key(target), cue_count, sha256, self._now(db),
                               *args)).rowcount:
                raise LeaseLost(job.path)

    def writing_beside(self, job: Job, target: Path, sha256: str) -> None:
        """Note, before it is written, a subtitle the job writes beside its tracked one (in
        another format, or a translation) and the hash of what it will hold, so that a
        later run knows it for ours (replaced when the file changes) or edited (kept).
        The hash it held before is kept with it: if the write does not happen, what is
        there is still known for ours. Raises LeaseLost as `writing` does."""
        held, args = self._held(job)
        with self._transaction() as db:
            row = db.execute(f"SELECT beside FROM jobs WHERE {held}{self._FOR_UPDATE}",
                             args).fetchone()
            if row is None:
                raise LeaseLost(job.path)
            beside = dict(_beside(row["beside"]))
            known = beside.get(target.name, ())
            beside[target.name] = (sha256, *[h for h in known if h != sha256])[:_HASHES_KEPT]
            db.execute(f"UPDATE jobs SET beside = ? WHERE {held}",
                       (json.dumps(beside, sort_keys=True), *args))

    # -- the outcome (each fenced by the claim's lease)

    def requeue_changed(self, job: Job, fingerprint: Fingerprint, not_before: float) -> None:
        """The file changed after it was queued: start over with its new fingerprint."""
        held, args = self._held(job)
        with self._transaction() as db:
            if not self._hold(db, job):
                self._lost(job, "the change of its file")
                return
            now = self._now(db)
            self._drop_checkpoints(db, held, args)
            db.execute("UPDATE jobs SET size = ?, mtime_ns = ?, inode = ?, state = 'queued',"
                       f" attempts = 0, {_UNMEASURED}, {_FRESH}, not_before = ?,"
                       f" updated = ? WHERE {held}",
                       (fingerprint.size, fingerprint.mtime_ns, fingerprint.inode,
                        _on_clock(not_before, now), now, *args))

    def finish(self, job: Job, state: Literal["done", "skipped"], result: Result | None,
               reason: str | None = None) -> None:
        values = (result.language, result.cue_count, result.audio_seconds,
                  result.wall_seconds, self._key(result.output) if result.output else None) \
            if result else (None, None, None, None, None)
        # A subtitle written: the one `writing` noted, with the hash of what was written
        # (never read back: an edit made meanwhile must not pass for ours).
        wrote = state == "done" and result is not None and result.output is not None
        held, args = self._held(job)
        with self._transaction() as db:
            ended = self._hold(db, job)
            self._drop_checkpoints(db, held, args)
            ended = ended and db.execute(
                "UPDATE jobs SET state = ?, language = COALESCE(?, language),"
                " cue_count = ?, audio_seconds = ?, wall_seconds = ?, output = ?,"
                f" last_error = ?, error_class = NULL, {_FRESH}, updated = ?,"
                " written_path = CASE WHEN ? THEN output ELSE written_path END,"
                " written_sha256 = CASE WHEN ? THEN output_sha256 ELSE written_sha256"
                f" END, confidence = ?, quality = ?, quiet = ? WHERE {held}",
                (state, *values, _text(reason), self._now(db), wrote, wrote,
                 result.confidence if result else None,
                 _text(result.quality) if result else None,
                 _text(result.quiet) if result else None, *args)).rowcount
            failpoints.hit("during-commit", job.path.name)
        if not ended:
            self._lost(job, state)

    def fail(self, job: Job, error: str, error_class: str, *, transient: bool,
             budget_seconds: float, backoff_seconds: float, backoff_max_seconds: float
             ) -> State:
        """Record a failure. A permanent one fails at once. A transient one gives the
        attempt back and waits a doubling backoff, until `budget_seconds` have passed since
        its first failure (dead). A retry keeps the checkpoints and resumes from them;
        failed and dead drop them (an explicit `retry` starts over)."""
        held, args = self._held(job)
        with self._transaction() as db:
            now = self._now(db)
            row = db.execute(f"SELECT first_failure, failures FROM jobs WHERE {held}"
                             f"{self._FOR_UPDATE}", args).fetchone()
            if row is None:
                self._lost(job, "its failure")
                return "failed"
            first = now if row["first_failure"] is None else row["first_failure"]
            failures = 1 + row["failures"]
            state: State = "failed"
            delay = 0.0
            if transient:
                state = "queued" if now - first < budget_seconds else "dead"
                delay = min(backoff_max_seconds,
                            backoff_seconds * 2 ** min(failures - 1, 30))
            if state != "queued":
                self._drop_checkpoints(db, "id = ?", (job.id,))
            attempts = _REFUNDED if state == "queued" else "attempts"
            db.execute("UPDATE jobs SET state = ?, last_error = ?, error_class = ?,"
                       " not_before = ?, updated = ?, first_failure = ?, failures = ?,"
                       f" attempts = {attempts},"
                       " force = CASE WHEN ? = 'queued' THEN force ELSE 0 END WHERE id = ?",
                       (state, _text(error), error_class, now + delay, now, first, failures,
                        state, job.id))
        return state

    def defer(self, job: Job, error: str, error_class: str, not_before: float, *,
              sticky: bool = False) -> None:
        """The environment failed, not the file: back to the queue until `not_before`, the
        attempt given back, its checkpoints kept, the error noted for `status`. The time
        budget of its transient failures starts again (waiting for the world is not the
        file's time); `sticky` counts a GPU that needed a new process."""
        held, args = self._held(job)
        with self._transaction() as db:
            now = self._now(db)
            db.execute(f"UPDATE jobs SET state = 'queued', attempts = {_REFUNDED},"
                       " last_error = ?, error_class = ?, not_before = ?, updated = ?,"
                       f" first_failure = NULL, sticky_exits = sticky_exits + ? WHERE {held}",
                       (_text(error), error_class, _on_clock(not_before, now), now,
                        int(sticky), *args))

    def release(self, job: Job) -> None:
        """Put back a job abandoned at shutdown; the attempt does not count, and its
        checkpoints stay for the next start to resume from."""
        held, args = self._held(job)
        with self._transaction() as db:
            db.execute(f"UPDATE jobs SET state = 'queued', attempts = {_REFUNDED},"
                       f" updated = ? WHERE {held}", (self._now(db), *args))

    def give_back(self, job: Job) -> str | None:
        """This host let the job go because the job database failed (its lease could not
        be renewed, or its end not recorded): not the file's doing, and not a crash. The
        attempt it was charged is given back wherever the job went since: still this
        claim's (back to the queue, as `release`, or done if the subtitle it noted is in
        place: its end was what could not be recorded); or another host's claim took the
        expired lease for a crash and kept the attempt (`kept_lease`): requeued or claimed
        again since (one attempt off its count), or dead-lettered for it (back to the
        queue). Once; None when nothing was left to give back (done, failed, or the
        lease's attempt kept no more: a later lease's expiry, or a retry, has reset it)."""
        mine = (job.id, job.lease)
        held, args = self._held(job)
        with self._transaction() as db:
            now = self._now(db)
            if self._finish_written(db, (held, args), now):
                return "its subtitle was in place: recorded as done"
            if db.execute(f"UPDATE jobs SET state = 'queued', attempts = {_REFUNDED},"
                          f" updated = ? WHERE {held}", (now, *args)).rowcount:
                return "back in the queue"
            if db.execute(f"UPDATE jobs SET state = 'queued', attempts = {_REFUNDED},"
                          " kept_lease = NULL, last_error = NULL, error_class = NULL,"
                          " updated = ? WHERE id = ? AND lease = ? AND kept_lease = lease"
                          " AND state = 'dead' AND error_class = 'Crash'",
                          (now, *mine)).rowcount:
                return "dead-lettered by another host's claim; back in the queue"
            # (Not `updated`: a running row's is when its subtitle was noted as written.)
            if db.execute(f"UPDATE jobs SET attempts = {_REFUNDED}, kept_lease = NULL"
                          " WHERE id = ? AND kept_lease = ? AND state IN ('queued', 'running')",
                          mine).rowcount:
                return "requeued by another host's claim"
            return None

    def forget(self, job: Job) -> None:
        """The file is gone: nothing to do for it any more (unless another claim than
        this job's holds it now)."""
        mine = ("id = ? AND NOT (state = 'running' AND lease != ?)", (job.id, job.lease))
        with self._transaction() as db:
            self._drop_checkpoints(db, *mine)
            db.execute(f"DELETE FROM jobs WHERE {mine[0]}", mine[1])

    # -- events from the library and the operator

    def forget_queued(self, path: Path) -> int:
        """A path (or folder) moved away or deleted: drop its queued jobs."""
        inside, args = self._inside(path)
        # (SQLite: `+state`, not the state index of every queued job, the path's ranges.)
        where = f"{self._UNINDEXED}state = 'queued' AND {inside}"
        with self._transaction() as db:
            self._one_bulk_writer(db)
            self._drop_checkpoints(db, where, args)
            return int(db.execute(f"DELETE FROM jobs WHERE {where}", args).rowcount)

    def wake(self, folder: Path | None = None) -> int:
        """A pause ended: the files it held back (under `folder`, or all) may run now.
        Other waits (a transient failure's backoff, a changed file settling) stand."""
        inside, args = ("1 = 1", ()) if folder is None else self._inside(folder)
        with self._transaction() as db:
            self._one_bulk_writer(db)
            return int(db.execute(
                "UPDATE jobs SET not_before = 0 WHERE state = 'queued' AND not_before > 0"
                f" AND error_class = 'EnvironmentFault' AND {inside}", args).rowcount)

    def moved(self, old: Path, new: Path, subtitle: Path,
              beside: Sequence[tuple[Path, Path]] = ()) -> bool:
        """`old` was renamed to `new` and its subtitle is now `subtitle`, and the ones
        beside it moved as `beside` says (old, new): the done job follows the file (a job
        queued meanwhile for `new`, by an event, gives way to it). False when `old` has no
        done job, or `new`'s is running."""
        with self._transaction() as db:
            self._one_bulk_writer(db)
            row = db.execute(f"SELECT id, state, beside FROM jobs WHERE path = ?"
                             f"{self._FOR_UPDATE}",
                             (self._key(old),)).fetchone()
            other = db.execute(f"SELECT id, state FROM jobs WHERE path = ?{self._FOR_UPDATE}",
                               (self._key(new),)).fetchone()
            if row is None or row["state"] != "done" or \
                    (other is not None and other["state"] == "running"):
                return False
            if other is not None:
                self._drop_checkpoints(db, "id = ?", (other["id"],))
                db.execute("DELETE FROM jobs WHERE id = ?", (other["id"],))
            names = {before.name: after.name for before, after in beside}
            hashes = {names.get(name, name): known
                      for name, known in _beside(row["beside"]).items()}
            db.execute("UPDATE jobs SET path = ?, output = ?, written_path = ?, updated = ?,"
                       " beside = ? WHERE id = ?",
                       (self._key(new), self._key(subtitle), self._key(subtitle),
                        self._now(db), json.dumps(hashes, sort_keys=True) if hashes else None,
                        row["id"]))
            return True

    def retry(self, path: Path | None = None, *, force: bool = False) -> int:
        """Requeue one file (any state but running), or every failed and dead one. A retry
        starts over: whatever checkpoints the file still has are dropped, because someone
        asking to redo a file should not get the old words back. `force` (one file) redoes
        it whatever subtitle it has in its language, and replaces that subtitle."""
        args: tuple[Any, ...] = ()
        with self._transaction() as db:
            self._one_bulk_writer(db)
            if path is None:
                where = "state IN ('failed', 'dead')"
            else:
                where, args = "path = ? AND state != 'running'", (self._key(path),)
            self._drop_checkpoints(db, where, args)
            return int(db.execute(
                f"UPDATE jobs SET state = 'queued', attempts = 0, not_before = 0, {_RESTART},"
                f" priority = {PRIORITY_NEW}, force = ?, updated = ? WHERE {where}",
                (int(force and path is not None), self._now(db), *args)).rowcount)

    def skip(self, job_id: int, reason: str) -> bool:
        """An admin's Skip: a file waiting or given up on is left alone from now on (until
        it changes, or someone retries it). False when it is running or already done."""
        with self._transaction() as db:
            return bool(db.execute(
                "UPDATE jobs SET state = 'skipped', last_error = ?, not_before = 0,"
                " quality = NULL, quiet = NULL, updated = ? WHERE id = ? AND state IN"
                " ('queued', 'failed', 'dead')",
                (reason, self._now(db), job_id)).rowcount)

    # -- what the web page shows

    def next_queued(self, limit: int) -> list[tuple[Job, float | None]]:
        """The queue's head, with each file's length where it is known: the files a claim
        takes next, by rank, oldest first (the roots' priorities and the backfill's order
        refine it at claim time)."""
        rows = self._query("SELECT * FROM jobs WHERE state = 'queued'"
                           " ORDER BY priority DESC, id LIMIT ?", (limit,))
        return [(self._job(r), r["total_seconds"]) for r in rows]

    def history(self, limit: int, containing: str = "") -> list[tuple[Job, int | None]]:
        """The files done last, with their cue counts; with `containing`, those whose path
        (as the store holds it) has it in it."""
        where = "state = 'done'"
        args: tuple[Any, ...] = ()
        if containing:
            pattern = "%" + "".join(f"!{c}" if c in "!%_" else c for c in containing) + "%"
            stored = self._encode(Path("/"))
            where += " AND path LIKE ? ESCAPE '!'"
            args = (os.fsencode(pattern) if isinstance(stored, bytes) else pattern,)
        rows = self._query(f"SELECT * FROM jobs WHERE {where} ORDER BY updated DESC LIMIT ?",
                           (*args, limit))
        return [(self._job(r), r["cue_count"]) for r in rows]

    # -- after a crash

    def finish_written(self) -> list[Path]:
        """After a crash: this host's `running` jobs whose subtitle was written (renamed
        into place after `writing` was noted) are done. Returns their paths."""
        with self._transaction() as db:
            return self._finish_written(db, self._mine(), self._now(db))

    def recover(self, max_attempts: int) -> list[Path]:
        """After a crash: this host's `running` jobs go back to the queue, or are
        dead-lettered when the crash has already used up their attempts. A job whose
        checkpoints reach further than at its claim was making progress, not killing the
        process: that crash does not count, and it is requeued whatever its attempts.
        Returns their paths."""
        with self._transaction() as db:
            return [path for path, _ in self._recover(db, self._mine(), max_attempts,
                                                      self._now(db))]

    def _finish_written(self, db: Db, which: Where, now: float) -> list[Path]:
        where, args = which
        finished = []
        rows = db.execute("SELECT id, path, output, output_sha256, updated FROM jobs WHERE"
                          f" state = 'running' AND output IS NOT NULL AND {where}"
                          f" ORDER BY id{self._SKIP_LOCKED}", args).fetchall()
        for row in rows:
            output = self._local(row["output"])
            if row["output_sha256"] is not None:  # what was to be written is there
                if file_sha256(output) != row["output_sha256"]:
                    continue
            else:  # noted by a release that kept no hash: a file no older than the note
                try:
                    if output.stat().st_mtime + 1.0 < row["updated"]:
                        continue
                except OSError:
                    continue
            self._drop_checkpoints(db, "id = ?", (row["id"],))
            # (What the run judged of it is not known here: not flagged, rather than
            # flagged for what an earlier run said.)
            db.execute("UPDATE jobs SET state = 'done', last_error = NULL, force = 0,"
                       " error_class = NULL, updated = ?, written_path = output,"
                       " written_sha256 = output_sha256, quality = NULL, quiet = NULL"
                       " WHERE id = ?",
                       (now, row["id"]))
            finished.append(self._local(row["path"]))
        return finished

    def _recover(self, db: Db, which: Where, max_attempts: int, now: float, *,
                 expired: bool = False) -> list[tuple[Path, str | None]]:
        """The paths recovered, each with why it was dead-lettered (None: requeued).
        (`expired`: another host's lease ran out. The lease whose attempt is kept is
        noted, `kept_lease`, so that its host can give the attempt back if it was alive
        and only lost the database: `give_back`.)"""
        where, args = which
        rows = db.execute(f"SELECT id, path FROM jobs WHERE state = 'running' AND {where}"
                          f" ORDER BY id{self._SKIP_LOCKED}", args).fetchall()
        if not rows:
            return []
        ids = tuple(row["id"] for row in rows)
        running = f"id IN ({', '.join('?' * len(ids))}) AND state = 'running'"
        db.execute(f"UPDATE jobs SET state = 'queued', attempts = {_REFUNDED}, updated = ?"
                   f" WHERE {running} AND {_REACHED} > COALESCE(claimed_seconds, 0)",
                   (now, *ids))
        self._drop_checkpoints(db, f"{running} AND attempts >= ?", (*ids, max_attempts))
        died = "'its host stopped renewing its lease on attempt ' || attempts" if expired \
            else ("'the process died while working on it ' || CASE WHEN attempts = 1"
                  " THEN 'once' ELSE attempts || ' times' END")
        kept = ", kept_lease = lease" if expired else ""
        db.execute(f"UPDATE jobs SET state = 'dead', last_error = {died}{kept},"
                   " error_class = 'Crash',"
                   f" updated = ? WHERE {running} AND attempts >= ?",
                   (now, *ids, max_attempts))
        db.execute(f"UPDATE jobs SET state = 'queued', updated = ?{kept} WHERE {running}",
                   (now, *ids))
        dead = {row["id"]: row["last_error"] for row in db.execute(
            f"SELECT id, last_error FROM jobs WHERE id IN ({', '.join('?' * len(ids))})"
            " AND state = 'dead'", ids).fetchall()}
        return [(self._local(row["path"]), dead.get(row["id"])) for row in rows]

    def _adopt_legacy_output(self, db: Db, row: Any) -> None:
        """A file done by a release that did not record the subtitle's hash, now changed:
        its subtitle counts as ours if nobody wrote to it after the job ended."""
        if row["written_path"] is not None or row["state"] != "done" or \
                row["output"] is None:
            return
        output = self._local(row["output"])
        try:
            untouched = output.stat().st_mtime <= row["updated"] + 1.0
        except OSError:
            return
        digest = file_sha256(output) if untouched else None
        if digest is not None:
            db.execute("UPDATE jobs SET written_path = output, written_sha256 = ? WHERE"
                       " id = ?", (digest, row["id"]))


def _on_clock(not_before: float, now: float) -> float:
    """A time given by this host's clock (`time.time()`), on the store's clock (`now`, the
    server's in a shared store): hosts whose clocks disagree wait alike."""
    return 0.0 if not_before <= 0 else now + (not_before - time.time())


# What `beside` keeps of a subtitle: the hash last written and the one before it.
_HASHES_KEPT = 2


def _beside(text: str | None) -> dict[str, tuple[str, ...]]:
    """The `beside` column: a JSON object, name → hashes; empty when unreadable."""
    try:
        found = json.loads(text) if text else {}
        return {str(name): tuple(map(str, hashes)) for name, hashes in found.items()}
    except (ValueError, TypeError, AttributeError):
        return {}


def _text(message: str | None) -> str | None:
    """A message naming a file whose name is not UTF-8, made storable (the odd bytes
    become U+FFFD)."""
    if message is None:
        return None
    return message.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
