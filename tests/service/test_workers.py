"""What the API says about workers: /workers, a queued job's notice, CUDA jobs no worker can run.

Workers are announced through the app's own store, exactly as a worker's Presence thread does
(tests/worker/test_worker_process.py checks that real workers announce themselves).
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from ninv.jobs import utcnow
from ninv.schemas import WorkerInfo
from ninv.store import JobStore
from tests.helpers import npy_bytes

pytestmark = pytest.mark.anyio

MATRIX = [[4.0, 7.0], [2.0, 6.0]]


@pytest.fixture(autouse=True)
def fresh_workers(app: FastAPI) -> None:
    """Every answer reads the store's workers afresh (the app may reuse them for 1 s)."""
    app.state.resources.workers_max_age_s = 0.0


def a_worker(device: str = "cpu", *, cuda_devices: int = 0, host: str = "box") -> WorkerInfo:
    now = utcnow()
    return WorkerInfo(
        id=f"{host}:7:{device}",
        hostname=host,
        pid=7,
        device=device,
        cuda_devices=cuda_devices,
        version="0.1.0",
        torch_version="2.13.0",
        started_at=now,
        last_seen=now,
    )


async def test_workers_lists_the_live_ones(client: httpx.AsyncClient, store: JobStore) -> None:
    assert (await client.get("/workers")).json() == {"workers": []}
    store.announce_worker(a_worker("cuda:0", cuda_devices=2, host="gpu1"), ttl_s=30)
    store.announce_worker(a_worker(host="old"), ttl_s=30)
    store.forget_worker("old:7:cpu")
    workers = (await client.get("/workers")).json()["workers"]
    assert [(w["device"], w["hostname"], w["cuda_devices"]) for w in workers] == [
        ("cuda:0", "gpu1", 2)
    ]
    assert {"version", "torch_version", "last_seen", "started_at"} <= set(workers[0])


async def test_a_queued_job_says_when_no_worker_can_run_it(
    client: httpx.AsyncClient, store: JobStore
) -> None:
    submitted = await client.post("/invert", json={"matrix": MATRIX})
    assert submitted.status_code == 202
    notice = submitted.json()["notice"]
    assert "no worker is running" in notice and "ninv worker" in notice
    job_id = submitted.json()["id"]
    assert (await client.get(f"/jobs/{job_id}")).json()["notice"] == notice

    store.announce_worker(a_worker(), ttl_s=30)
    assert (await client.get(f"/jobs/{job_id}")).json()["notice"] is None
    store.claim(job_id, "box:7:cpu", 30)
    store.forget_worker("box:7:cpu")
    # A running job is being served: no notice, whatever the workers are now.
    assert (await client.get(f"/jobs/{job_id}")).json()["notice"] is None


@pytest.mark.parametrize("as_npy", [False, True])
async def test_a_cuda_job_no_live_worker_can_run_is_refused(
    client: httpx.AsyncClient, store: JobStore, as_npy: bool
) -> None:
    store.announce_worker(a_worker(), ttl_s=30)
    if as_npy:
        answer = await client.post(
            "/invert",
            params={"device": "cuda:0"},
            content=npy_bytes(np.array(MATRIX)),
            headers={"Content-Type": "application/x-npy"},
        )
    else:
        answer = await client.post("/invert", json={"matrix": MATRIX, "device": "cuda:0"})
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert "no live worker has CUDA device cuda:0" in problem["detail"]
    assert "cpu on box" in problem["detail"] and "ninv worker --device cuda:0" in problem["detail"]
    assert problem["errors"][0]["loc"] == ["query" if as_npy else "body", "device"]
    assert (await client.get("/jobs")).json()["jobs"] == []  # nothing was stored

    # A worker that sees two GPUs runs cuda:1; cuda:2 is still refused.
    store.announce_worker(a_worker("cuda:0", cuda_devices=2, host="gpu1"), ttl_s=30)
    taken = await client.post("/invert", json={"matrix": MATRIX, "device": "cuda:1"})
    assert (taken.status_code, taken.json()["notice"]) == (202, None)
    refused = await client.post("/invert", json={"matrix": MATRIX, "device": "cuda:2"})
    assert refused.status_code == 422


async def test_with_no_worker_at_all_a_cuda_job_is_taken_and_flagged(
    client: httpx.AsyncClient,
) -> None:
    # Nothing is known about devices while no worker runs (a restart, say): the job waits.
    answer = await client.post("/invert", json={"matrix": MATRIX, "device": "cuda"})
    assert answer.status_code == 202
    assert "no worker is running" in answer.json()["notice"]
