"""Drive jobs through the real store as a worker would: claim, heartbeat, finish."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from ninv.jobs import utcnow
from ninv.schemas import HistoryPoint, JobStatus, Progress, StopReason, Summary
from ninv.store import JobStore

WORKER = "test-worker@host"
LEASE_S = 30.0


def npy(array: np.ndarray[Any, Any]) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def progress(iteration: int, max_iter: int = 1000) -> Progress:
    return Progress(
        iteration=iteration,
        max_iter=max_iter,
        loss=1.0 / iteration,
        residual=2.0 / iteration,
        aux_error=None,
        lr=0.05,
        rate=1000.0,
        eta_s=(max_iter - iteration) / 1000.0,
        updated_at=utcnow(),
    )


def summary(*, reason: StopReason = "converged", iterations: int = 1000) -> Summary:
    return Summary(
        method="adam",
        iterations=iterations,
        max_iter=1000,
        loss=1e-9,
        residual=1e-7,
        aux_error=None,
        converged=reason == "converged",
        reason=reason,
        cond=3.0,
        device="cpu",
        dtype="float64",
        elapsed_s=1.25,
    )


def claim(store: JobStore, job_id: str) -> None:
    assert store.claim(job_id, WORKER, LEASE_S) is not None


def tick(store: JobStore, job_id: str, iteration: int) -> None:
    point = progress(iteration)
    history = [
        HistoryPoint(iteration=iteration, loss=point.loss, residual=point.residual, lr=point.lr)
    ]
    beat = store.heartbeat(job_id, WORKER, LEASE_S, progress=point, history=history)
    assert beat.owned


def succeed(store: JobStore, job_id: str, inverse: np.ndarray[Any, Any]) -> None:
    assert store.finish(
        job_id, WORKER, status=JobStatus.succeeded, summary=summary(), result=npy(inverse)
    )


def fail(store: JobStore, job_id: str, error: str = "diverged: loss is nan") -> None:
    assert store.finish(job_id, WORKER, status=JobStatus.failed, error=error)


def run_to_success(store: JobStore, job_id: str, inverse: np.ndarray[Any, Any]) -> None:
    claim(store, job_id)
    for iteration in (10, 100, 1000):
        tick(store, job_id, iteration)
    succeed(store, job_id, inverse)
