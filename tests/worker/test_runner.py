"""JobRunner, the task's body, in-process on the real Redis store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from ninv.jobs import JobRecord
from ninv.schemas import JobStatus
from ninv.settings import Settings
from ninv.store import JobStore
from tests.helpers import submit
from worker import solver
from worker.runner import JobRunner


def test_a_job_past_the_time_limit_fails_and_says_why(settings: Settings, store: JobStore) -> None:
    runner = JobRunner(store, settings.model_copy(update={"job_timeout_s": 1}), worker_id="w")
    # Large enough that a second holds far fewer steps than a stall window.
    hard = np.random.default_rng(0).standard_normal((256, 256))
    job = submit(store, settings, hard, send=False, max_iter=100_000_000)

    runner.run(job.id)

    done = store.get(job.id)
    assert done is not None and done.status is JobStatus.failed
    assert done.error is not None and "NINV_JOB_TIMEOUT_S" in done.error
    assert done.summary is not None and done.summary.iterations < 100_000_000


def test_a_batch_input_reports_its_worst_matrix_and_each_one(
    settings: Settings, store: JobStore
) -> None:
    runner = JobRunner(store, settings, worker_id="w")
    easy, hard = np.eye(4) * 2, np.diag([1.0, 1e-3, 1.0, 1.0])
    job = submit(
        store, settings, np.stack([easy, hard]), method="gd", max_iter=200, dtype="float64"
    )

    runner.run(job.id)

    done = store.get(job.id)
    assert done is not None and done.status is JobStatus.succeeded, done.error
    summary = done.summary
    assert summary is not None and summary.matrices is not None and len(summary.matrices) == 2
    assert summary.residual == max(m.residual or 0.0 for m in summary.matrices)
    assert summary.converged is False and summary.matrices[0].converged is True
    assert store.history(job.id)


def test_a_job_already_claimed_elsewhere_is_left_alone(settings: Settings, store: JobStore) -> None:
    job = submit(store, settings, np.eye(4), send=False)
    assert store.claim(job.id, "other-worker", 60) is not None

    JobRunner(store, settings, worker_id="w").run(job.id)

    held = store.get(job.id)
    assert held is not None and held.status is JobStatus.running and held.worker == "other-worker"


def test_the_stored_curve_runs_from_the_start_to_the_end(
    settings: Settings, store: JobStore
) -> None:
    matrix = np.random.default_rng(1).standard_normal((48, 48))  # several ticks long
    job = submit(store, settings, matrix, send=False, max_iter=20_000, seed=0)

    JobRunner(store, settings, worker_id="w").run(job.id)

    done = store.get(job.id)
    assert done is not None and done.summary is not None
    iterations = [point.iteration for point in store.history(job.id)]
    assert iterations[0] == 0 and iterations[-1] == done.summary.iterations
    assert iterations == sorted(set(iterations)) and len(iterations) >= 10
    assert len(iterations) <= settings.history_max_points


def test_a_small_job_runs_on_the_solvers_one_thread_and_restores_the_pool(
    settings: Settings, store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The thread policy lives in the solver (tests/solver/test_threads.py): the runner just
    calls it, and its small jobs still run on one thread."""
    from worker import runner as runner_module

    seen: list[int] = []

    def invert_watching_threads(*args: Any, **kwargs: Any) -> Any:
        report = kwargs["on_progress"]

        def on_progress(point: Any) -> Any:
            seen.append(torch.get_num_threads())
            return report(point)

        return solver.invert_resumable(*args, **{**kwargs, "on_progress": on_progress})

    monkeypatch.setattr(runner_module, "invert_resumable", invert_watching_threads)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        job = submit(store, settings, np.eye(16) * 2, send=False, max_iter=128)
        fast = settings.model_copy(update={"progress_every_s": 0})
        JobRunner(store, fast, worker_id="w").run(job.id)
        done = store.get(job.id)
        assert done is not None and done.status is JobStatus.succeeded, done.error
        assert seen and set(seen) == {1} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_singular_job_succeeds_but_says_it_did_not_converge(
    settings: Settings, store: JobStore
) -> None:
    job = submit(store, settings, np.ones((4, 4)), send=False, method="cg", dtype="float64")

    JobRunner(store, settings, worker_id="w").run(job.id)

    done = store.get(job.id)
    assert done is not None and done.status is JobStatus.succeeded  # it ran to a stop
    summary = done.summary
    assert summary is not None and not summary.converged and summary.reason == "singular"
    assert summary.tol == 1e-10 and "pseudo-)inverse" in summary.warnings[0]


def test_stall_window_reaches_the_solver_and_the_curve_keeps_every_check(
    settings: Settings, store: JobStore
) -> None:
    from tests.solver.problems import original_family

    runner = JobRunner(store, settings, worker_id="w")
    x = original_family(0)  # adam stalls on it near 23,000 steps with the default window
    job = submit(store, settings, x, send=False, max_iter=30_000, seed=0, stall_window=0)

    runner.run(job.id)

    done = store.get(job.id)
    assert done is not None and done.summary is not None
    assert done.summary.iterations == 30_000 and done.summary.reason == "max_iter"
    points = store.history(job.id)
    assert len(points) >= 30_000 // 64  # a point at every check: 469 of them
    assert next(p.iteration for p in points if p.lr == 0.025) == 10_000  # the stage change


def _claims_with_arrival(
    store: JobStore, arrive: Callable[[], object]
) -> tuple[list[int], Callable[..., list[JobRecord]]]:
    """store.claim_next counting each claim's jobs; `arrive` runs when the queue first comes up
    empty (a job submitted just after the drain emptied it)."""
    counts: list[int] = []
    claim_next = store.claim_next

    def claim(*args: Any, **kwargs: Any) -> list[JobRecord]:
        taken = claim_next(*args, **kwargs)
        if not taken and counts.count(0) == 0:
            arrive()
        counts.append(len(taken))
        return taken

    return counts, claim


def test_a_drain_takes_jobs_that_arrive_just_after_it_emptied_the_queue(
    settings: Settings, store: JobStore
) -> None:
    runner = JobRunner(store, settings, worker_id="w")
    first = submit(store, settings, np.eye(4) * 2, send=False, method="exact")
    late: list[JobRecord] = []
    counts, store.claim_next = _claims_with_arrival(  # type: ignore[method-assign]
        store, lambda: late.append(submit(store, settings, np.eye(4), send=False, method="exact"))
    )

    # One drain, one wake message: the second job needs none of its own.
    assert runner.drain(lambda: None) == 2

    assert counts[:3] == [1, 0, 1]  # it looked again, and found the late job
    assert counts[-1] == 0  # then the queue stayed empty for DRAIN_LINGER_S and it ended
    for job in (first, *late):
        done = store.get(job.id)
        assert done is not None and done.status is JobStatus.succeeded


def test_a_drain_that_finds_nothing_ends_at_once(settings: Settings, store: JobStore) -> None:
    runner = JobRunner(store, settings, worker_id="w")
    counts, store.claim_next = _claims_with_arrival(store, lambda: None)  # type: ignore[method-assign]
    looks: list[int] = []  # a lingering drain's reads of the queue
    queued_ids = store.queued_ids

    def looking(limit: int = 1000) -> list[str]:
        looks.append(limit)
        return queued_ids(limit)

    store.queued_ids = looking  # type: ignore[method-assign]

    assert runner.drain(lambda: None) == 0

    assert counts == [0]  # nothing taken, nothing to linger for: one claim
    assert looks == []  # and no waiting for more
