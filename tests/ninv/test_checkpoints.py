"""Checkpoints and preemption in the job store: every test runs against Redis and SQLite."""

from __future__ import annotations

from datetime import timedelta

from ninv.jobs import utcnow
from ninv.schemas import JobStatus
from ninv.store import JobStore
from tests.fake_worker import finish, heartbeat
from tests.ninv.test_store_contract import LEASE, RESULT, add, point, summary

BLOB = b"PK\x03\x04 a snapshot \x00\xff" * 100


def test_checkpoint_saved_by_the_owner_read_by_any_and_gone_at_the_end(store: JobStore) -> None:
    job = add(store)
    assert store.load_checkpoint(job.id) is None
    assert not store.save_checkpoint(job.id, "w1", 64, BLOB)  # queued: nobody owns it
    assert store.claim(job.id, "w1", LEASE) is not None
    assert not store.save_checkpoint(job.id, "w2", 64, BLOB)  # not the owner
    assert store.save_checkpoint(job.id, "w1", 64, b"older")
    assert store.save_checkpoint(job.id, "w1", 128, BLOB)
    assert store.load_checkpoint(job.id) == BLOB
    got = store.get(job.id)
    assert got is not None and got.checkpoint_iteration == 128
    assert finish(store, job.id, "w1", status=JobStatus.succeeded, summary=summary(), result=RESULT)
    assert store.load_checkpoint(job.id) is None


def test_a_dead_workers_job_resumes_from_its_checkpoint(store: JobStore) -> None:
    job = add(store)
    assert store.claim(job.id, "w1", 0.01) is not None
    assert store.save_checkpoint(job.id, "w1", 640, BLOB)
    requeued, _ = store.recover_expired(utcnow() + timedelta(seconds=1), max_attempts=3)
    assert requeued == [job.id]
    again = store.claim(job.id, "w2", LEASE)
    assert again is not None and (again.resumed_from, again.attempts) == (640, 2)
    assert store.load_checkpoint(job.id) == BLOB


def test_preempt_goes_back_to_the_queue_and_keeps_its_state(store: JobStore) -> None:
    job = add(store)
    assert store.claim(job.id, "w1", LEASE) is not None
    heartbeat(store, job.id, "w1", LEASE, history=[point(0), point(64)])
    assert store.save_checkpoint(job.id, "w1", 64, BLOB)
    assert store.preempt(job.id, "w2") is None
    queued = store.preempt(job.id, "w1")
    assert queued is not None and (queued.status, queued.preemptions) == (JobStatus.queued, 1)
    assert store.queued_ids() == [job.id]
    assert heartbeat(store, job.id, "w1", LEASE).owned is False
    assert [p.iteration for p in store.history(job.id)] == [0, 64]
    again = store.claim(job.id, "w2", LEASE)
    assert again is not None and (again.resumed_from, again.preemptions) == (64, 1)
    assert store.load_checkpoint(job.id) == BLOB


def test_cancelling_a_preempted_job_drops_its_checkpoint(store: JobStore) -> None:
    job = add(store)
    assert store.claim(job.id, "w1", LEASE) is not None
    assert store.save_checkpoint(job.id, "w1", 64, BLOB)
    assert store.preempt(job.id, "w1") is not None
    assert store.request_cancel(job.id).status == JobStatus.cancelled
    assert store.load_checkpoint(job.id) is None
    store.delete(job.id)
    assert store.get(job.id) is None
