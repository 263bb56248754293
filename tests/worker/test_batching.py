"""Compatible small jobs solved together in one batched solve, each keeping its own fate."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from ninv.jobs import JobRecord
from ninv.schemas import JobStatus
from ninv.settings import Settings
from ninv.store import JobStore, open_store
from tests.fake_worker import load_result
from tests.helpers import (
    WorkerProcess,
    drop_redis_prefix,
    load_npy,
    redis_settings,
    submit,
    wait_finished,
    wait_for,
)
from worker.runner import JobRunner


def matrices(count: int, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(n)
    return [rng.standard_normal((n, n)) + n * np.eye(n) for _ in range(count)]


OPTIONS = [
    {"max_iter": 3000, "seed": 1},
    {"max_iter": 500, "seed": 2},
    {"max_iter": 3000, "seed": 3, "tol": 1e-3},
    {"max_iter": 2000, "seed": 4, "lr_schedule": [[0, 0.02], [700, 0.01]]},
]


def finished(store: JobStore, job: JobRecord) -> JobRecord:
    record = store.get(job.id)
    assert record is not None
    return record


def test_a_batch_gives_what_each_job_gives_alone(settings: Settings, store: JobStore) -> None:
    together = JobRunner(store, settings.model_copy(update={"batch_max": 8}), worker_id="w")
    alone_settings = redis_settings(batch_max=1, progress_every_s=0.1)
    alone_store = open_store(alone_settings)
    alone = JobRunner(alone_store, alone_settings, worker_id="w")
    try:
        inputs = matrices(len(OPTIONS), 8)
        batched = [
            submit(store, settings, m, send=False, **o)
            for m, o in zip(inputs, OPTIONS, strict=True)
        ]
        single = [
            submit(alone_store, alone_settings, m, send=False, **o)
            for m, o in zip(inputs, OPTIONS, strict=True)
        ]

        together.run(batched[0].id)  # one call takes every compatible queued job
        for job in single:
            alone.run(job.id)

        for b, s in zip(batched, single, strict=True):
            b_done, s_done = finished(store, b), finished(alone_store, s)
            assert b_done.status is s_done.status is JobStatus.succeeded
            assert b_done.summary is not None and s_done.summary is not None
            assert b_done.summary.iterations == s_done.summary.iterations
            assert b_done.summary.reason == s_done.summary.reason
            np.testing.assert_allclose(
                load_npy(load_result(store, b.id)),  # type: ignore[arg-type]
                load_npy(load_result(alone_store, s.id)),  # type: ignore[arg-type]
                rtol=1e-4,
                atol=1e-6,
            )
        assert finished(store, batched[1]).summary.iterations == 500  # type: ignore[union-attr]
        assert finished(store, batched[2]).summary.reason == "converged"  # type: ignore[union-attr]
    finally:
        alone_store.close()
        drop_redis_prefix(alone_settings.redis_prefix)


def test_a_job_that_stops_early_is_stored_before_the_batch_ends(
    settings: Settings, store: JobStore
) -> None:
    runner = JobRunner(store, settings.model_copy(update={"batch_max": 8}), worker_id="w")
    short, *long = [
        submit(store, settings, m, send=False, max_iter=it, seed=0)
        for m, it in zip(matrices(3, 8), (200, 20_000, 20_000), strict=True)
    ]

    runner.run(short.id)

    short_done = finished(store, short)
    for job in long:
        done = finished(store, job)
        assert done.status is JobStatus.succeeded
        assert short_done.finished_at is not None and done.finished_at is not None
        assert short_done.finished_at < done.finished_at


def test_sizes_methods_and_large_matrices_are_never_batched_together(
    settings: Settings, store: JobStore
) -> None:
    runner = JobRunner(store, settings.model_copy(update={"batch_max": 8}), worker_id="w")
    first = submit(store, settings, matrices(1, 8)[0], send=False, max_iter=100)
    same = submit(store, settings, matrices(1, 8)[0], send=False, max_iter=100)
    other_n = submit(store, settings, matrices(1, 9)[0], send=False, max_iter=100)
    other_method = submit(store, settings, matrices(1, 8)[0], send=False, method="cg")
    other_dtype = submit(store, settings, matrices(1, 8)[0], send=False, dtype="float64")
    large = submit(store, settings, matrices(1, settings.batch_max_n + 1)[0], send=False)

    runner.run(first.id)

    assert finished(store, same).status is JobStatus.succeeded
    for job in (other_n, other_method, other_dtype, large):
        assert finished(store, job).status is JobStatus.queued
    assert large.batch_key is None


def test_exact_jobs_batch_and_a_singular_one_fails_alone(
    settings: Settings, store: JobStore
) -> None:
    runner = JobRunner(store, settings.model_copy(update={"batch_max": 8}), worker_id="w")
    inputs = matrices(5, 6)
    inputs[2] = np.ones((6, 6))
    jobs = [submit(store, settings, m, send=False, method="exact") for m in inputs]
    claimed: list[int] = []
    claim_next = store.claim_next

    def counting_claim_next(*args: object, **kwargs: object) -> list[JobRecord]:
        taken = claim_next(*args, **kwargs)  # type: ignore[arg-type]
        claimed.append(len(taken))
        return taken

    store.claim_next = counting_claim_next  # type: ignore[method-assign]

    assert runner.drain(lambda: None) == 5

    assert claimed[0] == 5  # one claim took them all
    for job, matrix in zip(jobs, inputs, strict=True):
        done = finished(store, job)
        if job is jobs[2]:
            assert done.status is JobStatus.failed
            assert done.error is not None and "singular" in done.error
            assert "of the batch" not in done.error  # its own message, not the stack's
            continue
        assert done.status is JobStatus.succeeded
        np.testing.assert_allclose(
            load_npy(load_result(store, job.id)) @ matrix,  # type: ignore[arg-type]
            np.eye(6),
            atol=1e-5,
        )


def test_batching_can_be_turned_off(settings: Settings, store: JobStore) -> None:
    runner = JobRunner(store, settings.model_copy(update={"batch_max": 1}), worker_id="w")
    first, second = (submit(store, settings, m, send=False, max_iter=100) for m in matrices(2, 8))

    runner.run(first.id)

    assert finished(store, first).status is JobStatus.succeeded
    assert finished(store, second).status is JobStatus.queued


@pytest.mark.e2e
def test_cancelling_one_job_leaves_the_rest_of_its_batch_running(
    settings: Settings, store: JobStore, start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = settings.model_copy(update={"batch_max_n": 128})
    # Gaussian 128x128 matrices: adam needs seconds per stall window, so all keep running.
    rng = np.random.default_rng(0)
    jobs = [
        submit(store, settings, rng.standard_normal((128, 128)), max_iter=50_000_000, seed=i)
        for i in range(3)
    ]
    start_worker(settings)
    wait_for(
        lambda: all(finished(store, j).status is JobStatus.running for j in jobs),
        what="all three jobs running in one batch",
    )

    store.request_cancel(jobs[0].id)
    assert wait_finished(store, jobs[0].id, timeout=15).status is JobStatus.cancelled
    wait_for(lambda: finished(store, jobs[1]).progress is not None, what="progress")
    iteration = finished(store, jobs[1]).progress.iteration  # type: ignore[union-attr]
    wait_for(
        lambda: finished(store, jobs[1]).progress.iteration > iteration,  # type: ignore[union-attr]
        what="the rest of the batch to go on",
    )
    assert finished(store, jobs[2]).status is JobStatus.running

    for job in jobs[1:]:
        store.request_cancel(job.id)
    for job in jobs[1:]:
        assert wait_finished(store, job.id, timeout=15).status is JobStatus.cancelled


@pytest.mark.e2e
def test_killing_the_worker_mid_batch_loses_no_job(
    settings: Settings, store: JobStore, start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = settings.model_copy(update={"batch_max_n": 128})
    inputs = matrices(4, 96)  # about a second to converge: the kill lands mid-batch
    jobs = [
        submit(store, settings, m, max_iter=60_000, seed=i, dtype="float64")
        for i, m in enumerate(inputs)
    ]
    first = start_worker(settings)
    wait_for(
        lambda: all(finished(store, j).progress is not None for j in jobs),
        what="the batch to report progress",
    )

    first.kill()
    start_worker(settings)

    for job, matrix in zip(jobs, inputs, strict=True):
        done = wait_finished(store, job.id, timeout=180)
        assert done.status is JobStatus.succeeded, done.error
        assert done.attempts == 2
        np.testing.assert_allclose(
            load_npy(load_result(store, job.id)),  # type: ignore[arg-type]
            np.linalg.inv(matrix),
            atol=1e-4,
        )
