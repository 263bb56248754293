"""Item 2 of issue 16: a Redis at its maxmemory (noeviction) refuses writes. The API answers
503 problem+json with Retry-After and is not ready; a worker solving a job keeps its result
until it can store it; a worker that starts while Redis is full survives; all of it resumes on
its own once Redis has room again."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import httpx
import numpy as np

from ninv.schemas import JobStatus
from ninv.store import open_store
from tests.faults.conftest import OwnRedis
from tests.helpers import ServerProcess, WorkerProcess, submit, wait_finished, wait_for

PROBLEM_JSON = "application/problem+json"


def slow_job() -> dict[str, object]:
    """A job that takes a few seconds on a CPU: adam on an ill-conditioned 64x64 matrix."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((64, 64)))
    x = q @ np.diag(np.logspace(0, -4, 64)) @ q.T
    return {"matrix": x.tolist(), "max_iter": 150_000, "tol": 1e-30, "dtype": "float64"}


def test_a_full_redis_is_a_503_and_a_solved_result_waits_for_room(
    own_redis: OwnRedis,
    start_api: Callable[..., ServerProcess],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    # Heartbeats fail while Redis is full: a lease longer than the test keeps the sweeper from
    # requeueing the job meanwhile, so the kept result, not a second run, is what ends it.
    settings = own_redis.settings(lease_s=60.0)
    api = start_api(settings)
    worker = start_worker(settings)
    store = open_store(settings)
    try:
        slow = httpx.post(f"{api.url}/invert", json=slow_job(), timeout=10).json()["id"]
        wait_for(
            lambda: (job := store.get(slow)) is not None and job.progress is not None,
            timeout=30,
            what="the slow job to report progress",
        )

        own_redis.fill()
        refused = httpx.post(f"{api.url}/invert", json={"matrix": [[3.0]]}, timeout=10)
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"] == PROBLEM_JSON
        assert int(refused.headers["retry-after"]) > 0
        assert "full" in refused.json()["detail"]
        ready = httpx.get(f"{api.url}/readyz", timeout=10)
        assert ready.status_code == 503
        assert "full" in ready.json()["detail"]
        wait_for(
            lambda: "results not stored yet" in worker.log_path.read_text(),
            timeout=60,
            what="the slow job to finish solving while Redis is full",
        )

        own_redis.free()
        done = wait_finished(store, slow, timeout=30)
        assert done.status == JobStatus.succeeded
        assert done.attempts == 1  # the result kept in memory was stored, not solved again
        assert httpx.get(f"{api.url}/readyz", timeout=10).status_code == 200
        after = httpx.post(f"{api.url}/invert", json={"matrix": [[4.0]]}, timeout=10)
        assert after.status_code == 202
        assert wait_finished(store, after.json()["id"], timeout=30).status == JobStatus.succeeded
        assert worker.proc.poll() is None
    finally:
        store.close()


def test_a_worker_survives_a_delivery_that_redis_refuses(
    own_redis: OwnRedis, start_worker: Callable[..., WorkerProcess]
) -> None:
    """An idle worker takes a waiting message when Redis is full: kombu cannot record the
    delivery (OOM). That used to stop the worker for good; now it reconnects until Redis has
    room, and the job, whose message was lost, runs through the outbox."""
    settings = own_redis.settings(requeue_after_s=1.0)
    worker = start_worker(settings)
    store = open_store(settings)
    try:
        os.killpg(worker.proc.pid, signal.SIGSTOP)  # idle, so that a message waits for it
        try:
            job = submit(store, settings, np.eye(2) * 2.0, method="exact")
            own_redis.fill()
        finally:
            os.killpg(worker.proc.pid, signal.SIGCONT)
        wait_for(
            lambda: "used memory > 'maxmemory'" in worker.log_path.read_text(),
            timeout=30,
            what="the worker to meet the full Redis",
        )
        time.sleep(2)  # time in which the worker used to exit
        assert worker.proc.poll() is None, worker.log_path.read_text()[-3000:]

        own_redis.free()
        assert wait_finished(store, job.id, timeout=45).status == JobStatus.succeeded
        assert worker.proc.poll() is None
    finally:
        store.close()
