"""The job's life over HTTP on a real store (Redis, and SQLite for the core flow)."""

from __future__ import annotations

import io
from typing import Any

import httpx
import numpy as np
import pytest

from ninv.jobs import batch_key
from ninv.npy import to_npy
from ninv.schemas import Job, JobList, JobStatus, Result, SolveOptions
from ninv.store import JobStore
from tests.fake_worker import FakeWorker, heartbeat

pytestmark = pytest.mark.anyio

both_stores = pytest.mark.parametrize("backend", ["redis", "sqlite"], indirect=True)


async def submit(client: httpx.AsyncClient, matrix: Any = None, **options: Any) -> dict[str, Any]:
    body = {"matrix": [[2.0, 1.0], [0.0, 4.0]] if matrix is None else matrix, **options}
    response = await client.post("/invert", json=body)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


@both_stores
async def test_core_flow(client: httpx.AsyncClient, store: JobStore) -> None:
    matrix = [[2.0, 1.0], [0.0, 4.0]]
    response = await client.post(
        "/invert", json={"matrix": matrix, "method": "newton-schulz", "dtype": "float64"}
    )
    assert response.status_code == 202
    job = Job.model_validate(response.json())
    assert response.headers["location"] == f"/jobs/{job.id}"
    assert response.headers["retry-after"] == "1"
    assert job.status == JobStatus.queued
    assert (job.n, job.batch, job.input_dtype) == (2, None, "float64")
    assert job.options.method == "newton-schulz"
    assert len(job.id) == 32 and int(job.id, 16) >= 0

    record = store.get(job.id)
    assert record is not None and record.owner == "anonymous"
    assert record.batch_key == batch_key(job.options, 2, None, batch_max_n=64)
    stored = store.load_matrices([job.id])[0]
    assert stored is not None
    np.testing.assert_array_equal(np.load(io.BytesIO(stored)), np.array(matrix))

    pending = await client.get(f"/jobs/{job.id}/result")
    assert pending.status_code == 409
    assert pending.json()["job_status"] == "queued"

    inverse = np.linalg.inv(np.array(matrix))
    FakeWorker(store).run(job.id, inverse, reason="converged")

    got = Job.model_validate((await client.get(f"/jobs/{job.id}")).json())
    assert got.status == JobStatus.succeeded
    assert got.progress is not None and got.progress.iteration == 1000
    assert got.summary is not None and got.summary.converged

    result = Result.model_validate((await client.get(f"/jobs/{job.id}/result")).json())
    np.testing.assert_allclose(np.array(result.inverse), inverse)
    assert result.summary.reason == "converged"

    raw = await client.get(f"/jobs/{job.id}/result", headers={"Accept": "application/x-npy"})
    assert raw.headers["content-type"] == "application/x-npy"
    np.testing.assert_array_equal(np.load(io.BytesIO(raw.content)), inverse)

    history = (await client.get(f"/jobs/{job.id}/history")).json()
    assert [p["iteration"] for p in history["points"]] == [10, 100, 1000]

    listed = JobList.model_validate((await client.get("/jobs")).json())
    assert [j.id for j in listed.jobs] == [job.id]

    assert (await client.delete(f"/jobs/{job.id}")).status_code == 204
    assert (await client.get(f"/jobs/{job.id}")).status_code == 404
    assert store.get(job.id) is None


@both_stores
async def test_npy_body_with_query_options(client: httpx.AsyncClient, store: JobStore) -> None:
    matrix = np.random.default_rng(0).standard_normal((3, 5, 5)).astype(np.float32)
    response = await client.post(
        "/invert",
        content=to_npy(matrix),
        headers={"Content-Type": "application/x-npy"},
        params={
            "method": "adam",
            "max_iter": "500",
            "tol": "1e-6",
            "lr_schedule": "[[0, 0.05], [100, 0.01]]",
            "seed": "7",
            "stall_window": "0",
            "aux": "false",
        },
    )
    assert response.status_code == 202, response.text
    job = Job.model_validate(response.json())
    assert (job.n, job.batch, job.input_dtype) == (5, 3, "float32")
    assert job.options == SolveOptions(
        method="adam",
        max_iter=500,
        tol=1e-6,
        lr_schedule=[(0, 0.05), (100, 0.01)],
        seed=7,
        stall_window=0,
        aux=False,
    )
    stored = store.load_matrices([job.id])[0]
    assert stored is not None
    loaded = np.load(io.BytesIO(stored))
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, matrix)
    record = store.get(job.id)
    assert record is not None and record.batch_key is None  # a batch input never batches


async def test_integer_npy_is_stored_as_float64(client: httpx.AsyncClient, store: JobStore) -> None:
    matrix = np.array([[2, 1], [1, 3]], dtype=np.int32)
    response = await client.post(
        "/invert", content=to_npy(matrix), headers={"Content-Type": "application/x-npy"}
    )
    assert response.status_code == 202
    assert response.json()["input_dtype"] == "int32"
    stored = store.load_matrices([response.json()["id"]])[0]
    assert stored is not None and np.load(io.BytesIO(stored)).dtype == np.float64


