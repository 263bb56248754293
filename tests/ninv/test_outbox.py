"""The outbox rule (ninv.jobs) and the sweeper's re-sending (worker.recovery.Outbox) on both
stores: which queued jobs are due a fresh message, and how often each one gets one."""

from __future__ import annotations

import time
from datetime import timedelta

from ninv.jobs import due_for_resend, resend_cutoff, utcnow
from ninv.store import JobStore
from tests.ninv.test_store_contract import add
from worker.recovery import Outbox


def test_due_for_resend_is_queued_and_older_than_the_bound(store: JobStore) -> None:
    job = add(store)
    now = job.created_at + timedelta(seconds=10)
    assert due_for_resend(job, now, after_s=5)
    assert not due_for_resend(job, now, after_s=20)
    claimed = store.claim(job.id, "w", 30)
    assert claimed is not None
    assert not due_for_resend(claimed, now, after_s=5)
    assert resend_cutoff(now, 5) == now - timedelta(seconds=5)


def test_queued_ids_before_a_time(store: JobStore) -> None:
    old = add(store)
    cut = utcnow()
    new = add(store)
    assert store.queued_ids(before=cut) == [old.id]
    assert store.queued_ids() == [old.id, new.id]


def test_outbox_resends_with_doubling_intervals(store: JobStore) -> None:
    job = add(store)
    sent: list[str] = []
    clock = [0.0]
    time.sleep(0.01)  # older than after_s
    outbox = Outbox(store, sent.append, after_s=0.001, clock=lambda: clock[0])
    for t, sends in [(0.0, 1), (0.0, 1), (0.001, 1), (0.002, 2), (0.005, 2), (0.0065, 3)]:
        clock[0] = t
        outbox.resend()
        assert len(sent) == sends, t  # the interval doubles after each send
    assert set(sent) == {job.id}
    store.claim(job.id, "w", 30)
    clock[0] = 1.0
    assert outbox.resend() == []  # claimed: nothing to do


def test_outbox_stops_a_pass_when_the_broker_refuses(store: JobStore) -> None:
    add(store)
    add(store)

    def refuse(job_id: str) -> None:
        raise ConnectionError("broker down")

    time.sleep(0.01)
    assert Outbox(store, refuse, after_s=0.001).resend() == []
