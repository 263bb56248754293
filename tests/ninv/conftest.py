"""Fixtures for the job store contract suite: the real Redis at 127.0.0.1:6379, and SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ninv.store import JobStore
from ninv.store._redis import RedisStore
from ninv.store._sqlite import SqliteStore
from tests.helpers import REDIS_URL

RETENTION_S = 3600


@pytest.fixture
def redis_store(redis_prefix: str) -> Iterator[RedisStore]:
    store = RedisStore.from_url(REDIS_URL, prefix=redis_prefix, retention_s=RETENTION_S)
    yield store
    store.close()


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "jobs.sqlite3"


@pytest.fixture
def sqlite_store(sqlite_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(sqlite_path, retention_s=RETENTION_S)
    yield store
    store.close()


@pytest.fixture(params=["redis", "sqlite"])
def store(request: pytest.FixtureRequest) -> JobStore:
    """Each contract test runs once against each store."""
    return request.getfixturevalue(f"{request.param}_store")  # type: ignore[no-any-return]
