"""Fixtures shared by every test folder: real Redis settings, real worker processes, apps served
by uvicorn over real sockets."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

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
    s = redis_settings(lease_s=5.0, progress_every_s=0.1)
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


@pytest.fixture
def serve() -> Iterator[Callable[[FastAPI], str]]:
    """Serve apps with uvicorn in threads of this process; return each one's base URL."""
    running: dict[int, tuple[str, uvicorn.Server, threading.Thread]] = {}

    def start(app: FastAPI) -> str:
        if id(app) in running:
            return running[id(app)][0]
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(
            app, lifespan="off", log_level="warning", timeout_graceful_shutdown=1
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        running[id(app)] = (url, server, thread)
        return url

    yield start
    for _, server, thread in running.values():
        server.should_exit = True
        thread.join(10)
