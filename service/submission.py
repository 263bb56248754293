"""Accepting a job: store it, then enqueue it, so that a 202 is never sent for a lost job."""

from __future__ import annotations

import logging

from celery import Celery

from ninv.jobs import JobRecord
from ninv.queue import send_marked_wake
from ninv.schemas import JobStatus
from ninv.store import JobStore, TooManyActive
from service.errors import ProblemError
from service.parsing import ParsedRequest

__all__ = ["new_record", "submit"]

log = logging.getLogger("ninv.service")

#: Seconds a client should wait before retrying a submission the broker refused.
ENQUEUE_RETRY_AFTER_S = 5
#: Seconds a client over NINV_MAX_ACTIVE_PER_KEY should wait: about a batch's solve.
BUSY_RETRY_AFTER_S = 10


def new_record(
    parsed: ParsedRequest,
    *,
    owner: str,
    idempotency_key: str | None,
    request_hash: str | None,
    batch_max_n: int,
) -> JobRecord:
    """The queued job for a parsed request, with a fresh id (uuid4 hex)."""
    return JobRecord.queued(
        parsed.options,
        n=parsed.n,
        batch=parsed.batch,
        input_dtype=parsed.input_dtype,
        owner=owner,
        batch_max_n=batch_max_n,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
    )


def submit(
    store: JobStore,
    celery: Celery,
    record: JobRecord,
    matrix: bytes,
    *,
    max_active: int,
    pending_s: float,
) -> tuple[JobRecord, bool]:
    """Create the job (or find its Idempotency-Key twin) and wake a worker; (job, created).

    The job is stored before any message is sent, and the message only says "jobs wait": it
    is sent when none is pending (the pending mark, set by `store.create` in the same write as
    the job), so a burst costs a few messages. If
    sending fails the job stays queued in the store, where the lease sweeper or a worker's
    start-up finds it, and the caller gets 503 naming the job; a retry with the same
    Idempotency-Key tries the message again. An owner with `max_active` jobs queued or running
    gets 429.
    """
    try:
        job, created, marked = store.create(
            record, matrix, max_active=max_active, wake_pending_s=pending_s
        )
    except TooManyActive as exc:
        raise ProblemError(
            429,
            f"this API key has {exc.limit} jobs queued or running, the most it may have "
            "(NINV_MAX_ACTIVE_PER_KEY); retry when some have finished",
            title="Too Many Requests",
            headers={"Retry-After": str(BUSY_RETRY_AFTER_S)},
        ) from None
    # A replay of a queued job sends the message again if none is pending: the first request
    # may have stored its job and died before sending.
    if marked or (not created and job.status == JobStatus.queued and store.mark_wake(pending_s)):
        try:
            send_marked_wake(celery, store)
        except Exception as exc:  # any broker failure: kombu, redis, OS errors
            log.warning("wake for job %s failed: %s", job.id, type(exc).__name__)
            raise ProblemError(
                503,
                f"job {job.id} is stored but the queue does not answer; it will run when a "
                "worker recovers it, or retry with the same Idempotency-Key",
                headers={"Retry-After": str(ENQUEUE_RETRY_AFTER_S)},
                job_id=job.id,
            ) from None
    return job, created
