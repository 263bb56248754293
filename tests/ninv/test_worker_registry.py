"""Workers announcing themselves in the store: every test runs against Redis and SQLite."""

from __future__ import annotations

import time

from ninv.jobs import utcnow
from ninv.schemas import WorkerInfo
from ninv.store import JobStore


def worker(worker_id: str, device: str = "cpu") -> WorkerInfo:
    now = utcnow()
    return WorkerInfo(
        id=worker_id,
        hostname="host",
        pid=42,
        device=device,
        cuda_devices=0 if device == "cpu" else 1,
        version="0.1.0",
        torch_version="2.13.0",
        started_at=now,
        last_seen=now,
    )


def test_an_announcement_lasts_its_ttl_and_the_last_one_wins(store: JobStore) -> None:
    assert store.live_workers() == []
    store.announce_worker(worker("b:1:cpu"), ttl_s=30)
    store.announce_worker(worker("a:1:cuda:0", "cuda:0"), ttl_s=0.3)
    assert [w.id for w in store.live_workers()] == ["a:1:cuda:0", "b:1:cpu"]
    again = worker("b:1:cpu").model_copy(update={"version": "0.2.0"})
    store.announce_worker(again, ttl_s=30)
    time.sleep(0.5)
    assert store.live_workers() == [again]


def test_a_withdrawn_worker_is_gone_at_once(store: JobStore) -> None:
    store.announce_worker(worker("a:1:cpu"), ttl_s=30)
    store.announce_worker(worker("b:1:cpu"), ttl_s=30)
    store.forget_worker("a:1:cpu")
    store.forget_worker("never-announced")
    assert [w.id for w in store.live_workers()] == ["b:1:cpu"]
