"""The embedded job store: SQLite in the state directory, for a single host."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from subtitled.store.base import JobStore, check_version

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
    confidence REAL,
    host TEXT,
    lease INTEGER NOT NULL DEFAULT 0,
    lease_expires REAL,
    lease_renewed REAL,
    quality TEXT,
    beside TEXT,
    quiet TEXT,
    kept_lease INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_next ON jobs (state, priority DESC, id);
CREATE INDEX IF NOT EXISTS jobs_recent ON jobs (state, updated);
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


def _leases(db: sqlite3.Connection) -> None:
    _add_columns(db, [("host", "TEXT"), ("lease", "INTEGER NOT NULL DEFAULT 0"),
                      ("lease_expires", "REAL"), ("lease_renewed", "REAL")])


def _recent_index(db: sqlite3.Connection) -> None:
    db.execute("CREATE INDEX IF NOT EXISTS jobs_recent ON jobs (state, updated)")


def _quality(db: sqlite3.Connection) -> None:
    _add_columns(db, [("quality", "TEXT")])
    db.execute(_FLAGGED_INDEX)


def _beside(db: sqlite3.Connection) -> None:
    _add_columns(db, [("beside", "TEXT")])


def _quiet(db: sqlite3.Connection) -> None:
    _add_columns(db, [("quiet", "TEXT")])


def _kept_lease(db: sqlite3.Connection) -> None:
    _add_columns(db, [("kept_lease", "INTEGER")])


_FLAGGED_INDEX = ("CREATE INDEX IF NOT EXISTS jobs_flagged ON jobs (updated)"
                  " WHERE quality IS NOT NULL")


# The schema's history: migration i takes a database from version i to i + 1, inside one
# transaction. A change to the schema is a new function at the end (and `_SCHEMA` shows
# the result for new databases); the version a database is at lives in SQLite's
# `user_version`. tests/data/jobs-schema-*.sqlite3 are databases made by each release.
_MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _columns_of_unversioned_releases,  # 0 → 1
    _forced_redo,  # 1 → 2: `subtitled retry --force`
    _requests,  # 2 → 3: work a client asked for over HTTP (Bazarr), and its answer
    _leases,  # 3 → 4: claims as leases, with the host that holds one (a shared store)
    # 4 → 5: the files done last (the web page's history, the ETA's realtime factor) read
    # from an index, not by sorting every done row
    _recent_index,
    # 5 → 6: why a file's subtitle is likely bad (subtitled.quality), and those files
    # found from an index
    _quality,
    # 6 → 7: the hashes of the subtitles a job writes beside its tracked one (the other
    # formats, a translation), to tell ours from edited ones there too
    _beside,
    # 7 → 8: the dialogue's level of a file found quiet (subtitled.levels)
    _quiet,
    # 8 → 9: the lease whose attempt another host's claim kept when it took the expired
    # lease for a crash, for its host to give back (`give_back`)
    _kept_lease,
)
SCHEMA_VERSION = len(_MIGRATIONS)


def _connect(target: str) -> sqlite3.Connection:
    db = sqlite3.connect(target, timeout=30, isolation_level=None, check_same_thread=False,
                         uri=target.startswith("file:"))
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA busy_timeout=30000")
    return db


class SqliteStore(JobStore):
    """The embedded store: one file in the state directory (WAL, synchronous=FULL), used
    by one host. `read_only` opens an existing database for reading alone (`subtitled
    status`): no schema is written and a user who may only read it can."""

    _UNINDEXED = "+"  # SQLite's way to keep a column's index out of a plan

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
        # On a column that an older database has only once migrated: made after that.
        self._db.execute(_FLAGGED_INDEX)

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
        check_version(self.path, version, SCHEMA_VERSION, read_only=read_only,
                      newer_fix="upgrade subtitled, or point state_dir elsewhere",
                      stage="state_dir")

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

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    def _encode(self, path: Path) -> str | bytes:
        """SQLite text must be UTF-8; a name that is not (Latin-1 from an old share) is
        stored as its bytes, so every file the filesystem can name has a row."""
        text = str(path)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return os.fsencode(path)
        return text

    def _range_keys(self, low: bytes, high: bytes) -> list[tuple[Any, Any]]:
        """Names stored as bytes compare as bytes; names stored as text compare as UTF-8,
        byte by byte, too."""
        try:
            return [(low, high), (low.decode("utf-8"), high.decode("utf-8"))]
        except UnicodeDecodeError:  # then nothing under it is stored as text
            return [(low, high)]

    def dump(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Every job row and every checkpoint row, by column (`migrate-db`)."""
        jobs = [dict(row) for row in self._query("SELECT * FROM jobs ORDER BY id")]
        checkpoints = [dict(row) for row in self._query("SELECT * FROM checkpoints")]
        return jobs, checkpoints

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
