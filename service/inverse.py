"""A finished job's inverse as JSON: in GET /jobs/{id}/result, and inline in the answer to a
`Prefer: wait` request whose job finished in time (so that a small job is one request)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ninv.npy import from_npy
from ninv.schemas import Job
from ninv.store import JobNotFound, JobStore

__all__ = ["inverse_values", "with_inverse"]


def inverse_values(blob: bytes) -> Any:
    """The stored inverse (`.npy`) as nested lists; a non-finite entry (a diverged solve) is
    None, since JSON has no NaN."""
    inverse = from_npy(blob)
    if np.isfinite(inverse).all():
        return inverse.tolist()
    cells = inverse.astype(object)
    cells[~np.isfinite(inverse)] = None
    return cells.tolist()


def with_inverse(job: Job, store: JobStore, owner: str, max_entries: int) -> Job:
    """The finished job with its inverse inline when it has one of at most `max_entries`
    entries (NINV_INLINE_MAX_ENTRIES), else as it is. Sized from the job before anything is
    read, then one owner-scoped store read; blocking, so call it in the thread pool."""
    if job.n * job.n * (job.batch or 1) > max_entries:
        return job
    try:
        _, blob = store.result(job.id, owner=owner)
    except JobNotFound:  # deleted since it was read: answered as it was then
        return job
    if blob is None:  # failed or cancelled without an inverse
        return job
    return job.model_copy(update={"inverse": inverse_values(blob)})
