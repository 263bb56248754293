"""The job store interface that both the Redis and the SQLite stores implement."""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ninv.jobs import JobRecord
from ninv.schemas import FINISHED, HistoryPoint, JobStatus, Progress, Summary, WorkerInfo

__all__ = [
    "Beat",
    "Heartbeat",
    "IdempotencyConflict",
    "JobStore",
    "NotFinished",
    "Outcome",
    "SingleJobForms",
    "StoreError",
    "StoreUnavailable",
    "capped",
    "check_final",
]


class StoreError(Exception):
    """Base class of the store's own errors."""


class StoreUnavailable(StoreError):
    """The backing store does not answer (Redis down, database locked past its timeout)."""


class IdempotencyConflict(StoreError):
    """An Idempotency-Key was reused with a different request body."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"idempotency key already used for job {job_id} with a different body")
        self.job_id = job_id


class NotFinished(StoreError):
    """The operation needs a finished job (delete), or a live one (cancel)."""

    def __init__(self, job_id: str, status: JobStatus) -> None:
        super().__init__(f"job {job_id} is {status}")
        self.job_id = job_id
        self.status = status


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
    history: list[HistoryPoint] | None = None


class JobStore(Protocol):
    """Durable job records, matrix blobs, progress, history, leases and cancel flags.

    Every method may raise StoreUnavailable when the backing store does not answer. Times are
    timezone-aware UTC. Matrices and results are `.npy` bytes.
    """

    def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers."""

    def create(self, job: JobRecord, matrix: bytes) -> tuple[JobRecord, bool]:
        """Store a new queued job and its input, atomically.

        When job.idempotency_key is set and the owner already has a job under that key, return
        that job and False if its request_hash equals job.request_hash, else raise
        IdempotencyConflict. Otherwise return the stored job and True.
        """
        ...

    def get(self, job_id: str) -> JobRecord | None: ...

    def load_matrix(self, job_id: str) -> bytes | None: ...

    def load_result(self, job_id: str) -> bytes | None: ...

    def history(self, job_id: str) -> builtins.list[HistoryPoint]: ...

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
        """Atomically take a queued job: status running, attempts + 1, worker, lease.

        Return None, changing nothing, unless the job is queued (so a redelivered message for a
        finished or live-leased job is a no-op).
        """
        ...

    def claim_compatible(
        self, batch_key: str, worker: str, lease_s: float, limit: int
    ) -> builtins.list[JobRecord]:
        """Claim up to `limit` queued jobs with this batch_key, oldest first, as `claim` does."""
        ...

    def heartbeat(
        self,
        job_id: str,
        worker: str,
        lease_s: float,
        *,
        progress: Progress | None = None,
        history: builtins.list[HistoryPoint] | None = None,
        history_max_points: int = 500,
    ) -> Heartbeat:
        """Renew the lease, store the latest progress, append history points, read the cancel flag.

        Only while `worker` owns the running job; otherwise change nothing and return owned=False.
        History keeps at most history_max_points points (the oldest beyond that are dropped,
        except the first). The same as a one-element `heartbeat_many`.
        """
        ...

    def heartbeat_many(
        self,
        worker: str,
        lease_s: float,
        beats: Sequence[Beat],
        *,
        history_max_points: int = 500,
    ) -> builtins.list[Heartbeat]:
        """`heartbeat` for many jobs in one atomic step (O(1) round trips); answers in order.

        A job the worker does not own gets owned=False and is left unchanged; the others are
        still updated.
        """
        ...

    def finish(
        self,
        job_id: str,
        worker: str,
        *,
        status: JobStatus,
        summary: Summary | None = None,
        result: bytes | None = None,
        error: str | None = None,
        history: builtins.list[HistoryPoint] | None = None,
        history_max_points: int = 500,
    ) -> bool:
        """Record a running job's end (succeeded, failed or cancelled) while `worker` owns it.

        Sets finished_at and starts the retention clock; when `history` is given it replaces
        the job's curve (thinned by `capped` to history_max_points) in the same atomic step.
        Return False, changing nothing, when the worker no longer owns the job. Raise
        ValueError for a status that is not final. The same as a one-element `finish_many`.
        """
        ...

    def finish_many(
        self,
        worker: str,
        outcomes: Sequence[Outcome],
        *,
        history_max_points: int = 500,
    ) -> builtins.list[bool]:
        """`finish` for many jobs in one atomic step (O(1) round trips); answers in order.

        Only the jobs `worker` owns (running) finish; the others are left unchanged (False).
        Raise ValueError, changing nothing, if any outcome's status is not final.
        """
        ...

    def request_cancel(self, job_id: str) -> JobRecord:
        """Cancel a queued job at once, or flag a running one for its worker to stop.

        Raise NotFinished(job_id, status) if the job has already finished, KeyError if unknown.
        """
        ...

    def delete(self, job_id: str) -> None:
        """Forget a finished job and its blobs. Raise NotFinished if it has not finished, KeyError
        if unknown."""
        ...

    def recover_expired(
        self, now: datetime, max_attempts: int
    ) -> tuple[builtins.list[str], builtins.list[str]]:
        """Handle running jobs whose lease expired before `now` (their worker died).

        Those with attempts < max_attempts go back to queued (worker and lease cleared); the others
        fail with error "worker lost after N attempts". Return (requeued ids, failed ids).
        """
        ...

    def queued_ids(self, limit: int = 1000) -> builtins.list[str]:
        """Ids of queued jobs, oldest first: what a restarted embedded service re-enqueues."""
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


def capped(points: Sequence[HistoryPoint], cap: int) -> builtins.list[HistoryPoint]:
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


def check_final(outcomes: Sequence[Outcome]) -> None:
    """Refuse, before anything changes, an outcome whose status is not a final one."""
    for outcome in outcomes:
        if outcome.status not in FINISHED:
            raise ValueError(f"finish needs a final status, not {outcome.status}")


class SingleJobForms(ABC):
    """`heartbeat` and `finish` for one job, as one-element calls of the many-job forms.

    Both stores inherit these, so the single and batched paths are one code path.
    """

    @abstractmethod
    def heartbeat_many(
        self,
        worker: str,
        lease_s: float,
        beats: Sequence[Beat],
        *,
        history_max_points: int = 500,
    ) -> builtins.list[Heartbeat]: ...

    @abstractmethod
    def finish_many(
        self,
        worker: str,
        outcomes: Sequence[Outcome],
        *,
        history_max_points: int = 500,
    ) -> builtins.list[bool]: ...

    def heartbeat(
        self,
        job_id: str,
        worker: str,
        lease_s: float,
        *,
        progress: Progress | None = None,
        history: builtins.list[HistoryPoint] | None = None,
        history_max_points: int = 500,
    ) -> Heartbeat:
        beat = Beat(job_id, progress=progress, history=history)
        return self.heartbeat_many(worker, lease_s, [beat], history_max_points=history_max_points)[
            0
        ]

    def finish(
        self,
        job_id: str,
        worker: str,
        *,
        status: JobStatus,
        summary: Summary | None = None,
        result: bytes | None = None,
        error: str | None = None,
        history: builtins.list[HistoryPoint] | None = None,
        history_max_points: int = 500,
    ) -> bool:
        outcome = Outcome(
            job_id, status=status, summary=summary, result=result, error=error, history=history
        )
        return self.finish_many(worker, [outcome], history_max_points=history_max_points)[0]
