"""The durable job store: one row per media file, in SQLite (the embedded default)."""

from subtitled.store.sqlite import (
    PRIORITY_BACKFILL,
    PRIORITY_NEW,
    SCHEMA_VERSION,
    STATES,
    Fingerprint,
    Job,
    JobStore,
    Result,
    State,
    file_sha256,
    text_sha256,
)

__all__ = ["PRIORITY_BACKFILL", "PRIORITY_NEW", "SCHEMA_VERSION", "STATES", "Fingerprint",
           "Job", "JobStore", "Result", "State", "file_sha256", "text_sha256"]
