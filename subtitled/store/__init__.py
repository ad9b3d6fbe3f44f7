"""The durable job store: one row per media file. SQLite in the state directory is the
embedded default; PostgreSQL (`state.database`) lets several hosts share one library."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from subtitled.config import StateSettings
from subtitled.store.base import JobStore
from subtitled.store.model import (
    PRIORITY_BACKFILL,
    PRIORITY_NEW,
    RENEWALS_PER_LEASE,
    STATES,
    Fingerprint,
    Job,
    LeaseLost,
    LeaseUnrenewed,
    Result,
    State,
    file_sha256,
    text_sha256,
)
from subtitled.store.sqlite import SCHEMA_VERSION, SqliteStore


def _errors() -> tuple[type[Exception], ...]:
    try:
        import psycopg
    except ImportError:  # PostgreSQL is optional: `pip install subtitled[postgresql]`
        return (sqlite3.Error,)
    return (sqlite3.Error, psycopg.Error)


DATABASE_NAME = "jobs.sqlite3"  # the SQLite store, in the state directory


def open_store(state: StateSettings, state_dir: Path, *, read_only: bool = False) -> JobStore:
    """The store the configuration names: PostgreSQL at `state.database`, else SQLite in
    the state directory."""
    if state.database is None:
        return SqliteStore(state_dir / DATABASE_NAME, read_only=read_only)
    from subtitled.store.postgres import PostgresStore

    return PostgresStore(state.database, host=state.host_name,
                         lease_seconds=state.lease_seconds, path_map=state.path_map,
                         read_only=read_only)


# What a failing database raises (a full disk, a server that cannot be reached): the
# daemon pauses on these instead of ending.
STORE_ERRORS = _errors()

__all__ = ["DATABASE_NAME", "PRIORITY_BACKFILL", "PRIORITY_NEW", "RENEWALS_PER_LEASE",
           "SCHEMA_VERSION", "STATES", "STORE_ERRORS", "Fingerprint", "Job", "JobStore",
           "LeaseLost", "LeaseUnrenewed", "Result", "SqliteStore", "State", "file_sha256",
           "open_store", "text_sha256"]
