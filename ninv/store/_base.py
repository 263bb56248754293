"""The job store interface that both the Redis and the SQLite stores implement."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol, TypeVar

from ninv.jobs import JobRecord, NotFinished, require_final
from ninv.schemas import CurvePoint, HistoryPoint, JobStatus, Progress, Summary, WorkerInfo

__all__ = [
    "Beat",
    "Created",
    "Heartbeat",
    "IdempotencyConflict",
    "JobNotFound",
    "JobStore",
    "NotFinished",
    "Outcome",
    "StoreError",
    "StoreFull",
    "StoreUnavailable",
    "TooManyActive",
    "capped",
    "visible",
]


class StoreError(Exception):
    """Base class of the store's own errors."""


class StoreUnavailable(StoreError):
    """The backing store does not answer (Redis down, database locked past its timeout)."""


class StoreFull(StoreUnavailable):
    """The backing store answers but refuses writes: Redis at its maxmemory (with noeviction)
    or a read-only replica. Reads still work; writes may succeed again once memory is freed."""


class IdempotencyConflict(StoreError):
    """An Idempotency-Key was reused with a different request body."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"idempotency key already used for job {job_id} with a different body")
        self.job_id = job_id


class TooManyActive(StoreError):
    """The owner already has NINV_MAX_ACTIVE_PER_KEY jobs queued or running."""

    def __init__(self, owner: str, limit: int) -> None:
        super().__init__(f"owner has {limit} jobs queued or running, the limit")
        self.owner = owner
        self.limit = limit


class JobNotFound(StoreError):
    """No such job, or (for an owner-scoped call) not the caller's: the same to the caller."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job {job_id}")
        self.job_id = job_id


def visible(job: JobRecord | None, job_id: str, owner: str | None) -> JobRecord:
    """The job, if it exists and (when `owner` is given) is that owner's; else JobNotFound."""
    if job is None or (owner is not None and job.owner != owner):
        raise JobNotFound(job_id)
    return job


class Created(NamedTuple):
    """What `JobStore.create` did: the job (a new one, or its Idempotency-Key twin), whether it
    is new, and whether the caller should send a wake message (it set the pending mark)."""

    job: JobRecord
    created: bool
    wake: bool = False


@dataclass(frozen=True)
class Heartbeat:
    """What a worker learns when it reports progress."""

    owned: bool  # False: the lease was lost (requeued or finished elsewhere); stop working on it
    cancel_requested: bool


@dataclass(frozen=True)
class Beat:
    """One job's part of a `heartbeat_many` call: its latest progress and new history points."""

    job_id: str
    progress: Progress | None = None
    history: list[HistoryPoint] | None = None


@dataclass(frozen=True)
class Outcome:
    """One job's part of a `finish_many` call: how it ended, and its final loss curve.

    `history`, when given, replaces the job's stored curve: the solver's own curve from the
    first iteration, merged with the points reported live. None leaves the curve as it is.
    """

    job_id: str
    status: JobStatus
    summary: Summary | None = None
    result: bytes | None = None
    error: str | None = None
    history: Sequence[CurvePoint] | None = None

    def __post_init__(self) -> None:  # refused before any store call changes anything
        require_final(self.status)


