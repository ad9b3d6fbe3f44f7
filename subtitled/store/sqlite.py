"""The durable job store: one SQLite row per media file (WAL, synchronous=FULL).

A job is claimed in a transaction that also counts the attempt, so a file that kills the
process every time runs out of attempts instead of crash-looping the service.
Checkpoints of decoded words let a long file resume after a stop or crash, and a crash
after checkpointed progress is not counted: a film killed while decoding fine never dies.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Literal

from subtitled import failpoints
from subtitled.errors import ConfigError

State = Literal["queued", "running", "done", "failed", "skipped", "dead"]
STATES: tuple[State, ...] = ("queued", "running", "done", "failed", "skipped", "dead")
PRIORITY_NEW = 10  # a file that just arrived
PRIORITY_BACKFILL = 0  # the existing library

# Files queued per transaction: one fsync each, and the worker's writes wait no longer.
_ENQUEUE_BATCH = 500
logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued','running','done','failed','skipped','dead')),
    priority INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    error_class TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    started REAL,
    language TEXT,
    cue_count INTEGER,
    audio_seconds REAL,
    wall_seconds REAL,
    output TEXT,
    progress_seconds REAL,
    total_seconds REAL,
    claimed_seconds REAL,
    first_failure REAL,
    failures INTEGER NOT NULL DEFAULT 0,
    sticky_exits INTEGER NOT NULL DEFAULT 0,
    written_path TEXT,
    written_sha256 TEXT,
    output_sha256 TEXT,
    force INTEGER NOT NULL DEFAULT 0,
    request TEXT,
    confidence REAL
);
CREATE INDEX IF NOT EXISTS jobs_next ON jobs (state, priority DESC, id);
CREATE TABLE IF NOT EXISTS checkpoints (
    job_id INTEGER NOT NULL, seq INTEGER NOT NULL,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL,
    decoded_seconds REAL NOT NULL, data TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (job_id, seq)
);
"""
# Columns added to `jobs` before the schema had a version, added to such a database on
# open (migration 0 → 1).
_ADDED_COLUMNS = (("claimed_seconds", "REAL"), ("first_failure", "REAL"),
                  ("failures", "INTEGER NOT NULL DEFAULT 0"),
                  ("sticky_exits", "INTEGER NOT NULL DEFAULT 0"), ("written_path", "TEXT"),
                  ("written_sha256", "TEXT"), ("output_sha256", "TEXT"))


def _add_columns(db: sqlite3.Connection, columns: Sequence[tuple[str, str]]) -> None:
    present = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    for name, kind in columns:
        if name not in present:
            db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")


def _columns_of_unversioned_releases(db: sqlite3.Connection) -> None:
    _add_columns(db, _ADDED_COLUMNS)


def _forced_redo(db: sqlite3.Connection) -> None:
    _add_columns(db, [("force", "INTEGER NOT NULL DEFAULT 0")])


def _requests(db: sqlite3.Connection) -> None:
    _add_columns(db, [("request", "TEXT"), ("confidence", "REAL")])


# The schema's history: migration i takes a database from version i to i + 1, inside one
# transaction. A change to the schema is a new function at the end (and `_SCHEMA` shows
# the result for new databases); the version a database is at lives in SQLite's
# `user_version`. tests/data/jobs-schema-*.sqlite3 are databases made by each release.
_MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _columns_of_unversioned_releases,  # 0 → 1
    _forced_redo,  # 1 → 2: `subtitled retry --force`
    _requests,  # 2 → 3: work a client asked for over HTTP (Bazarr), and its answer
)
SCHEMA_VERSION = len(_MIGRATIONS)
# What a job starts from again when its file changed or someone asked for a retry.
# (A `force` asked for by `retry --force` goes with it: SQLite takes the last assignment
# of a column, so retry can set it again after this.)
_FRESH = "first_failure = NULL, failures = 0, sticky_exits = 0, force = 0"
# How far a job row's checkpoints reach at the row's own fingerprint (0 when none).
_REACHED = ("COALESCE((SELECT c.decoded_seconds FROM checkpoints c WHERE c.job_id = jobs.id"
            " AND c.size = jobs.size AND c.mtime_ns = jobs.mtime_ns AND c.inode = jobs.inode"
            " ORDER BY c.seq DESC LIMIT 1), 0)")


