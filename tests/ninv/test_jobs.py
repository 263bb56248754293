"""A job's rules, once, without a store: each transition of JobRecord (ninv/jobs.py)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from ninv.jobs import JobRecord, NotFinished, next_owner, utcnow
from ninv.schemas import JobStatus, Progress, SolveOptions

NOW = utcnow()
LATER = NOW + timedelta(seconds=60)


def queued() -> JobRecord:
    return JobRecord(
        id=uuid.uuid4().hex,
        status=JobStatus.queued,
        options=SolveOptions(),
        n=2,
        input_dtype="float64",
        created_at=NOW,
        owner="alice",
    )


def running(worker: str = "w1", lease_s: float = 30.0) -> JobRecord:
    job = queued().claim(worker, lease_s, NOW)
    assert job is not None
    return job


def test_claim_takes_only_a_queued_job() -> None:
    job = running("w1", 30.0)
    assert job.status == JobStatus.running
    assert (job.worker, job.attempts, job.started_at) == ("w1", 1, NOW)
    assert job.lease_until == NOW + timedelta(seconds=30)
    assert job.claim("w2", 30.0, NOW) is None  # held: a redelivered message is a no-op
    assert queued().cancel(NOW).claim("w2", 30.0, NOW) is None  # finished


def test_heartbeat_renews_only_the_owners_lease() -> None:
    job = running("w1")
    progress = Progress(iteration=5, max_iter=10, loss=0.1, residual=0.2, updated_at=NOW)
    beat = job.heartbeat("w1", 10.0, LATER, progress)
    assert beat is not None
    assert beat.lease_until == LATER + timedelta(seconds=10) and beat.progress == progress
    assert job.heartbeat("w1", 10.0, LATER, None) == job.model_copy(
        update={"lease_until": beat.lease_until}
    )
    assert job.heartbeat("w2", 10.0, LATER, progress) is None
    assert queued().heartbeat("w1", 10.0, LATER, progress) is None


def test_finish_by_the_owner_with_a_final_status() -> None:
    job = running("w1")
    done = job.finish("w1", JobStatus.failed, LATER, error="diverged")
    assert done is not None
    assert (done.status, done.error, done.finished_at, done.lease_until) == (
        JobStatus.failed,
        "diverged",
        LATER,
        None,
    )
    assert job.finish("w2", JobStatus.succeeded, LATER) is None
    assert done.finish("w1", JobStatus.succeeded, LATER) is None  # finished once only
    with pytest.raises(ValueError, match="final status"):
        job.finish("w1", JobStatus.running, LATER)


def test_cancel() -> None:
    now_cancelled = queued().cancel(LATER)
    assert now_cancelled.status == JobStatus.cancelled and now_cancelled.cancel_requested
    assert now_cancelled.finished_at == LATER

    job = running()
    flagged = job.cancel(LATER)
    assert (flagged.status, flagged.cancel_requested) == (JobStatus.running, True)
    assert flagged.cancel(LATER) is flagged  # already flagged: nothing to write

    with pytest.raises(NotFinished) as info:
        now_cancelled.cancel(LATER)
    assert info.value.status == JobStatus.cancelled


def test_only_finished_jobs_are_deletable() -> None:
    for job in (queued(), running()):
        with pytest.raises(NotFinished):
            job.check_deletable()
    queued().cancel(NOW).check_deletable()


def test_recover_requeues_then_fails_or_cancels() -> None:
    job = running(lease_s=1.0)
    assert job.recover(NOW, max_attempts=2) is None  # the lease is still live
    back = job.recover(LATER, max_attempts=2)
    assert back is not None and back.status == JobStatus.queued
    assert (back.worker, back.lease_until, back.progress, back.attempts) == (None, None, None, 1)

    again = back.claim("w2", 1.0, NOW)
    assert again is not None and again.attempts == 2
    lost = again.recover(LATER, max_attempts=2)
    assert lost is not None
    assert (lost.status, lost.error) == (JobStatus.failed, "worker lost after 2 attempts")

    cancelled = running(lease_s=1.0).cancel(NOW).recover(LATER, max_attempts=5)
    assert cancelled is not None
    assert (cancelled.status, cancelled.error) == (JobStatus.cancelled, None)
    assert queued().recover(LATER, max_attempts=5) is None


def test_checkpointed_only_by_the_owner_and_resumed_by_the_next_claim() -> None:
    job = running("w1")
    assert job.resumed_from is None
    saved = job.checkpointed("w1", 640)
    assert saved is not None and saved.checkpoint_iteration == 640
    assert job.checkpointed("w2", 640) is None
    assert queued().checkpointed("w1", 640) is None
    back = saved.recover(LATER + timedelta(seconds=60), max_attempts=3)
    assert back is not None and back.status == JobStatus.queued
    again = back.claim("w2", 30.0, LATER)
    assert again is not None and (again.resumed_from, again.attempts) == (640, 2)


def test_preempt_requeues_and_is_not_a_lost_run() -> None:
    job = running("w1")
    assert job.preempt("w2", LATER) is None
    assert queued().preempt("w1", LATER) is None
    yielded = job.preempt("w1", LATER)
    assert yielded is not None
    assert (yielded.status, yielded.preemptions, yielded.worker, yielded.lease_until) == (
        JobStatus.queued, 1, None, None,
    )  # fmt: skip
    # Three slices, then the worker dies: one lost run of max_attempts=2, so it is requeued.
    for _ in range(2):
        claimed = yielded.claim("w1", 1.0, NOW)
        assert claimed is not None
        yielded = claimed.preempt("w1", LATER)
        assert yielded is not None
    last = yielded.claim("w1", 1.0, NOW)
    assert last is not None and (last.attempts, last.preemptions, last.lost_runs) == (4, 3, 1)
    back = last.recover(LATER, max_attempts=2)
    assert back is not None and back.status == JobStatus.queued
    again = back.claim("w2", 1.0, NOW)
    assert again is not None
    lost = again.recover(LATER, max_attempts=2)
    assert lost is not None and (lost.status, lost.error) == (
        JobStatus.failed, "worker lost after 2 attempts",
    )  # fmt: skip


# -- whose turn: next_owner ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("waiting", "last", "expected"),
    [
        ([], None, None),
        ([], "a", None),
        (["b", "a"], None, "a"),  # nobody served yet: the first by name
        (["a", "b", "c"], "a", "b"),
        (["a", "b", "c"], "c", "a"),  # wraps round
        (["a", "c"], "b", "c"),  # the last owner left the queue: the next after it
        (["a"], "a", "a"),  # alone: its turn again
        (["a", "a", "b"], "a", "b"),
    ],
)
def test_owners_take_turns_in_name_order(
    waiting: list[str], last: str | None, expected: str | None
) -> None:
    assert next_owner(waiting, last) == expected


def test_a_round_of_turns_serves_every_waiting_owner_once() -> None:
    owners = ["carol", "alice", "bob"]
    last = None
    served = []
    for _ in range(6):
        last = next_owner(owners, last)
        served.append(last)
    assert served == ["alice", "bob", "carol", "alice", "bob", "carol"]


def test_a_preempted_job_goes_to_the_back_of_the_line_and_a_lost_one_keeps_its_place() -> None:
    job = running("w1")
    assert job.queue_time == job.created_at
    yielded = job.preempt("w1", LATER)
    assert yielded is not None and yielded.queue_time == LATER and yielded.is_due(LATER)
    deferred = job.preempt("w1", LATER, defer_s=10.0)
    assert deferred is not None and deferred.queue_time == LATER + timedelta(seconds=10)
    assert not deferred.is_due(LATER) and deferred.is_due(LATER + timedelta(seconds=10))
    lost = running("w1", lease_s=1.0).recover(LATER, max_attempts=5)
    assert lost is not None and lost.status == JobStatus.queued
    assert lost.queue_time == lost.created_at
