"""Fixtures for the API tests: the app in-process (httpx over ASGI) on a real store.

Redis at 127.0.0.1:6379 under a unique key prefix (deleted afterwards), or SQLite in tmp_path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ninv.settings import Settings
from ninv.store import JobStore
from service import create_app
from tests.helpers import REDIS_URL


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["redis"])
def backend(request: pytest.FixtureRequest) -> str:
    """The store the app runs on; tests of the core flow widen this to SQLite too."""
    return str(request.param)


@pytest.fixture
def make_settings(backend: str, redis_prefix: str, tmp_path: Path) -> Callable[..., Settings]:
    """Settings for the chosen store; keyword arguments override fields."""

    def make(**overrides: Any) -> Settings:
        if backend == "redis":
            base: dict[str, Any] = {"redis_url": REDIS_URL, "redis_prefix": redis_prefix}
        else:
            base = {"redis_url": None, "data_dir": tmp_path / "state"}
        return Settings(**{**base, **overrides})

    return make


@pytest.fixture
def make_app() -> Iterator[Callable[[Settings], FastAPI]]:
    """Build apps; each closes its store and Celery app at teardown (no lifespan runs here)."""
    apps: list[FastAPI] = []

    def make(settings: Settings) -> FastAPI:
        app = create_app(settings)
        app.state.sse.poll_s = 0.02
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.state.resources.close()


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def app(make_app: Callable[[Settings], FastAPI], settings: Settings) -> FastAPI:
    return make_app(settings)


@pytest.fixture
def store(app: FastAPI) -> JobStore:
    """The app's own store, to drive jobs as a worker would."""
    store: JobStore = app.state.resources.store
    return store


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
