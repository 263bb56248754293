"""Fixtures shared by every test folder: real Redis settings and real worker processes."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ninv.settings import Settings
from ninv.store import JobStore, open_store
from tests.helpers import WorkerProcess, drop_redis_prefix, redis_settings


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A fresh Redis key prefix; every key under it is deleted afterwards."""
    prefix = f"ninv-test-{uuid.uuid4().hex}"
    yield prefix
    drop_redis_prefix(prefix)


@pytest.fixture
def settings() -> Iterator[Settings]:
    """Settings on the real Redis at 127.0.0.1:6379 under a fresh prefix, removed afterwards."""
    s = redis_settings(lease_s=2.0, progress_every_s=0.1)
    yield s
    drop_redis_prefix(s.redis_prefix)


@pytest.fixture
def store(settings: Settings) -> Iterator[JobStore]:
    s = open_store(settings)
    yield s
    s.close()


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real worker processes; every one is stopped at teardown."""
    started: list[WorkerProcess] = []

    def start(settings: Settings, *, ready: bool = True) -> WorkerProcess:
        worker = WorkerProcess(settings, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        if ready:
            worker.wait_ready()
        return worker

    yield start
    for worker in started:
        worker.stop()
