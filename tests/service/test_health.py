"""Liveness, readiness (and what happens when Redis goes away), and metrics."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from ninv.settings import Settings
from ninv.store import JobStore
from tests.fake_worker import FakeWorker
from tests.service.proxy import RedisProxy
from tests.service.test_workers import a_worker

pytestmark = pytest.mark.anyio

DEAD_REDIS = "redis://127.0.0.1:1/0"
MATRIX = {"matrix": [[1.0, 2.0], [3.0, 5.0]]}


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.mark.parametrize("backend", ["redis", "sqlite"], indirect=True)
async def test_healthz_and_readyz(client: httpx.AsyncClient, store: JobStore) -> None:
    health = await client.get("/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    # With no worker the API still takes jobs (200), but says that they would wait.
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "no workers" and ready.json()["workers"] == 0
    assert "ninv worker" in ready.json()["detail"]
    store.announce_worker(a_worker(), ttl_s=30)
    ready = await client.get("/readyz")
    assert (ready.status_code, ready.json()) == (
        200,
        {"status": "ready", "store": "ok", "broker": "ok", "workers": 1},
    )


async def test_redis_unreachable_is_a_quick_503(
    make_app: Callable[[Settings], FastAPI], make_settings: Callable[..., Settings]
) -> None:
    app = make_app(make_settings(redis_url=DEAD_REDIS))
    async with client_for(app) as client:
        assert (await client.get("/healthz")).status_code == 200
        for method, path, body in [
            ("GET", "/readyz", None),
            ("POST", "/invert", MATRIX),
            ("GET", "/jobs", None),
            ("GET", "/jobs/" + "0" * 32, None),
        ]:
            start = time.perf_counter()
            response = await client.request(method, path, json=body)
            elapsed = time.perf_counter() - start
            assert response.status_code == 503, (path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert int(response.headers["retry-after"]) > 0
            # A hang guard, not a speed test: the store's connect timeout is 1 s.
            assert elapsed < 5, (path, elapsed)
        ready = (await client.get("/readyz")).json()
        assert ready["checks"]["store"] != "ok" and ready["checks"]["broker"] != "ok"
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        assert "ninv_store_up 0.0" in metrics.text


async def test_recovers_when_redis_comes_back(
    make_app: Callable[[Settings], FastAPI], make_settings: Callable[..., Settings]
) -> None:
    with RedisProxy() as proxy:
        app = make_app(make_settings(redis_url=proxy.url))
        async with client_for(app) as client:
            assert (await client.post("/invert", json=MATRIX)).status_code == 202
            proxy.down()
            assert (await client.get("/readyz")).status_code == 503
            assert (await client.post("/invert", json=MATRIX)).status_code == 503
            proxy.up()
            # the first request on a stale pooled connection may still fail; then it recovers
            deadline = time.monotonic() + 5
            statuses = []
            while time.monotonic() < deadline:
                statuses.append((await client.post("/invert", json=MATRIX)).status_code)
                if statuses[-1] == 202:
                    break
            assert statuses[-1] == 202, statuses
            assert len(statuses) <= 2, statuses
            assert (await client.get("/readyz")).status_code == 200


async def test_metrics(client: httpx.AsyncClient, store: JobStore) -> None:
    job_id = (await client.post("/invert", json=MATRIX)).json()["id"]
    await client.post("/invert", json=MATRIX)
    await client.get("/jobs/" + "f" * 32)
    FakeWorker(store).run(job_id, np.eye(2))
    text = (await client.get("/metrics")).text
    assert 'ninv_http_requests_total{method="POST",route="/invert",status="202"} 2.0' in text
    assert 'ninv_http_requests_total{method="GET",route="/jobs/{job_id}",status="404"} 1.0' in text
    assert (
        'ninv_http_request_duration_seconds_count{method="POST",route="/invert",status="202"}'
        in text
    )
    assert 'ninv_jobs{status="queued"} 1.0' in text
    assert 'ninv_jobs{status="succeeded"} 1.0' in text
    assert "ninv_queue_depth 1.0" in text
    assert 'ninv_solve_duration_seconds_count{method="adam"} 1.0' in text
    assert 'ninv_solve_duration_seconds_sum{method="adam"} 1.25' in text
    assert "ninv_store_up 1.0" in text


async def test_unmatched_paths_share_one_label(client: httpx.AsyncClient) -> None:
    for path in ("/a", "/b/c", "/d"):
        await client.get(path)
    text = (await client.get("/metrics")).text
    assert 'ninv_http_requests_total{method="GET",route="unmatched",status="404"} 3.0' in text


async def test_several_apps_in_one_process(
    make_app: Callable[[Settings], FastAPI], settings: Settings
) -> None:
    for _ in range(2):
        async with client_for(make_app(settings)) as client:
            assert (await client.get("/metrics")).status_code == 200