async def test_json_batch(client: httpx.AsyncClient) -> None:
    job = await submit(client, [[[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [0.0, 2.0]]])
    assert (job["n"], job["batch"]) == (2, 2)


async def test_idempotency_key(client: httpx.AsyncClient, store: JobStore) -> None:
    body = {"matrix": [[1.0, 2.0], [3.0, 4.0]], "method": "cg"}
    headers = {"Idempotency-Key": "order-42"}
    first = await client.post("/invert", json=body, headers=headers)
    again = await client.post("/invert", json=body, headers=headers)
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]

    other = await client.post("/invert", json={**body, "method": "adam"}, headers=headers)
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert "Idempotency-Key" in other.json()["detail"]

    fresh = await client.post("/invert", json=body, headers={"Idempotency-Key": "order-43"})
    assert fresh.status_code == 202 and fresh.json()["id"] != first.json()["id"]
    assert store.count_by_status()[JobStatus.queued] == 2


async def test_result_of_failed_job(client: httpx.AsyncClient, store: JobStore) -> None:
    job = await submit(client)
    worker = FakeWorker(store)
    worker.claim(job["id"])
    worker.fail(job["id"], "diverged: loss is nan")
    response = await client.get(f"/jobs/{job['id']}/result")
    assert response.status_code == 409
    problem = response.json()
    assert problem["job_status"] == "failed"
    assert "diverged: loss is nan" in problem["detail"]
    assert (await client.get(f"/jobs/{job['id']}")).json()["error"] == "diverged: loss is nan"


async def test_non_finite_inverse_is_null_in_json(
    client: httpx.AsyncClient, store: JobStore
) -> None:
    job = await submit(client)
    worker = FakeWorker(store)
    worker.claim(job["id"])
    worker.succeed(job["id"], np.array([[np.nan, 1.0], [np.inf, 2.0]]))
    result = (await client.get(f"/jobs/{job['id']}/result")).json()
    assert result["inverse"] == [[None, 1.0], [None, 2.0]]


async def test_cancel(client: httpx.AsyncClient, store: JobStore) -> None:
    queued = await submit(client)
    response = await client.post(f"/jobs/{queued['id']}/cancel")
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    again = await client.post(f"/jobs/{queued['id']}/cancel")
    assert again.status_code == 409
    assert again.json()["job_status"] == "cancelled"

    running = await submit(client)
    worker = FakeWorker(store)
    worker.claim(running["id"])
    flagged = await client.post(f"/jobs/{running['id']}/cancel")
    assert flagged.status_code == 202
    assert flagged.json()["status"] == "running"
    assert flagged.json()["cancel_requested"] is True
    # the worker stops and keeps its best W: the result is fetchable
    assert heartbeat(store, running["id"], worker.name, worker.lease_s).cancel_requested
    worker.cancelled(running["id"], best=np.eye(2))
    result = await client.get(f"/jobs/{running['id']}/result")
    assert result.status_code == 200
    assert result.json()["summary"]["reason"] == "cancelled"


async def test_delete_unfinished_is_409(client: httpx.AsyncClient) -> None:
    job = await submit(client)
    response = await client.delete(f"/jobs/{job['id']}")
    assert response.status_code == 409
    assert response.json()["job_status"] == "queued"


async def test_list_newest_first_filter_and_cursor(
    client: httpx.AsyncClient, store: JobStore
) -> None:
    ids = [(await submit(client))["id"] for _ in range(5)]
    FakeWorker(store).claim(ids[1])

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = JobList.model_validate((await client.get("/jobs", params=params)).json())
        assert len(page.jobs) <= 2
        seen += [job.id for job in page.jobs]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ids[::-1]

    running = (await client.get("/jobs", params={"status": "running"})).json()
    assert [job["id"] for job in running["jobs"]] == [ids[1]]


async def test_enqueue_failure_is_503_and_the_job_is_kept(
    make_app: Any, settings: Any, store: JobStore
) -> None:
    """Stored but not sent: 503 naming the job; a retry with the key sends it again."""
    from celery import Celery

    from ninv.queue import make_celery
    from service import create_app

    dead = make_celery(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    broken = create_app(settings, store=store, celery=dead)
    body = {"matrix": [[1.0, 2.0], [3.0, 5.0]]}
    headers = {"Idempotency-Key": "retry-me"}
    try:
        transport = httpx.ASGITransport(app=broken)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.post("/invert", json=body, headers=headers)
    finally:
        dead.close()
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "retry-after" in response.headers
    job_id = response.json()["job_id"]
    record = store.get(job_id)
    assert record is not None and record.status == JobStatus.queued
    assert job_id in store.queued_ids()  # what a worker re-enqueues when it starts

    healthy: Celery = make_app(settings).state.resources.celery
    transport = httpx.ASGITransport(app=create_app(settings, store=store, celery=healthy))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        again = await client.post("/invert", json=body, headers=headers)
    assert again.status_code == 200
    assert again.json()["id"] == job_id


@both_stores
@pytest.mark.parametrize("cursor", ["garbage", "-1.x", "9" * 100 + ".abc"])
async def test_foreign_cursor_is_422_or_an_empty_page(
    client: httpx.AsyncClient, cursor: str
) -> None:
    await submit(client)
    response = await client.get("/jobs", params={"cursor": cursor})
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert response.json()["errors"][0]["loc"] == ["query", "cursor"]