@dataclass(frozen=True)
class Fingerprint:
    size: int
    mtime_ns: int
    inode: int

    def same_content(self, other: Fingerprint) -> bool:
        """The same size and mtime: the same file, though perhaps another inode (a share
        mounted again, a library moved with its times kept)."""
        return (self.size, self.mtime_ns) == (other.size, other.mtime_ns)

    @classmethod
    def of(cls, path: Path) -> Fingerprint:
        failpoints.os_error("stat", path.name)
        info = path.stat()
        return cls(info.st_size, info.st_mtime_ns, info.st_ino)


@dataclass(frozen=True)
class Job:
    id: int
    path: Path
    fingerprint: Fingerprint
    state: State
    priority: int
    attempts: int
    last_error: str | None
    error_class: str | None
    updated: float
    started: float | None
    language: str | None
    audio_seconds: float | None
    wall_seconds: float | None
    output: str | None
    sticky_exits: int = 0  # times the GPU needed a new process while on this file
    written_path: str | None = None  # the subtitle last written for the file...
    written_sha256: str | None = None  # ...and its content then, to tell an edit
    force: bool = False  # redo it, replacing any subtitle in its language (retry --force)
    request: str | None = None  # what a client asked of this file (JSON; service.requests)
    confidence: float | None = None  # of the language found, for a detection request


@dataclass(frozen=True)
class Result:
    language: str | None
    cue_count: int
    audio_seconds: float
    wall_seconds: float
    output: Path | None
    confidence: float | None = None  # of the language, when that was what was asked


def text_sha256(text: str) -> str:
    """The SHA-256 of a subtitle's text as it is written (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_sha256(path: Path) -> str | None:
    """The SHA-256 of a (small) file, or None when it cannot be read."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _adopt_legacy_output(db: sqlite3.Connection, row: sqlite3.Row) -> None:
    """A file done by a release that did not record the subtitle's hash, now changed: its
    subtitle counts as ours if nobody wrote to it after the job ended."""
    if row["written_path"] is not None or row["state"] != "done" or row["output"] is None:
        return
    output = _path(row["output"])
    try:
        untouched = output.stat().st_mtime <= row["updated"] + 1.0
    except OSError:
        return
    digest = file_sha256(output) if untouched else None
    if digest is not None:
        db.execute("UPDATE jobs SET written_path = output, written_sha256 = ? WHERE id = ?",
                   (digest, row["id"]))


