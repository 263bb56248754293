"""Broker messages per batch, not per job: a burst of queued jobs costs a handful of wake
messages, counted on a Redis of the test's own (every LPUSH is a message put on a queue), while
the store stays the record and a killed worker loses nothing."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import redis

from ninv.schemas import FINISHED, JobStatus
from ninv.settings import Settings
from ninv.store import JobStore, open_store
from tests.helpers import WorkerProcess, free_port, submit, wait_for

pytestmark = pytest.mark.e2e

BURST = 500


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[str]:
    """A redis-server for this test alone, so that its command counts are this test's."""
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        wait_for(lambda: _pings(client), timeout=10, what="redis-server to start")
        yield url
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def messages_sent(url: str) -> int:
    """Messages put on any queue so far: kombu publishes (and restores) with LPUSH; the store
    itself never uses it for curves this short."""
    stats = redis.Redis.from_url(url).info("commandstats")
    return int(stats.get("cmdstat_lpush", {}).get("calls", 0))


def burst(store: JobStore, settings: Settings, count: int) -> list[str]:
    rng = np.random.default_rng(0)
    return [
        submit(
            store,
            settings,
            rng.standard_normal((8, 8)) + 8 * np.eye(8),
            owner=f"key-{k % 3}",
            method="newton-schulz",
            dtype="float64",
        ).id
        for k in range(count)
    ]


def wait_all_finished(store: JobStore, ids: list[str], timeout: float) -> None:
    def done() -> bool:
        return all((job := store.get(i)) is not None and job.status in FINISHED for i in ids)

    wait_for(done, timeout=timeout, what=f"{len(ids)} jobs to finish")


def test_a_burst_of_jobs_costs_a_handful_of_messages(
    own_redis: str, start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = Settings(redis_url=own_redis, redis_prefix="wake", lease_s=5.0)
    store = open_store(settings)
    start_worker(settings)
    before = messages_sent(own_redis)

    ids = burst(store, settings, BURST)
    wait_all_finished(store, ids, timeout=120)

    sent = messages_sent(own_redis) - before
    assert 1 <= sent <= 5, f"{sent} broker messages for {BURST} jobs"
    jobs = [store.get(i) for i in ids]
    assert all(j is not None and j.status is JobStatus.succeeded for j in jobs)
    assert all(j is not None and j.attempts == 1 for j in jobs)
    store.close()


def test_a_worker_killed_mid_burst_loses_nothing(
    own_redis: str, start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = Settings(redis_url=own_redis, redis_prefix="kill", lease_s=5.0, batch_max=16)
    store = open_store(settings)
    first = start_worker(settings)
    ids = burst(store, settings, 200)
    wait_for(
        lambda: sum(store.count_by_status()[s] for s in FINISHED) >= 20,
        timeout=60,
        what="some jobs to finish",
    )

    first.kill()
    unfinished = [i for i in ids if (j := store.get(i)) is not None and j.status not in FINISHED]
    assert unfinished, "the burst ended before the kill: nothing was tested"
    time.sleep(0.5)
    start_worker(settings)
    wait_all_finished(store, ids, timeout=120)

    jobs = [store.get(i) for i in ids]
    assert all(j is not None and j.status is JobStatus.succeeded for j in jobs), [
        (j.status, j.error) for j in jobs if j is not None and j.status is not JobStatus.succeeded
    ]
    # a job runs again only if the killed worker held it: at most one batch of them
    assert sum(1 for j in jobs if j is not None and j.attempts > 1) <= settings.batch_max
    store.close()
