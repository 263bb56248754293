"""Fixtures for the client tests: the real app in-process on a real store (Redis, own prefix).

The blocking Client talks to the app served by uvicorn in a thread of this process (real sockets,
real streaming; starlette's TestClient is deprecated with httpx); the AsyncClient talks to it
through httpx.ASGITransport.

No worker runs here: `FakeWorker` (tests/fake_worker.py) drives jobs through the app's own store
as a worker does (claim, heartbeat with progress and history, finish with the inverse as `.npy`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from client import Client
from ninv.settings import Settings
from ninv.store import JobStore
from tests.fake_worker import FakeWorker
from tests.helpers import REDIS_URL


def well_conditioned(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n)) + n * np.eye(n)


@pytest.fixture
def make_app(redis_prefix: str) -> Iterator[Callable[..., FastAPI]]:
    """Build apps on the real Redis store under this test's prefix; closed at teardown."""
    from service.app import create_app

    apps: list[FastAPI] = []

    def make(**overrides: Any) -> FastAPI:
        fields: dict[str, Any] = {"redis_url": REDIS_URL, "redis_prefix": redis_prefix}
        settings = Settings(**{**fields, **overrides})
        app = create_app(settings)
        app.state.sse.poll_s = 0.02
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.state.resources.close()


@pytest.fixture
def app(make_app: Callable[..., FastAPI]) -> FastAPI:
    return make_app()


@pytest.fixture
def store(app: FastAPI) -> JobStore:
    """The app's own store."""
    store: JobStore = app.state.resources.store
    return store


@pytest.fixture
def worker(store: JobStore) -> FakeWorker:
    return FakeWorker(store)


@pytest.fixture
def make_client(serve: Callable[[FastAPI], str]) -> Iterator[Callable[..., Client]]:
    """Clients of apps served in-process; closed at teardown."""
    made: list[Client] = []

    def make(app: FastAPI, *, api_key: str | None = None, **kwargs: Any) -> Client:
        kwargs.setdefault("backoff", 0.01)
        client = Client(serve(app), api_key=api_key, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def ninv(app: FastAPI, make_client: Callable[..., Client]) -> Client:
    return make_client(app)


class Relay(httpx.BaseTransport):
    """A transport that passes requests on through another httpx.Client, with a hook
    that may break a request before or after the app sees it: how the tests cut connections."""

    def __init__(
        self,
        target: httpx.Client,
        hook: Callable[[httpx.Request, int], str | None] = lambda request, count: None,
    ) -> None:
        self.target = target
        self.hook = hook
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        action = self.hook(request, len(self.requests))
        if action == "refuse":
            raise httpx.ConnectError("connection refused (test)", request=request)
        request.read()
        answer = self.target.request(
            request.method, str(request.url), headers=request.headers, content=request.content
        )
        if action == "drop-answer":
            raise httpx.ReadError("connection reset (test)", request=request)
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


class AsyncRelay(httpx.AsyncBaseTransport):
    """Relay's async twin, in front of httpx.ASGITransport."""

    def __init__(
        self,
        app: FastAPI,
        hook: Callable[[httpx.Request, int], str | None] = lambda request, count: None,
    ) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.hook = hook
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        action = self.hook(request, len(self.requests))
        if action == "refuse":
            raise httpx.ConnectError("connection refused (test)", request=request)
        response = await self.inner.handle_async_request(request)
        if action == "drop-answer":
            await response.aread()
            raise httpx.ReadError("connection reset (test)", request=request)
        return response


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
