"""The job record as the store keeps it, and every rule of a job's life.

A job's status changes only through the transitions of `JobRecord` below: pure methods that
take a record (and the time) and return the next one, or None when the transition does not
apply. The stores only read a record, ask it for its next state, and write that back
atomically (compare-and-set); a new state or rule belongs here, not in a store.

    queued --claim--> running --finish--> succeeded | failed | cancelled
    queued --cancel--> cancelled;  running --cancel--> running with cancel_requested
    running --recover (lease expired)--> queued (requeue), or failed/cancelled
    running --preempt (its time slice is over, others wait)--> queued
    running --checkpointed--> running (a checkpoint at an iteration; the next claim resumes it)

Which queued job runs next is a rule here too (`next_owner`): owners take turns.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from ninv.schemas import FINISHED, Job, JobStatus, Progress, SolveOptions, Summary

__all__ = [
    "JobRecord",
    "NotFinished",
    "batch_key",
    "due_for_resend",
    "lost_error",
    "next_owner",
    "require_final",
    "resend_cutoff",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class NotFinished(Exception):
    """The operation needs a finished job (delete), or a live one (cancel)."""

    def __init__(self, job_id: str, status: JobStatus) -> None:
        super().__init__(f"job {job_id} is {status}")
        self.job_id = job_id
        self.status = status


def require_final(status: JobStatus) -> None:
    """Raise ValueError unless `status` is one a job can end in."""
    if status not in FINISHED:
        raise ValueError(f"finish needs a final status, not {status}")


def lost_error(attempts: int) -> str:
    return f"worker lost after {attempts} attempts"


def resend_cutoff(now: datetime, after_s: float) -> datetime:
    """Jobs queued before this time and still queued are due a fresh broker message.

    The store is the record of accepted jobs; a broker message is only a nudge. A job stays
    queued without one when the API died between storing it and sending its message, or when
    a broker lost the message (a full Redis refuses the delivery bookkeeping). Re-sending after
    `after_s` is safe because claiming is compare-and-set: a duplicate message is a no-op.
    """
    return now - timedelta(seconds=after_s)


def due_for_resend(job: JobRecord, now: datetime, after_s: float) -> bool:
    """Whether `job` waited longer than `after_s` without being claimed (`resend_cutoff`).

    The stores select exactly these, by index: `queued_ids(before=resend_cutoff(now, after_s))`.
    """
    return job.status == JobStatus.queued and job.queue_time < resend_cutoff(now, after_s)


def batch_key(options: SolveOptions, n: int, batch: int | None, *, batch_max_n: int) -> str | None:
    """The key under which compatible queued jobs are solved together, or None.

    Jobs batch only with jobs of the same n, dtype, method and device; large matrices and
    inputs that already are a batch never do. `exact` jobs batch too: their solve is quick, but
    a batch shares one claim, one stacked solve and one store write, which is most of a small
    job's cost on the worker.
    """
    if batch is not None or n > batch_max_n:
        return None
    return f"{options.method}:{options.dtype}:{options.device}:{n}"


def next_owner(waiting: Iterable[str], last: str | None) -> str | None:
    """Whose turn it is: the owner with waiting jobs that comes next after `last` (the owner
    served last) in name order, wrapping round to the first; None when nobody waits.

    Round-robin across owners (API keys): one key's 10,000 queued jobs delay another key's
    single job by one turn, not by 10,000 solves. Within an owner, jobs run oldest first. The
    stores need only two candidates to apply it: the first waiting owner after `last` and the
    first waiting owner overall. They apply it first to the owners whose oldest job is due
    (`JobRecord.is_due`: a preempted job is not, for a slice), then, when no job is due, to
    every waiting owner, so a worker never idles while a job waits.
    """
    owners = sorted(set(waiting))
    if not owners:
        return None
    if last is not None:
        for owner in owners:
            if owner > last:
                return owner
    return owners[0]


_JOB_FIELDS = frozenset(Job.model_fields)


class JobRecord(Job):
    """A job with the fields only the store and the worker see."""

    owner: str
    lease_until: datetime | None = None
    batch_key: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    checkpoint_iteration: int | None = None  # the stored checkpoint's iteration, if any
    # Its place in line when it last became queued: a preempted job goes behind the jobs that
    # waited meanwhile; a job requeued after its worker died keeps its place. None: created_at.
    queued_at: datetime | None = None

    @property
    def queue_time(self) -> datetime:
        """The time the stores order waiting jobs by (oldest first)."""
        return self.created_at if self.queued_at is None else self.queued_at

    def is_due(self, now: datetime) -> bool:
        """Whether it may take its owner's turn: not a preempted job inside its deferral."""
        return self.queue_time <= now

    @classmethod
    def queued(
        cls,
        options: SolveOptions,
        *,
        n: int,
        batch: int | None,
        input_dtype: str,
        owner: str,
        batch_max_n: int,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
    ) -> JobRecord:
        """A new queued job with a fresh id (uuid4 hex), as POST /invert creates it."""
        return cls(
            id=uuid4().hex,
            owner=owner,
            status=JobStatus.queued,
            options=options,
            n=n,
            batch=batch,
            input_dtype=input_dtype,
            created_at=utcnow(),
            batch_key=batch_key(options, n, batch, batch_max_n=batch_max_n),
            idempotency_key=idempotency_key,
            request_hash=request_hash,
        )

    def view(self) -> Job:
        """The job as the API shows it: without owner, lease or idempotency data."""
        # The record's own values, already validated: constructing skips a dump and a second
        # validation of every field (a measurable share of a small job's API time).
        return Job.model_construct(
            _fields_set=self.model_fields_set & _JOB_FIELDS,
            **{name: getattr(self, name) for name in _JOB_FIELDS},
        )

    # -- transitions: each returns the next record (None: does not apply); none has I/O --

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def check_new(self) -> None:
        """Raise ValueError unless this is a record a store may create (a queued job)."""
        if self.status != JobStatus.queued:
            raise ValueError(f"a new job must be queued, not {self.status}")

    def owned_by(self, worker: str) -> bool:
        """Whether `worker` holds this job: it is running under that worker's lease."""
        return self.status == JobStatus.running and self.worker == worker

    def claim(self, worker: str, lease_s: float, now: datetime) -> JobRecord | None:
        """Queued -> running under `worker`'s lease, attempts + 1, resuming from the stored
        checkpoint if there is one. None unless queued (so a redelivered message for a finished
        or live-leased job is a no-op)."""
        if self.status != JobStatus.queued:
            return None
        return self.model_copy(
            update={
                "status": JobStatus.running,
                "attempts": self.attempts + 1,
                "resumed_from": self.checkpoint_iteration,
                "worker": worker,
                "started_at": now,
                "lease_until": now + timedelta(seconds=lease_s),
            }
        )

    def checkpointed(self, worker: str, iteration: int) -> JobRecord | None:
        """The owner stored a checkpoint at `iteration` (the next claim resumes from it). None
        unless `worker` owns the job, so a worker that lost its lease writes no checkpoint."""
        if not self.owned_by(worker):
            return None
        return self.model_copy(update={"checkpoint_iteration": iteration})

    def preempt(self, worker: str, now: datetime, defer_s: float = 0.0) -> JobRecord | None:
        """Running -> queued, preemptions + 1: its time slice is over and other jobs wait; it
        resumes from its checkpoint when next claimed. Progress and history stay. None unless
        `worker` owns the job.

        Its place in line (`queued_at`) is `defer_s` from now: it is not due again until the
        jobs it yielded to have had that long (a slice), so turns are fair in time, not only in
        claims. The stores still hand it out early when no due job waits (`is_due`)."""
        if not self.owned_by(worker):
            return None
        return self.model_copy(
            update={
                "status": JobStatus.queued,
                "preemptions": self.preemptions + 1,
                "queued_at": now + timedelta(seconds=defer_s),
                "worker": None,
                "lease_until": None,
            }
        )

    @property
    def lost_runs(self) -> int:
        """Runs that ended with no word from their worker: claims that were not preempted
        (the current run included)."""
        return self.attempts - self.preemptions

    def heartbeat(
        self, worker: str, lease_s: float, now: datetime, progress: Progress | None
    ) -> JobRecord | None:
        """The lease renewed and the latest progress (when given). None unless `worker` owns it."""
        if not self.owned_by(worker):
            return None
        update: dict[str, object] = {"lease_until": now + timedelta(seconds=lease_s)}
        if progress is not None:
            update["progress"] = progress
        return self.model_copy(update=update)

    def finish(
        self,
        worker: str,
        status: JobStatus,
        now: datetime,
        *,
        summary: Summary | None = None,
        error: str | None = None,
    ) -> JobRecord | None:
        """Running -> a final status. None unless `worker` owns it; ValueError if not final."""
        require_final(status)
        if not self.owned_by(worker):
            return None
        return self._end(status, now, summary=summary, error=error)

    def cancel(self, now: datetime) -> JobRecord:
        """A queued job is cancelled at once; a running one is flagged for its worker to stop
        (unchanged if already flagged). Raise NotFinished if it has finished already."""
        if self.finished:
            raise NotFinished(self.id, self.status)
        if self.status == JobStatus.queued:
            return self._end(JobStatus.cancelled, now, cancel_requested=True)
        if self.cancel_requested:
            return self
        return self.model_copy(update={"cancel_requested": True})

    def check_deletable(self) -> None:
        """Raise NotFinished unless the job has finished: only finished jobs are deleted."""
        if not self.finished:
            raise NotFinished(self.id, self.status)

    def lease_expired(self, now: datetime) -> bool:
        return (
            self.status == JobStatus.running
            and self.lease_until is not None
            and self.lease_until < now
        )

    def recover(self, now: datetime, max_attempts: int) -> JobRecord | None:
        """A running job whose lease expired (its worker died): cancelled if a cancel was
        requested, failed ("worker lost") after max_attempts, else requeued. None unless the
        lease has expired."""
        if not self.lease_expired(now):
            return None
        if self.cancel_requested:
            return self._end(JobStatus.cancelled, now, error=None)
        if self.lost_runs >= max_attempts:
            return self._end(JobStatus.failed, now, error=lost_error(self.lost_runs))
        return self.requeue()

    def requeue(self) -> JobRecord:
        """Back to queued: worker, lease and progress cleared (the store drops the job's
        history when it writes a requeued record); it resumes from its checkpoint, if any."""
        return self.model_copy(
            update={
                "status": JobStatus.queued,
                "worker": None,
                "lease_until": None,
                "progress": None,
            }
        )

    def _end(self, status: JobStatus, now: datetime, **update: object) -> JobRecord:
        """A final status: finished now, the lease released."""
        return self.model_copy(
            update={"status": status, "finished_at": now, "lease_until": None, **update}
        )
