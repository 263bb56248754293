"""A real Celery worker process over the real Redis (and over the embedded default)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ninv.jobs import utcnow
from ninv.queue import enqueue, make_celery
from ninv.schemas import JobStatus
from ninv.settings import Settings
from ninv.store import JobStore, open_store
from tests.fake_worker import load_result
from tests.helpers import WorkerProcess, load_npy, submit, wait_finished, wait_for

pytestmark = pytest.mark.e2e


#: A well-conditioned matrix this large takes adam about a second to converge (stall) on this
#: CPU: long enough for progress ticks, a cancel or a kill to land while it runs.
LASTING_N = 96


def well_conditioned(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n)) + n * np.eye(n)


def wait_running(store: JobStore, job_id: str) -> None:
    def running_with_progress() -> bool:
        job = store.get(job_id)
        return job is not None and job.progress is not None and job.progress.iteration > 0

    wait_for(running_with_progress, timeout=60, what=f"job {job_id} to report progress")


def test_job_runs_and_its_result_matches_numpy(
    settings: Settings, store: JobStore, start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker(settings)
    matrix = well_conditioned(LASTING_N)
    job = submit(store, settings, matrix, method="adam", max_iter=40_000, dtype="float64", seed=1)

    done = wait_finished(store, job.id)

    assert done.status is JobStatus.succeeded, done.error
    assert done.attempts == 1
    assert done.summary is not None and done.summary.iterations > 0
    assert done.progress is not None and done.progress.iteration > 0
    blob = load_result(store, job.id)
    assert blob is not None
    np.testing.assert_allclose(load_npy(blob), np.linalg.inv(matrix), atol=1e-6)
    history = store.history(job.id)
    assert history and history[-1].iteration <= done.summary.iterations
    assert [p.iteration for p in history] == sorted(p.iteration for p in history)


def test_cancel_stops_a_running_job_within_a_tick(
    settings: Settings, store: JobStore, start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker(settings)
    # A Gaussian 256x256: adam needs seconds per stall window, so it is surely still running.
    gaussian = np.random.default_rng(0).standard_normal((256, 256))
    job = submit(store, settings, gaussian, max_iter=50_000_000)
    wait_running(store, job.id)

    store.request_cancel(job.id)
    done = wait_finished(store, job.id, timeout=15)

    assert done.status is JobStatus.cancelled
    assert done.summary is not None and done.summary.reason == "cancelled"
    assert done.summary.iterations < 50_000_000
    assert load_result(store, job.id) is not None  # the best W so far


def test_a_redelivered_message_does_not_run_a_finished_job_again(
    settings: Settings, store: JobStore, start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker(settings)
    job = submit(store, settings, well_conditioned(8), method="newton-schulz", dtype="float64")
    first = wait_finished(store, job.id)

    enqueue(make_celery(settings), job.id)
    # One worker takes messages in order: once a job sent after it is done, it has been handled.
    later = submit(store, settings, well_conditioned(4), method="exact")
    assert wait_finished(store, later.id).status is JobStatus.succeeded

    again = store.get(job.id)
    assert again is not None
    assert (again.attempts, again.finished_at, again.summary) == (
        first.attempts,
        first.finished_at,
        first.summary,
    )


def test_a_solver_error_fails_the_job_with_a_usable_message(
    settings: Settings, store: JobStore, start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker(settings)
    job = submit(store, settings, np.zeros((4, 4)), method="exact")

    done = wait_finished(store, job.id)

    assert done.status is JobStatus.failed
    assert done.error is not None and "singular" in done.error


def _crash_and_recover(settings: Settings, start_worker: Callable[..., WorkerProcess]) -> None:
    store = open_store(settings)
    first = start_worker(settings)
    matrix = well_conditioned(LASTING_N, seed=3)
    job = submit(store, settings, matrix, max_iter=120_000, seed=3, dtype="float64")
    wait_running(store, job.id)

    first.kill()
    start_worker(settings)
    done = wait_finished(store, job.id, timeout=180)

    assert done.status is JobStatus.succeeded, done.error
    assert done.attempts == 2
    blob = load_result(store, job.id)
    assert blob is not None
    np.testing.assert_allclose(load_npy(blob), np.linalg.inv(matrix), atol=1e-4)
    store.close()


def test_a_job_survives_its_worker_being_killed(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    _crash_and_recover(settings, start_worker)


def test_the_embedded_default_survives_a_killed_worker_too(
    tmp_path: Path, start_worker: Callable[..., WorkerProcess]
) -> None:
    embedded = Settings(data_dir=tmp_path / "data", lease_s=5.0, progress_every_s=0.1)
    assert embedded.embedded
    _crash_and_recover(embedded, start_worker)


def test_a_job_past_its_last_attempt_fails_as_worker_lost(
    settings: Settings, store: JobStore
) -> None:
    from worker.recovery import LeaseSweeper

    job = submit(store, settings, well_conditioned(4), send=False)
    for attempt in range(settings.max_attempts):
        assert store.claim(job.id, f"dead-{attempt}", 0.01) is not None
        wait_for(lambda: (store.get(job.id).lease_until or utcnow()) < utcnow())  # type: ignore[union-attr]
        requeued: list[str] = []
        LeaseSweeper(
            store, requeued.append, max_attempts=settings.max_attempts, interval_s=1
        ).sweep()

    failed = store.get(job.id)
    assert failed is not None and failed.status is JobStatus.failed
    assert failed.error is not None and "worker lost" in failed.error
    assert failed.attempts == settings.max_attempts


def test_a_worker_announces_itself_and_withdraws_when_it_stops(
    settings: Settings, store: JobStore, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker(settings)
    wait_for(lambda: len(store.live_workers()) == 1, timeout=30, what="the worker's announcement")
    (info,) = store.live_workers()
    assert (info.device, info.cuda_devices, info.pid) == ("cpu", 0, worker.proc.pid)
    assert info.version and info.torch_version.startswith("2.")
    first_seen = info.last_seen
    # It keeps announcing itself (three times a lease): last_seen moves on.
    wait_for(
        lambda: store.live_workers()[0].last_seen > first_seen,
        timeout=30,
        what="a later announcement",
    )
    worker.stop()
    assert store.live_workers() == []


def test_a_killed_worker_drops_out_within_a_lease(
    settings: Settings, store: JobStore, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker(settings)
    wait_for(lambda: len(store.live_workers()) == 1, timeout=30, what="the worker's announcement")
    worker.kill()
    wait_for(lambda: store.live_workers() == [], timeout=30, what="the announcement to expire")
