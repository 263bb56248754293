"""The job store: one interface, with Redis and SQLite (embedded default) implementations."""

from __future__ import annotations

from ninv.settings import Settings
from ninv.store._base import (
    Beat,
    Created,
    Heartbeat,
    IdempotencyConflict,
    JobNotFound,
    JobStore,
    NotFinished,
    Outcome,
    StoreError,
    StoreFull,
    StoreUnavailable,
    TooManyActive,
)

__all__ = [
    "Beat",
    "Created",
    "Heartbeat",
    "IdempotencyConflict",
    "JobNotFound",
    "JobStore",
    "NotFinished",
    "Outcome",
    "StoreError",
    "StoreFull",
    "StoreUnavailable",
    "TooManyActive",
    "open_store",
]


def open_store(settings: Settings, *, durable: bool = True) -> JobStore:
    """The store the settings ask for: Redis when NINV_REDIS_URL is set, else SQLite.

    `durable=False` is for workers: their SQLite commits do not wait for the disk (see
    SqliteStore); Redis's persistence is the operator's choice either way.
    """
    if settings.redis_url:
        from ninv.store._redis import RedisStore

        return RedisStore.from_url(
            settings.redis_url, prefix=settings.redis_prefix, retention_s=settings.retention_s
        )
    from ninv.store._sqlite import SqliteStore

    return SqliteStore(
        settings.data_dir / "jobs.sqlite3", retention_s=settings.retention_s, durable=durable
    )