def _key(path: Path) -> str | bytes:
    """How a path is stored. SQLite text must be UTF-8; a name that is not (Latin-1 from an
    old share) is stored as its bytes, so every file the filesystem can name has a row."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path)
    return text


def _path(stored: str | bytes) -> Path:
    return Path(os.fsdecode(stored))


def _text(message: str | None) -> str | None:
    """A message naming such a file, made storable (the odd bytes become U+FFFD)."""
    if message is None:
        return None
    return message.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _inside(path: Path) -> tuple[str, tuple[str | bytes | int, ...]]:
    """SQL for "the job's path is `path` or lies under it", with its arguments: ranges of
    the path index, so that a folder deleted from a library of 100,000 files costs a
    lookup, not a scan. A path under `path` sorts between `path/` and `path0` ('0' is the
    character after '/'), as text (UTF-8, compared byte by byte) or, for a name stored as
    bytes (`_key`), as bytes."""
    low = os.fsencode(path).rstrip(b"/") + b"/"
    high = low[:-1] + b"0"
    clauses = ["path = ?", "(path >= ? AND path < ?)"]
    args: list[str | bytes | int] = [_key(path), low, high]
    try:
        args += [low.decode("utf-8"), high.decode("utf-8")]
        clauses.append("(path >= ? AND path < ?)")
    except UnicodeDecodeError:  # then nothing under it is stored as text
        pass
    return f"({' OR '.join(clauses)})", tuple(args)


def _outside(folders: Sequence[Path]) -> tuple[str, tuple[str | bytes | int, ...]]:
    """SQL for "the job's path lies under none of `folders`"."""
    clauses: list[str] = ["1"]
    args: list[str | bytes | int] = []
    for folder in folders:
        inside, more = _inside(folder)
        clauses.append(f"NOT {inside}")
        args.extend(more)
    return " AND ".join(clauses), tuple(args)


def _root_rank(roots: Sequence[tuple[Path, int]]) -> tuple[str, tuple[str | bytes | int, ...]]:
    """The ORDER BY term for the priority of the watched root a job's path lies under (0
    for none), empty when no root has one."""
    cases: list[str] = []
    args: list[str | bytes | int] = []
    for folder, priority in roots:
        if priority:
            inside, more = _inside(folder)
            cases.append(f"WHEN {inside} THEN ?")
            args.extend((*more, priority))
    if not cases:
        return "", ()
    return f"(CASE {' '.join(cases)} ELSE 0 END) DESC, ", tuple(args)


def _drop_checkpoints(db: sqlite3.Connection, where: str, args: tuple[object, ...]) -> None:
    """Delete the checkpoints of the jobs that `where` selects (SQLite's foreign keys are
    off, so nothing cascades: every path that ends or deletes a job calls this)."""
    db.execute(f"DELETE FROM checkpoints WHERE job_id IN (SELECT id FROM jobs WHERE {where})",
               args)


def _insert(db: sqlite3.Connection, path: Path, fingerprint: Fingerprint, priority: int,
            request: str | None) -> None:
    now = time.time()
    db.execute("INSERT INTO jobs (path, size, mtime_ns, inode, state, priority, created,"
               " updated, request) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?)",
               (_key(path), fingerprint.size, fingerprint.mtime_ns, fingerprint.inode,
                priority, now, now, request))


def _enqueue(db: sqlite3.Connection, path: Path, fingerprint: Fingerprint, priority: int,
             now: float) -> bool:
    row = db.execute("SELECT * FROM jobs WHERE path = ?", (_key(path),)).fetchone()
    if row is None:
        _insert(db, path, fingerprint, priority, None)
        return True
    known = _job(row).fingerprint
    if known.same_content(fingerprint):
        if known.inode != fingerprint.inode and row["state"] != "running":
            # Nothing to redo: note the new inode (a running job notes nothing while it
            # checkpoints under the old one).
            db.execute("UPDATE jobs SET inode = ? WHERE id = ?", (fingerprint.inode, row["id"]))
            db.execute("UPDATE checkpoints SET inode = ? WHERE job_id = ? AND size = ? AND"
                       " mtime_ns = ?", (fingerprint.inode, row["id"], known.size,
                                         known.mtime_ns))
        if row["state"] == "queued" and priority > row["priority"]:
            db.execute("UPDATE jobs SET priority = ? WHERE id = ?", (priority, row["id"]))
        return False
    if row["state"] == "running":  # the worker notices the change itself
        return False
    _adopt_legacy_output(db, row)
    _drop_checkpoints(db, "id = ?", (row["id"],))
    db.execute(
        "UPDATE jobs SET size = ?, mtime_ns = ?, inode = ?, state = 'queued', priority = ?,"
        f" attempts = 0, not_before = 0, last_error = NULL, error_class = NULL, {_FRESH},"
        " updated = ? WHERE id = ?",
        (fingerprint.size, fingerprint.mtime_ns, fingerprint.inode, priority, now, row["id"]))
    return True


def _job(row: sqlite3.Row) -> Job:
    return Job(row["id"], _path(row["path"]),
               Fingerprint(row["size"], row["mtime_ns"], row["inode"]), row["state"],
               row["priority"], row["attempts"], row["last_error"], row["error_class"],
               row["updated"], row["started"], row["language"], row["audio_seconds"],
               row["wall_seconds"], None if row["output"] is None else os.fsdecode(row["output"]),
               row["sticky_exits"],
               None if row["written_path"] is None else os.fsdecode(row["written_path"]),
               row["written_sha256"], bool(row["force"]), row["request"], row["confidence"])


def _connect(target: str) -> sqlite3.Connection:
    db = sqlite3.connect(target, timeout=30, isolation_level=None, check_same_thread=False,
                         uri=target.startswith("file:"))
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA busy_timeout=30000")
    return db


class JobStore:
    """`read_only` opens an existing database for reading alone (`subtitled status`): no
    schema is written and a user who may only read it can."""

    def __init__(self, database: Path, *, read_only: bool = False) -> None:
        self.path = database
        # One connection shared by the worker and the settle thread; sqlite3 objects are
        # not safe to use from two threads at once.
        self._lock = threading.RLock()
        if read_only:
            self._db = self._open_read_only(database)
            self._check_version(self._version(), read_only=True)
            return
        self._db = _connect(str(database))
        self._check_version(self._version(), read_only=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        with self._transaction() as db:  # a new database starts at the current schema
            if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'jobs'").fetchone():
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._db.executescript(_SCHEMA)
        self._migrate()

    @staticmethod
    def _open_read_only(database: Path) -> sqlite3.Connection:
        """Reading a WAL database needs its -shm file, which the running daemon keeps; with
        the daemon stopped (no -wal file), a reader who may not create one reads the file
        as it stands, which nothing is writing."""
        uri = f"{database.absolute().as_uri()}?mode=ro"
        db = _connect(uri)
        try:
            db.execute("PRAGMA user_version").fetchone()
            return db
        except sqlite3.OperationalError:
            db.close()
            if database.with_name(database.name + "-wal").exists():
                raise
        return _connect(uri + "&immutable=1")

    def _version(self) -> int:
        return int(self._query("PRAGMA user_version")[0][0])

    def _check_version(self, version: int, *, read_only: bool) -> None:
        if version > SCHEMA_VERSION:
            raise ConfigError(f"{self.path} was made by a newer release of subtitled (schema "
                              f"{version}; this one knows up to {SCHEMA_VERSION}): upgrade "
                              "subtitled, or point state_dir elsewhere", stage="state_dir")
        if read_only and version < SCHEMA_VERSION:
            raise ConfigError(f"{self.path} is at schema {version}, this release reads "
                              f"{SCHEMA_VERSION}: start the daemon once to bring it up to "
                              "date", stage="state_dir")

    def _migrate(self) -> None:
        """Bring a database made by an older release up to this one's schema, one step at
        a time, under the write lock (a CLI command may open the store beside the
        daemon, so the version is read again inside the transaction)."""
        if self._version() == SCHEMA_VERSION:
            return
        with self._transaction() as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            self._check_version(version, read_only=False)
            for step in _MIGRATIONS[version:]:
                step(db)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def enqueue(self, path: Path, fingerprint: Fingerprint, priority: int) -> bool:
        """Queue a complete file. A file already known with the same fingerprint is left
        as it is (done stays done); a changed one starts over. True when queued anew."""
        return bool(self.enqueue_many([(path, fingerprint, priority)]))

    def enqueue_many(self, files: Sequence[tuple[Path, Fingerprint, int]]) -> list[Path]:
        """`enqueue` for each of `files`, a transaction (one fsync) per _ENQUEUE_BATCH
        files: a first start finds a whole library at once. The files queued anew."""
        queued: list[Path] = []
        for first in range(0, len(files), _ENQUEUE_BATCH):
            now = time.time()
            with self._transaction() as db:
                queued += [path for path, fingerprint, priority
                           in files[first:first + _ENQUEUE_BATCH]
                           if _enqueue(db, path, fingerprint, priority, now)]
        return queued

    def enqueue_request(self, path: Path, fingerprint: Fingerprint, request: str) -> Job:
        """Queue work a client waits for (its folder's rank puts it before the library:
        `claim`'s roots); an identical request (the same file, as the caller names it by
        its content) shares the job."""
        with self._transaction() as db:
            row = db.execute("SELECT id FROM jobs WHERE path = ?", (_key(path),)).fetchone()
            if row is None:
                _insert(db, path, fingerprint, PRIORITY_NEW, request)
        found = self.get(path)
        assert found is not None
        return found

    def drop_requests(self, folder: Path) -> list[Path]:
        """The requests' jobs under `folder` (their clients went with the last process)."""
        inside, args = _inside(folder)
        with self._transaction() as db:
            rows = db.execute(f"SELECT path FROM jobs WHERE {inside}", args).fetchall()
            _drop_checkpoints(db, inside, args)
            db.execute(f"DELETE FROM jobs WHERE {inside}", args)
        return [_path(row["path"]) for row in rows]

    def claim(self, exclude: Sequence[Path] = (), *, roots: Sequence[tuple[Path, int]] = (),
              newest_first: bool = False) -> Job | None:
        """The next job outside the `exclude`d folders, now `running`, this attempt counted
        and how far its checkpoints reach noted (`recover` refunds the attempt if a crash
        comes after more). Next: the highest priority of the watched root it is under
        (`roots`: folder and priority), then new arrivals before the backfill, then (with
        `newest_first`) the most recently modified, then the order they were found in."""
        now = time.time()
        outside, args = _outside(exclude)
        rank, rank_args = _root_rank(roots)
        newest = "mtime_ns DESC, " if newest_first else ""
        with self._transaction() as db:
            row = db.execute(
                f"SELECT * FROM jobs WHERE state = 'queued' AND not_before <= ? AND {outside}"
                f" ORDER BY {rank}priority DESC, {newest}id LIMIT 1",
                (now, *args, *rank_args)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE jobs SET state = 'running', attempts = attempts + 1,"
                       " started = ?, updated = ?, output = NULL, output_sha256 = NULL,"
                       f" claimed_seconds = {_REACHED}"
                       " WHERE id = ?", (now, now, row["id"]))
            return self.get_by_id(row["id"])

    def twin(self, job: Job) -> Job | None:
        """A done job of another path with this job's size, mtime and inode, whose
        subtitle was written: perhaps the same file under a second name (a hard link).
        Never a client's request: its subtitle is in the language and task it asked for."""
        rows = self._query(
            "SELECT * FROM jobs WHERE id != ? AND state = 'done' AND size = ? AND"
            " mtime_ns = ? AND inode = ? AND written_path IS NOT NULL AND request IS NULL"
            " ORDER BY id",
            (job.id, job.fingerprint.size, job.fingerprint.mtime_ns, job.fingerprint.inode))
        return _job(rows[0]) if rows else None

    def get_by_id(self, job_id: int) -> Job | None:
        rows = self._query("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _job(rows[0]) if rows else None

    def get(self, path: Path) -> Job | None:
        rows = self._query("SELECT * FROM jobs WHERE path = ?", (_key(path),))
        return _job(rows[0]) if rows else None

    def set_progress(self, job: Job, done_seconds: float, total_seconds: float | None) -> None:
        with self._transaction() as db:
            db.execute("UPDATE jobs SET progress_seconds = ?, total_seconds = ? WHERE id = ?",
                       (done_seconds, total_seconds, job.id))

    def progress(self, job: Job) -> tuple[float | None, float | None]:
        rows = self._query("SELECT progress_seconds, total_seconds FROM jobs WHERE id = ?",
                           (job.id,))
        return (rows[0][0], rows[0][1]) if rows else (None, None)

    def add_checkpoint(self, job: Job, decoded_seconds: float, data: str) -> None:
        """Append one checkpoint: the file is decoded up to `decoded_seconds` (source time);
        `data` (opaque JSON text) holds what this batch added. One fsynced transaction.
        Only the claim's holder may add: for a job not `running` at job.fingerprint
        (released, ended, forgotten, file changed) it is refused with a warning, so ended
        jobs keep no checkpoints and `recover` judges the crashed claim by its own."""
        with self._transaction() as db:
            added = db.execute(
                "INSERT INTO checkpoints (job_id, seq, size, mtime_ns, inode,"
                " decoded_seconds, data, created) SELECT id, (SELECT COALESCE(MAX(seq), 0) + 1"
                " FROM checkpoints WHERE job_id = jobs.id), size, mtime_ns, inode, ?, ?, ?"
                " FROM jobs WHERE id = ? AND state = 'running' AND size = ? AND mtime_ns = ?"
                " AND inode = ?", (decoded_seconds, data, time.time(), job.id,
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

    def requeue_changed(self, job: Job, fingerprint: Fingerprint, not_before: float) -> None:
        """The file changed after it was queued: start over with its new fingerprint."""
        with self._transaction() as db:
            _drop_checkpoints(db, "id = ?", (job.id,))
            db.execute("UPDATE jobs SET size = ?, mtime_ns = ?, inode = ?, state = 'queued',"
                       f" attempts = 0, {_FRESH}, not_before = ?, updated = ? WHERE id = ?",
                       (fingerprint.size, fingerprint.mtime_ns, fingerprint.inode, not_before,
                        time.time(), job.id))

    def forget_queued(self, path: Path) -> int:
        """A path (or folder) moved away or deleted: drop its queued jobs."""
        with self._transaction() as db:
            inside, args = _inside(path)
            # `+state`: not the state index (every queued job), the path's ranges.
            where = f"+state = 'queued' AND {inside}"
            _drop_checkpoints(db, where, args)
            return db.execute(f"DELETE FROM jobs WHERE {where}", args).rowcount

    def finish(self, job: Job, state: Literal["done", "skipped"], result: Result | None,
               reason: str | None = None) -> None:
        values = (result.language, result.cue_count, result.audio_seconds,
                  result.wall_seconds, _key(result.output) if result.output else None) \
            if result else (None, None, None, None, None)
        # A subtitle written: the one `writing` noted, with the hash of what was written
        # (never read back: an edit made meanwhile must not pass for ours).
        wrote = state == "done" and result is not None and result.output is not None
        with self._transaction() as db:
            _drop_checkpoints(db, "id = ?", (job.id,))
            db.execute("UPDATE jobs SET state = ?, language = COALESCE(?, language),"
                       " cue_count = ?, audio_seconds = ?, wall_seconds = ?, output = ?,"
                       f" last_error = ?, error_class = NULL, {_FRESH}, updated = ?,"
                       " written_path = CASE WHEN ? THEN output ELSE written_path END,"
                       " written_sha256 = CASE WHEN ? THEN output_sha256 ELSE written_sha256"
                       " END, confidence = ? WHERE id = ?",
                       (state, *values, _text(reason), time.time(), wrote, wrote,
                        result.confidence if result else None, job.id))
            failpoints.hit("during-commit", job.path.name)

    def fail(self, job: Job, error: str, error_class: str, *, transient: bool,
             budget_seconds: float, backoff_seconds: float, backoff_max_seconds: float
             ) -> State:
        """Record a failure. A permanent one fails at once. A transient one gives the
        attempt back and waits a doubling backoff, until `budget_seconds` have passed since
        its first failure (dead). A retry keeps the checkpoints and resumes from them;
        failed and dead drop them (an explicit `retry` starts over)."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute("SELECT first_failure, failures FROM jobs WHERE id = ?",
                             (job.id,)).fetchone()
            first = now if row is None or row["first_failure"] is None else row["first_failure"]
            failures = 1 + (row["failures"] if row is not None else 0)
            state: State = "failed"
            delay = 0.0
            if transient:
                state = "queued" if now - first < budget_seconds else "dead"
                delay = min(backoff_max_seconds,
                            backoff_seconds * 2 ** min(failures - 1, 30))
            if state != "queued":
                _drop_checkpoints(db, "id = ?", (job.id,))
            refund = 1 if state == "queued" else 0
            db.execute("UPDATE jobs SET state = ?, last_error = ?, error_class = ?,"
                       " not_before = ?, updated = ?, first_failure = ?, failures = ?,"
                       " attempts = MAX(attempts - ?, 0),"
                       " force = CASE WHEN ? = 'queued' THEN force ELSE 0 END WHERE id = ?",
                       (state, _text(error), error_class, now + delay, now, first, failures,
                        refund, state, job.id))
        return state

    def defer(self, job: Job, error: str, error_class: str, not_before: float, *,
              sticky: bool = False) -> None:
        """The environment failed, not the file: back to the queue until `not_before`, the
        attempt given back, its checkpoints kept, the error noted for `status`. The time
        budget of its transient failures starts again (waiting for the world is not the
        file's time); `sticky` counts a GPU that needed a new process."""
        with self._transaction() as db:
            db.execute("UPDATE jobs SET state = 'queued', attempts = MAX(attempts - 1, 0),"
                       " last_error = ?, error_class = ?, not_before = ?, updated = ?,"
                       " first_failure = NULL, sticky_exits = sticky_exits + ?"
                       " WHERE id = ? AND state = 'running'",
                       (_text(error), error_class, not_before, time.time(), int(sticky),
                        job.id))

    def wake(self, folder: Path | None = None) -> int:
        """A pause ended: the files it held back (under `folder`, or all) may run now.
        Other waits (a transient failure's backoff, a changed file settling) stand."""
        inside, args = ("1", ()) if folder is None else _inside(folder)
        with self._transaction() as db:
            return db.execute(f"UPDATE jobs SET not_before = 0 WHERE state = 'queued'"
                              f" AND not_before > 0 AND error_class = 'EnvironmentFault'"
                              f" AND {inside}", args).rowcount

    def release(self, job: Job) -> None:
        """Put back a job abandoned at shutdown; the attempt does not count, and its
        checkpoints stay for the next start to resume from."""
        with self._transaction() as db:
            db.execute("UPDATE jobs SET state = 'queued', attempts = MAX(attempts - 1, 0),"
                       " updated = ? WHERE id = ? AND state = 'running'", (time.time(), job.id))

    def forget(self, job: Job) -> None:
        """The file is gone: nothing to do for it any more."""
        with self._transaction() as db:
            _drop_checkpoints(db, "id = ?", (job.id,))
            db.execute("DELETE FROM jobs WHERE id = ?", (job.id,))

    def moved(self, old: Path, new: Path, subtitle: Path) -> bool:
        """`old` was renamed to `new` and its subtitle is now `subtitle`: the done job
        follows the file (a job queued meanwhile for `new`, by an event, gives way to it).
        False when `old` has no done job, or `new`'s is running."""
        with self._transaction() as db:
            row = db.execute("SELECT id, state FROM jobs WHERE path = ?", (_key(old),)).fetchone()
            other = db.execute("SELECT id, state FROM jobs WHERE path = ?",
                               (_key(new),)).fetchone()
            if row is None or row["state"] != "done" or \
                    (other is not None and other["state"] == "running"):
                return False
            if other is not None:
                _drop_checkpoints(db, "id = ?", (other["id"],))
                db.execute("DELETE FROM jobs WHERE id = ?", (other["id"],))
            db.execute("UPDATE jobs SET path = ?, output = ?, written_path = ?, updated = ?"
                       " WHERE id = ?", (_key(new), _key(subtitle), _key(subtitle),
                                         time.time(), row["id"]))
            return True

    def writing(self, job: Job, target: Path, cue_count: int, sha256: str) -> None:
        """Note, before the subtitle is written, where it goes and the hash of what it will
        hold: a crash after the rename but before `finish` is then recognised by
        `finish_written` instead of being redone, and the subtitle known for ours."""
        with self._transaction() as db:
            db.execute("UPDATE jobs SET output = ?, cue_count = ?, output_sha256 = ?,"
                       " updated = ? WHERE id = ?",
                       (_key(target), cue_count, sha256, time.time(), job.id))

    def finish_written(self) -> list[Path]:
        """After a crash: `running` jobs whose subtitle was written (renamed into place
        after `writing` was noted) are done. Returns their paths."""
        finished = []
        with self._transaction() as db:
            rows = db.execute("SELECT id, path, output, updated FROM jobs"
                              " WHERE state = 'running' AND output IS NOT NULL").fetchall()
            for row in rows:
                try:
                    written = _path(row["output"]).stat().st_mtime
                except OSError:
                    continue
                if written + 1.0 < row["updated"]:  # an older file of that name
                    continue
                _drop_checkpoints(db, "id = ?", (row["id"],))
                db.execute("UPDATE jobs SET state = 'done', last_error = NULL, force = 0,"
                           " error_class = NULL, updated = ?, written_path = output,"
                           " written_sha256 = output_sha256 WHERE id = ?",
                           (time.time(), row["id"]))
                finished.append(_path(row["path"]))
        return finished

    def recover(self, max_attempts: int) -> list[Path]:
        """After a crash: `running` jobs go back to the queue, or are dead-lettered when
        the crash has already used up their attempts. A job whose checkpoints reach further
        than at its claim was making progress, not killing the process: that crash does
        not count, and it is requeued whatever its attempts. Returns their paths."""
        now = time.time()
        with self._transaction() as db:
            paths = [_path(r[0]) for r in
                     db.execute("SELECT path FROM jobs WHERE state = 'running'")]
            db.execute("UPDATE jobs SET state = 'queued', attempts = MAX(attempts - 1, 0),"
                       " updated = ? WHERE state = 'running'"
                       f" AND {_REACHED} > COALESCE(claimed_seconds, 0)", (now,))
            _drop_checkpoints(db, "state = 'running' AND attempts >= ?", (max_attempts,))
            db.execute("UPDATE jobs SET state = 'dead', last_error = 'the process died while"
                       " working on it ' || attempts || ' times', error_class = 'Crash',"
                       " updated = ? WHERE state = 'running' AND attempts >= ?",
                       (now, max_attempts))
            db.execute("UPDATE jobs SET state = 'queued', updated = ? WHERE state = 'running'",
                       (now,))
        return paths

    def retry(self, path: Path | None = None, *, force: bool = False) -> int:
        """Requeue one file (any state but running), or every failed and dead one. A retry
        starts over: whatever checkpoints the file still has are dropped, because someone
        asking to redo a file should not get the old words back. `force` (one file) redoes
        it whatever subtitle it has in its language, and replaces that subtitle."""
        args: tuple[str | bytes, ...] = ()
        with self._transaction() as db:
            if path is None:
                where = "state IN ('failed', 'dead')"
            else:
                where, args = "path = ? AND state != 'running'", (_key(path),)
            _drop_checkpoints(db, where, args)
            cursor = db.execute(
                f"UPDATE jobs SET state = 'queued', attempts = 0, not_before = 0, {_FRESH},"
                f" priority = {PRIORITY_NEW}, force = ?, updated = ? WHERE {where}",
                (int(force and path is not None), time.time(), *args))
            return cursor.rowcount

    def counts(self) -> dict[str, int]:
        rows = self._query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        found = {r["state"]: r["n"] for r in rows}
        return {state: int(found.get(state, 0)) for state in STATES}

    def in_state(self, state: State, limit: int = 10) -> list[Job]:
        rows = self._query("SELECT * FROM jobs WHERE state = ? ORDER BY updated DESC LIMIT ?",
                           (state, limit))
        return [_job(r) for r in rows]

    def writable(self) -> bool:
        """Can a write transaction start? (For the health checks.)"""
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            return False
        return True

    def integrity_ok(self) -> bool:
        return bool(self._query("PRAGMA integrity_check")[0][0] == "ok")
