"""The worker's Presence thread on the real store (Redis), without a worker process."""

from __future__ import annotations

import time

from ninv.store import JobStore
from ninv.store._redis import RedisStore
from tests.helpers import wait_for
from worker.presence import Presence, describe_worker


def test_presence_announces_at_once_renews_and_withdraws(store: JobStore) -> None:
    info = describe_worker("h:1:cpu", "cpu", cuda_devices=0, torch_version="2.13.0")
    presence = Presence(store, info, ttl_s=0.6)
    presence.start()
    wait_for(lambda: len(store.live_workers()) == 1, timeout=5, what="the first announcement")
    first = store.live_workers()[0].last_seen
    time.sleep(1.0)  # longer than the ttl: still live, because it was renewed
    (renewed,) = store.live_workers()
    assert renewed.last_seen > first and renewed.started_at == info.started_at
    presence.stop()
    assert not presence.is_alive()
    assert store.live_workers() == []


def test_presence_outlives_a_store_that_does_not_answer() -> None:
    dead = RedisStore.from_url("redis://127.0.0.1:1/0", prefix="none", retention_s=60)
    info = describe_worker("h:1:cpu", "cpu", cuda_devices=0, torch_version="2.13.0")
    presence = Presence(dead, info, ttl_s=0.3)
    presence.start()
    time.sleep(0.5)
    assert presence.is_alive()
    presence.stop()  # the withdrawal fails quietly too
    assert not presence.is_alive()
    dead.close()