class JobStore(Protocol):
    """Durable job records, matrix blobs, progress, history, leases and cancel flags.

    Every method may raise StoreUnavailable when the backing store does not answer. Times are
    timezone-aware UTC. Matrices and results are `.npy` bytes.
    """

    def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers."""

    def create(
        self,
        job: JobRecord,
        matrix: bytes,
        *,
        max_active: int | None = None,
        wake_pending_s: float | None = None,
    ) -> Created:
        """Store a new queued job and its input, atomically.

        When job.idempotency_key is set and the owner already has a job under that key, return
        that job, not created, if its request_hash equals job.request_hash, else raise
        IdempotencyConflict. Otherwise, when `max_active` is given and the owner already has
        that many jobs queued or running, raise TooManyActive (checked in the same atomic step,
        so concurrent submissions cannot pass it together). Otherwise return the stored job,
        created; with `wake_pending_s`, also `mark_wake(wake_pending_s)` in the same step (one
        write, not two, for a submission) and say whether the mark was set.
        """
        ...

    def get(self, job_id: str, *, owner: str | None = None) -> JobRecord | None:
        """The job; None if unknown or, when `owner` is given, not that owner's.

        Every `owner` argument means the same: the call acts only on that owner's job, checked
        in the same atomic step, and another owner's job is as unknown as a missing one (None
        here, JobNotFound from the calls below).
        """
        ...

    def load_matrices(self, job_ids: Sequence[str]) -> builtins.list[bytes | None]:
        """The jobs' input matrices (.npy bytes), None for a job that has none; one read."""
        ...

    def result(self, job_id: str, *, owner: str | None = None) -> tuple[JobRecord, bytes | None]:
        """The job and its inverse (None until stored), read together. Raise JobNotFound if the
        job is unknown or not `owner`'s."""
        ...

    def history(self, job_id: str, *, owner: str | None = None) -> builtins.list[HistoryPoint]:
        """The job's loss curve, oldest first. With `owner`, raise JobNotFound if the job is
        unknown or not that owner's; without, an unknown job's curve is empty."""
        ...

    def list(
        self,
        owner: str,
        *,
        status: JobStatus | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[builtins.list[JobRecord], str | None]:
        """The owner's jobs, newest first, and an opaque cursor for the next page (None: last)."""
        ...

    def claim(self, job_id: str, worker: str, lease_s: float) -> JobRecord | None:
        """Atomically take a queued job (`JobRecord.claim`); None, changing nothing, if that
        does not apply (so a redelivered message for a finished or live-leased job is a no-op).
        """
        ...

    def claim_next(self, worker: str, lease_s: float, limit: int) -> builtins.list[JobRecord]:
        """Claim what runs next, atomically, as `claim` does: the oldest queued job of the owner
        whose turn it is (`next_owner` after the owner served last, which this call records),
        and, when that job has a batch_key, up to `limit` - 1 more queued jobs of that key,
        oldest first (any owner's). Empty when no job is queued.

        Jobs wait in `JobRecord.queue_time` order: one requeued because its worker died keeps
        its place; a preempted one is at the back of its owner's line. Any transition that
        leaves a job queued is picked up here (the stores index queued jobs by status); whoever
        makes it then calls
        `ninv.queue.wake` (in a worker, `worker.app.send_wake`) so that a worker comes.
        """
        ...

    def mark_wake(self, pending_s: float) -> bool:
        """Note that a wake message is on its way, unless one is pending already: True when the
        caller should send it. A mark lapses after pending_s, so a message lost with a dead
        worker is replaced by the next caller (or the lease sweeper)."""
        ...

    def clear_wake(self) -> None:
        """A worker took the wake message: the next job queued needs a new one."""
        ...

    def claim_compatible(
        self, batch_key: str, worker: str, lease_s: float, limit: int
    ) -> builtins.list[JobRecord]:
        """Claim up to `limit` queued jobs with this batch_key, oldest first, as `claim` does."""
        ...

    def heartbeat_many(
        self,
        worker: str,
        lease_s: float,
        beats: Sequence[Beat],
        *,
        history_max_points: int = 500,
    ) -> builtins.list[Heartbeat]:
        """For each beat, in one atomic step (O(1) round trips), answering in order: renew the
        lease and store the progress (`JobRecord.heartbeat`), append the history points, read
        the cancel flag.

        A job the worker does not own gets owned=False and is left unchanged; the others are
        still updated. History keeps at most history_max_points points (the oldest beyond that
        are dropped, except the first).
        """
        ...

    def finish_many(
        self,
        worker: str,
        outcomes: Sequence[Outcome],
        *,
        history_max_points: int = 500,
    ) -> builtins.list[bool]:
        """Record jobs' ends (`JobRecord.finish`) in one atomic step (O(1) round trips);
        answers in order.

        Only the jobs `worker` owns finish: each gets its summary, error, result and final
        status, its retention clock starts, and a given `history` replaces its curve (thinned
        by `capped` to history_max_points). The others are left unchanged (False).
        """
        ...

    def save_checkpoint(self, job_id: str, worker: str, iteration: int, blob: bytes) -> bool:
        """Store a running job's checkpoint (its solver snapshot at `iteration`), replacing the
        last one, and note its iteration on the record (`JobRecord.checkpointed`), atomically.
        False, changing nothing, unless `worker` owns the job. Any worker can load it; it is
        deleted when the job finishes (or is deleted)."""
        ...

    def load_checkpoint(self, job_id: str) -> bytes | None:
        """The job's last checkpoint, or None."""
        ...

    def preempt(self, job_id: str, worker: str, defer_s: float = 0.0) -> JobRecord | None:
        """`JobRecord.preempt`: the owner's job goes back to the queue (the normal queued path),
        keeping its checkpoint, progress and history, not due for `defer_s`. None, changing
        nothing, unless `worker` owns it. The caller sends the job's message again."""
        ...

    def request_cancel(self, job_id: str, *, owner: str | None = None) -> JobRecord:
        """`JobRecord.cancel`: a queued job is cancelled at once, a running one flagged for its
        worker. Raise NotFinished if it has finished already, JobNotFound if it is unknown or
        not `owner`'s.
        """
        ...

    def delete(self, job_id: str, *, owner: str | None = None) -> None:
        """Forget a finished job and its blobs. Raise NotFinished if it has not finished,
        JobNotFound if it is unknown or not `owner`'s."""
        ...

    def recover_expired(
        self, now: datetime, max_attempts: int
    ) -> tuple[builtins.list[str], builtins.list[str]]:
        """`JobRecord.recover` every running job whose lease expired before `now` (its worker
        died). A requeued job starts afresh: its history is dropped. Return (requeued ids, ids of
        jobs that ended here: failed, or cancelled when a cancel had been requested).
        """
        ...

    def queued_ids(
        self, limit: int = 1000, *, before: datetime | None = None
    ) -> builtins.list[str]:
        """Ids of queued jobs, oldest first, only those created before `before` when given:
        what the sweeper re-enqueues (`ninv.jobs.resend_cutoff`)."""
        ...

    def count_by_status(self) -> dict[JobStatus, int]: ...

    def solve_time_totals(self) -> dict[str, tuple[int, float]]:
        """Per method: how many solves finished (any status, with a summary) and their total
        elapsed_s, counted by `finish` since the store began: the API's solve-duration metric."""
        ...

    def purge_expired(self, now: datetime) -> int:
        """Drop finished jobs past their retention; return how many. (Redis uses TTLs instead.)"""
        ...

    def announce_worker(self, worker: WorkerInfo, ttl_s: float) -> None:
        """Record that this worker is alive for ttl_s more seconds (replacing what it said last)."""
        ...

    def live_workers(self) -> builtins.list[WorkerInfo]:
        """The workers whose last announcement has not expired, by id."""
        ...

    def forget_worker(self, worker_id: str) -> None:
        """Drop a worker's announcement: it is shutting down."""
        ...

    def close(self) -> None: ...


_Point = TypeVar("_Point", bound=CurvePoint)


def capped(points: Sequence[_Point], cap: int) -> builtins.list[_Point]:
    """At most `cap` points of a curve, evenly by position, always the first and the last.

    The curves are log-spaced, so thinning by position keeps them log-spaced.
    """
    if len(points) <= cap:
        return list(points)
    if cap == 1:
        return [points[0]]
    last = len(points) - 1
    picks = sorted({round(i * last / (cap - 1)) for i in range(cap)})
    return [points[i] for i in picks]
