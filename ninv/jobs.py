"""The job record as the store keeps it, and the rules that derive its fields."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from ninv.schemas import Job, JobStatus, SolveOptions

__all__ = ["JobRecord", "batch_key", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def batch_key(options: SolveOptions, n: int, batch: int | None, *, batch_max_n: int) -> str | None:
    """The key under which compatible queued jobs are solved together, or None.

    Jobs batch only with jobs of the same n, dtype, method and device; large matrices and
    inputs that already are a batch never do.
    """
    if batch is not None or n > batch_max_n or options.method == "exact":
        return None
    return f"{options.method}:{options.dtype}:{options.device}:{n}"


class JobRecord(Job):
    """A job with the fields only the store and the worker see."""

    owner: str
    lease_until: datetime | None = None
    batch_key: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None

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
        return Job.model_validate(self.model_dump(include=set(Job.model_fields)))
