"""Playing the worker's part on a real store, for tests that need jobs to move without one.

`heartbeat`, `finish` and `load_result` are the store's single-job forms: the product only uses
the batched `heartbeat_many`/`finish_many` and the owner-scoped `result`. `FakeWorker` drives
jobs as a worker does: claim, heartbeat with progress and history, finish with the inverse.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ninv.jobs import utcnow
from ninv.npy import from_npy, to_npy
from ninv.schemas import CurvePoint, HistoryPoint, JobStatus, Progress, StopReason, Summary
from ninv.store import Beat, Heartbeat, JobNotFound, JobStore, Outcome


def heartbeat(
    store: JobStore,
    job_id: str,
    worker: str,
    lease_s: float,
    *,
    progress: Progress | None = None,
    history: list[HistoryPoint] | None = None,
    history_max_points: int = 500,
) -> Heartbeat:
    """A one-element `heartbeat_many`."""
    beat = Beat(job_id, progress=progress, history=history)
    return store.heartbeat_many(worker, lease_s, [beat], history_max_points=history_max_points)[0]


def finish(
    store: JobStore,
    job_id: str,
    worker: str,
    *,
    status: JobStatus,
    summary: Summary | None = None,
    result: bytes | None = None,
    error: str | None = None,
    history: Sequence[CurvePoint] | None = None,
    history_max_points: int = 500,
) -> bool:
    """A one-element `finish_many` (ValueError for a status that is not final)."""
    outcome = Outcome(
        job_id, status=status, summary=summary, result=result, error=error, history=history
    )
    return store.finish_many(worker, [outcome], history_max_points=history_max_points)[0]


def load_result(store: JobStore, job_id: str) -> bytes | None:
    """A job's stored inverse; None for an unknown job too."""
    try:
        return store.result(job_id)[1]
    except JobNotFound:
        return None


class FakeWorker:
    """Claims, ticks and finishes jobs on the real store, as worker/runner.py does."""

    def __init__(self, store: JobStore, name: str = "w1", lease_s: float = 30.0) -> None:
        self.store = store
        self.name = name
        self.lease_s = lease_s

    def claim(self, job_id: str) -> None:
        assert self.store.claim(job_id, self.name, self.lease_s) is not None

    def tick(self, job_id: str, iteration: int, max_iter: int = 1000) -> bool:
        """Report progress (loss 1/iteration) and one history point; True when the job's cancel
        flag is up."""
        loss = 1.0 / iteration
        progress = Progress(
            iteration=iteration,
            max_iter=max_iter,
            loss=loss,
            residual=2 * loss,
            aux_error=3 * loss,
            lr=0.05,
            rate=1000.0,
            eta_s=(max_iter - iteration) / 1000,
            updated_at=utcnow(),
        )
        point = HistoryPoint(
            iteration=iteration, loss=loss, residual=2 * loss, aux_error=3 * loss, lr=0.05
        )
        beat = heartbeat(
            self.store, job_id, self.name, self.lease_s, progress=progress, history=[point]
        )
        assert beat.owned
        return beat.cancel_requested

    @staticmethod
    def summary(
        iterations: int = 1000, reason: StopReason = "max_iter", *, converged: bool = True
    ) -> Summary:
        """A summary as the worker writes it: residual 2e-3, within tol 1e-2 when `converged`,
        else above tol 1e-4 with a warning."""
        return Summary(
            method="adam",
            iterations=iterations,
            max_iter=1000,
            loss=1e-3,
            residual=2e-3,
            aux_error=3e-3,
            converged=converged,
            reason=reason,
            tol=1e-2 if converged else 1e-4,
            cond=4.0,
            device="cpu",
            dtype="float64",
            elapsed_s=1.25,
            warnings=[] if converged else ["adam stopped at residual 0.002, above tol 0.0001"],
        )

    def succeed(
        self,
        job_id: str,
        inverse: np.ndarray[Any, Any] | None = None,
        *,
        reason: StopReason = "max_iter",
        converged: bool = True,
    ) -> np.ndarray[Any, Any]:
        """Finish with `inverse` (default: the exact inverse of the stored input); return it."""
        if inverse is None:
            blob = self.store.load_matrices([job_id])[0]
            assert blob is not None
            inverse = np.linalg.inv(from_npy(blob))
        summary = self.summary(reason=reason, converged=converged)
        assert self._finish(job_id, JobStatus.succeeded, summary=summary, result=to_npy(inverse))
        return inverse

    def fail(self, job_id: str, error: str = "diverged: loss is nan") -> None:
        assert self._finish(job_id, JobStatus.failed, error=error)

    def cancelled(self, job_id: str, best: np.ndarray[Any, Any] | None = None) -> None:
        """Finish as cancelled, keeping `best` as the result when given (as the worker does)."""
        summary = self.summary(iterations=20, reason="cancelled", converged=False)
        result = None if best is None else to_npy(best)
        assert self._finish(job_id, JobStatus.cancelled, summary=summary, result=result)

    def _finish(self, job_id: str, status: JobStatus, **fields: Any) -> bool:
        return finish(self.store, job_id, self.name, status=status, **fields)

    def run(
        self,
        job_id: str,
        inverse: np.ndarray[Any, Any] | None = None,
        *,
        iterations: tuple[int, ...] = (10, 100, 1000),
        reason: StopReason = "max_iter",
        converged: bool = True,
    ) -> np.ndarray[Any, Any]:
        """Claim, tick through `iterations`, succeed."""
        self.claim(job_id)
        for iteration in iterations:
            self.tick(job_id, iteration)
        return self.succeed(job_id, inverse, reason=reason, converged=converged)

    def run_next_in_thread(
        self, *, pause: float = 0.1, fail: str | None = None, converged: bool = True
    ) -> tuple[threading.Thread, dict[str, Any]]:
        """In a thread: wait for the next queued job, then run it (slowly) to the end."""
        out: dict[str, Any] = {}

        def work() -> None:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                queued = self.store.queued_ids()
                if queued:
                    job_id = queued[0]
                    self.claim(job_id)
                    for iteration in (10, 100, 1000):
                        time.sleep(pause)
                        self.tick(job_id, iteration)
                    time.sleep(pause)
                    if fail:
                        self.fail(job_id, fail)
                    else:
                        out["inverse"] = self.succeed(job_id, converged=converged)
                    out["job_id"] = job_id
                    return
                time.sleep(0.01)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        return thread, out
