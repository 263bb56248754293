"""A finished job's inverse as JSON: in GET /jobs/{id}/result, and inline in the answer to a
`Prefer: wait` request whose job finished in time (so that a small job is one request)."""

from __future__ import annotations

from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool

from ninv.jobs import JobRecord
from ninv.npy import from_npy
from ninv.schemas import Job
from ninv.store import JobNotFound, JobStore

__all__ = ["HeldRead", "inverse_values"]


def inverse_values(blob: bytes) -> Any:
    """The stored inverse (`.npy`) as nested lists; a non-finite entry (a diverged solve) is
    None, since JSON has no NaN."""
    inverse = from_npy(blob)
    if np.isfinite(inverse).all():
        return inverse.tolist()
    cells = inverse.astype(object)
    cells[~np.isfinite(inverse)] = None
    return cells.tolist()


#: An inverse of at most this many entries is put inline on the event loop (tens of
#: microseconds); a larger one, up to NINV_INLINE_MAX_ENTRIES, in the thread pool.
ON_LOOP_ENTRIES = 1024


class HeldRead:
    """Reads a job held by `Prefer: wait`, and answers it with a small inverse inline.

    Once the job is known to fit inline (at most NINV_INLINE_MAX_ENTRIES entries: `sized`, or
    learnt from the first read), each read takes the inverse with the record in one store read,
    so a job found finished is answered without reading again. Reads block: call them in the
    thread pool; `answer` puts the inverse inline on the event loop only when that is quick.
    """

    def __init__(self, store: JobStore, job_id: str, owner: str, max_entries: int) -> None:
        self._store, self._job_id, self._owner = store, job_id, owner
        self._max_entries = max_entries
        self._entries: int | None = None  # unknown until the job's size is
        self._blob: bytes | None = None
        self._blob_read = False

    def sized(self, n: int, batch: int | None) -> HeldRead:
        """Know the job's size before the first read (a new submission's)."""
        self._entries = _entries(n, batch)
        return self

    @property
    def _fits(self) -> bool:
        return self._entries is not None and self._entries <= self._max_entries

    def __call__(self) -> JobRecord | None:
        """The job as it is now; None if it is gone (or not the owner's)."""
        self._blob_read = False
        if not self._fits:
            record = self._store.get(self._job_id, owner=self._owner)
            if record is not None and self._entries is None:
                self.sized(record.n, record.batch)
            return record
        try:
            record, self._blob = self._store.result(self._job_id, owner=self._owner)
        except JobNotFound:
            return None
        self._blob_read = True
        return record

    def _inline(self, job: Job) -> Job:
        """The finished job with its inverse inline when it fits and has one, else as it is."""
        if not self._fits:
            return job
        if not self._blob_read:  # read without it (its size was not known yet)
            try:
                _, self._blob = self._store.result(self._job_id, owner=self._owner)
            except JobNotFound:  # deleted since it was read: answered as it was then
                return job
        if self._blob is None:  # failed or cancelled without an inverse
            return job
        return job.model_copy(update={"inverse": inverse_values(self._blob)})

    async def answer(self, job: Job) -> Job:
        """The finished job with its inverse inline when it fits and has one: on the event loop
        when that is quick (no store read, a small inverse to convert), else in the thread pool."""
        self.sized(job.n, job.batch)
        small = _entries(job.n, job.batch) <= ON_LOOP_ENTRIES
        if not self._fits or (self._blob_read and small):
            return self._inline(job)
        return await run_in_threadpool(self._inline, job)


def _entries(n: int, batch: int | None) -> int:
    return n * n * (batch or 1)
