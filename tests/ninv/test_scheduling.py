"""What runs next, in both stores: round-robin across owners (claim_next), the per-owner cap
on queued plus running jobs, and the pending-wake mark that keeps messages to one per batch."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from ninv.jobs import JobRecord, utcnow
from ninv.schemas import JobStatus
from ninv.store import JobStore, TooManyActive
from ninv.store._redis import RedisStore
from tests.fake_worker import finish
from tests.ninv.test_store_contract import LEASE, MATRIX, add, make_job, run_to_end

BATCH = "adam:float64:auto:4"


def claim_one(store: JobStore) -> JobRecord:
    (job,) = store.claim_next("w1", LEASE, 1)
    assert job.status is JobStatus.running and job.worker == "w1"
    return job


def test_owners_take_turns_and_each_owner_is_served_oldest_first(store: JobStore) -> None:
    a = [add(store, owner="key-a") for _ in range(5)]
    b = add(store, owner="key-b")  # one job, behind five of key A's
    c = [add(store, owner="key-c") for _ in range(2)]

    order = [claim_one(store).id for _ in range(8)]

    assert order == [a[0].id, b.id, c[0].id, a[1].id, c[1].id, a[2].id, a[3].id, a[4].id]
    assert store.claim_next("w1", LEASE, 1) == []


def test_the_turn_is_kept_between_claims_and_new_owners_join_the_ring(store: JobStore) -> None:
    a = [add(store, owner="key-a") for _ in range(3)]
    assert claim_one(store).id == a[0].id
    b = add(store, owner="key-b")  # arrives after key A was served
    assert claim_one(store).id == b.id
    assert claim_one(store).id == a[1].id


def test_a_turn_takes_a_batch_of_compatible_jobs_oldest_first(store: JobStore) -> None:
    first = add(store, owner="key-a", batch_key=BATCH)
    other = add(store, owner="key-a", batch_key="cg:float64:auto:4")
    mates = [add(store, owner=o, batch_key=BATCH) for o in ("key-a", "key-b", "key-a")]

    claimed = store.claim_next("w1", LEASE, 3)

    assert [job.id for job in claimed] == [first.id, mates[0].id, mates[1].id]
    assert all(job.status is JobStatus.running for job in claimed)
    rest = store.claim_next("w1", LEASE, 10)
    # key B's turn, but its only job is taken: key A's next, with its one compatible mate
    assert [job.id for job in rest] == [other.id]
    assert [job.id for job in store.claim_next("w1", LEASE, 10)] == [mates[2].id]


def test_cancelled_and_claimed_jobs_are_skipped(store: JobStore) -> None:
    a = [add(store, owner="key-a") for _ in range(2)]
    b = add(store, owner="key-b")
    store.request_cancel(a[0].id)
    assert store.claim(b.id, "w2", LEASE) is not None

    assert claim_one(store).id == a[1].id
    assert store.claim_next("w1", LEASE, 5) == []


def test_a_requeued_job_is_at_the_head_of_its_owners_queue(store: JobStore) -> None:
    a = [add(store, owner="key-a") for _ in range(2)]
    job = claim_one(store)
    assert job.id == a[0].id
    store.claim_next("w1", LEASE, 1)  # a[1]
    later = add(store, owner="key-a")
    # the worker of a[0] dies: its lease lapses and the job goes back
    assert store.claim(later.id, "w3", LEASE) is not None
    requeued, _ = store.recover_expired(utcnow() + timedelta(seconds=LEASE + 1), 3)
    assert a[0].id in requeued
    again = claim_one(store)
    assert (again.id, again.attempts) == (a[0].id, 2)


def test_a_preempted_job_waits_behind_the_jobs_that_waited_meanwhile(store: JobStore) -> None:
    long = add(store, owner="key-a")
    assert claim_one(store).id == long.id
    short = [add(store, owner="key-a") for _ in range(2)]
    assert store.preempt(long.id, "w1") is not None
    assert [claim_one(store).id for _ in range(3)] == [short[0].id, short[1].id, long.id]


def test_a_preempted_job_is_not_due_for_its_deferral_but_never_left_idle(store: JobStore) -> None:
    long = add(store, owner="key-a")
    assert claim_one(store).id == long.id
    short = [add(store, owner="key-b") for _ in range(3)]
    assert store.preempt(long.id, "w1", defer_s=60.0) is not None
    # Round-robin alone would hand key-a's turn back to the long job after one key-b job; while
    # it is deferred, key-b's jobs take every turn.
    assert [claim_one(store).id for _ in range(3)] == [s.id for s in short]
    # With nothing else due, the deferred job runs at once rather than leaving the worker idle.
    assert claim_one(store).id == long.id


def test_an_owner_at_its_limit_is_refused_and_others_are_not(store: JobStore) -> None:
    jobs = [store.create(make_job("key-a"), MATRIX, max_active=3)[0] for _ in range(3)]
    with pytest.raises(TooManyActive) as refused:
        store.create(make_job("key-a"), MATRIX, max_active=3)
    assert refused.value.limit == 3
    store.create(make_job("key-b"), MATRIX, max_active=3)  # another key is not held back

    run_to_end(store, jobs[0])  # a finished job no longer counts; a running one does
    assert store.claim(jobs[1].id, "w1", LEASE) is not None
    store.create(make_job("key-a"), MATRIX, max_active=3)
    with pytest.raises(TooManyActive):
        store.create(make_job("key-a"), MATRIX, max_active=3)
    assert finish(store, jobs[1].id, "w1", status=JobStatus.failed, error="x")
    store.create(make_job("key-a"), MATRIX, max_active=3)


def test_an_idempotent_replay_is_answered_even_at_the_limit(store: JobStore) -> None:
    first = make_job("key-a", idempotency_key="k", request_hash="h")
    store.create(first, MATRIX, max_active=1)
    again = make_job("key-a", idempotency_key="k", request_hash="h")
    job, created, _ = store.create(again, MATRIX, max_active=1)
    assert (job.id, created) == (first.id, False)


def test_one_wake_is_pending_at_a_time_and_a_lapsed_mark_is_replaced(store: JobStore) -> None:
    assert store.mark_wake(30)
    assert not store.mark_wake(30)  # a message is on its way: send none
    store.clear_wake()  # a worker took it
    assert store.mark_wake(0.05)
    time.sleep(0.1)  # its message died with a worker: the mark lapses
    assert store.mark_wake(30)


def test_create_sets_the_wake_mark_in_the_same_step(store: JobStore) -> None:
    first = store.create(make_job("key-a"), MATRIX, wake_pending_s=30)
    assert first.created and first.wake  # the caller sends the message
    assert not store.create(make_job("key-b"), MATRIX, wake_pending_s=30).wake  # one pending
    assert not store.mark_wake(30)  # the mark create set is the one mark_wake sees
    store.clear_wake()
    assert not store.create(make_job("key-a"), MATRIX).wake  # not asked: no mark
    assert store.mark_wake(30)
    store.clear_wake()
    keyed = make_job("key-a", idempotency_key="k", request_hash="h")
    assert store.create(keyed, MATRIX, wake_pending_s=30).wake
    store.clear_wake()
    replay = make_job("key-a", idempotency_key="k", request_hash="h")
    again = store.create(replay, MATRIX, wake_pending_s=30)
    assert not again.created and not again.wake  # nothing new stored, no mark set
    assert again.job.id == keyed.id


def test_jobs_queued_by_a_version_without_owner_queues_are_adopted(
    redis_store: RedisStore,
) -> None:
    """The upgrade path on Redis: an older version indexed queued jobs in P:queued only."""
    jobs = [add(redis_store, owner=o) for o in ("key-a", "key-a", "key-b")]
    r, p = redis_store._r, redis_store._p
    r.delete(f"{p}:owners", f"{p}:oq:key-a", f"{p}:oq:key-b")  # as the older version left them

    order = [claim_one(redis_store).id for _ in range(3)]

    assert order == [jobs[0].id, jobs[2].id, jobs[1].id]


def test_workers_racing_claim_next_while_jobs_arrive_take_each_job_once(store: JobStore) -> None:
    owners = ("key-a", "key-b", "key-c")
    total = 120
    claimed: list[str] = []
    arriving = threading.Event()
    arriving.set()

    def submitter() -> None:
        for i in range(total):
            add(store, owner=owners[i % 3], batch_key=BATCH if i % 2 else None)
        arriving.clear()

    def worker(name: str) -> None:
        while True:
            jobs = store.claim_next(name, LEASE, 4)
            claimed.extend(job.id for job in jobs)
            if not jobs and not arriving.is_set():
                jobs = store.claim_next(name, LEASE, 4)  # what came after the last look
                claimed.extend(job.id for job in jobs)
                if not jobs:
                    return

    threads = [threading.Thread(target=submitter)]
    threads += [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(claimed) == total
    assert len(set(claimed)) == total  # none twice
    assert store.queued_ids(10) == []
