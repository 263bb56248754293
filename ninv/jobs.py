"""The job record as the store keeps it, and the rules that derive its fields."""

from __future__ import annotations

from datetime import UTC, datetime

from ninv.schemas import Job, SolveOptions

__all__ = ["JobRecord", "batch_key", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def batch_key(
    options: SolveOptions, n: int, batch: int | None, *, batch_max_n: int
) -> str | None:
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

    def view(self) -> Job:
        """The job as the API shows it: without owner, lease or idempotency data."""
        return Job.model_validate(self.model_dump(include=set(Job.model_fields)))
