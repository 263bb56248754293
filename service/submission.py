"""Accepting a job: store it, then enqueue it, so that a 202 is never sent for a lost job."""

from __future__ import annotations

import logging

from celery import Celery

from ninv.jobs import JobRecord
from ninv.queue import enqueue
from ninv.schemas import JobStatus
from ninv.store import JobStore
from service.errors import ProblemError
from service.parsing import ParsedRequest

__all__ = ["new_record", "submit"]

log = logging.getLogger("ninv.service")

#: Seconds a client should wait before retrying a submission the broker refused.
ENQUEUE_RETRY_AFTER_S = 5


def new_record(
    parsed: ParsedRequest,
    *,
    owner: str,
    idempotency_key: str | None,
    request_hash: str,
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
    store: JobStore, celery: Celery, record: JobRecord, matrix: bytes
) -> tuple[JobRecord, bool]:
    """Create the job (or find its Idempotency-Key twin) and send its task; (job, created).

    The job is stored before its message is sent. If sending fails the job stays queued in the
    store, where the worker's start-up recovery re-enqueues it, and the caller gets 503 naming
    the job; a retry with the same Idempotency-Key sends the message again. A duplicate message
    is harmless: a worker claims only a queued job.
    """
    job, created = store.create(record, matrix)
    if created or job.status == JobStatus.queued:
        try:
            enqueue(celery, job.id)
        except Exception as exc:  # any broker failure: kombu, redis, OS errors
            log.warning("enqueue of job %s failed: %s", job.id, type(exc).__name__)
            raise ProblemError(
                503,
                f"job {job.id} is stored but the queue does not answer; it will run when a "
                "worker recovers it, or retry with the same Idempotency-Key",
                headers={"Retry-After": str(ENQUEUE_RETRY_AFTER_S)},
                job_id=job.id,
            ) from None
    return job, created
