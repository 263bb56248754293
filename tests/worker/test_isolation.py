"""One job's bad input or bad luck never fails another's: per-job checks before a batch, and a
batched solve that fails is re-run in halves before any job is failed (in-process, real Redis)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import worker.runner
from ninv.schemas import JobStatus
from ninv.settings import Settings
from ninv.store import JobStore
from tests.fake_worker import load_result
from tests.helpers import load_npy, submit
from worker.runner import JobRunner

A_FIRST = np.array([[2.0, 1.0], [1.0, 2.0]])
B_BAD = np.array([[1.0, 1.0], [3.0, 1e308]])  # 1e308 does not fit in float32
A_LATER = np.array([[3.0, 1.0], [1.0, 2.0]])


def test_a_bad_matrix_fails_its_own_job_alone_across_keys(
    settings: Settings, store: JobStore
) -> None:
    """The case of issue 11: six good jobs from key A, one bad from key B, six good from A,
    claimed together in one batch. The API refuses such a matrix now; an older API may have
    stored it, so it goes into the store as such a version left it."""
    opts: dict[str, Any] = {"method": "adam", "max_iter": 2000, "seed": 0}
    first = [submit(store, settings, A_FIRST, owner="key-a", send=False, **opts) for _ in range(6)]
    bad = submit(store, settings, B_BAD, owner="key-b", send=False, **opts)
    later = [submit(store, settings, A_LATER, owner="key-a", send=False, **opts) for _ in range(6)]
    runner = JobRunner(store, settings.model_copy(update={"batch_max": 16}), worker_id="w")

    assert runner.drain(lambda: None) == 13  # one batch: the same batch key

    failed = store.get(bad.id)
    assert failed is not None and failed.status is JobStatus.failed
    assert failed.error == "matrix entry 1e+308 at index [1, 1] overflows float32"
    for job, matrix in [(j, A_FIRST) for j in first] + [(j, A_LATER) for j in later]:
        done = store.get(job.id)
        assert done is not None and done.status is JobStatus.succeeded, done.error
        assert done.error is None
        inverse = load_npy(load_result(store, job.id))  # type: ignore[arg-type]
        np.testing.assert_allclose(inverse, np.linalg.inv(matrix), atol=1e-3)


class _FailsWhenBatched(JobRunner):
    """A runner whose batched solve dies (as out of memory would) above `max_together` jobs, and
    whose solve of `doomed` dies even alone."""

    def __init__(self, *args: Any, max_together: int, doomed: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_together = max_together
        self.doomed = doomed
        self.groups: list[int] = []

    def _solve_together(self, running: list[Any]) -> None:
        self.groups.append(len(running))
        if len(running) > self.max_together:
            raise MemoryError
        super()._solve_together(running)

    def _solve_alone(self, item: Any) -> None:
        self.groups.append(1)
        if item.job.id == self.doomed:
            raise MemoryError
        super()._solve_alone(item)


def test_a_batched_solve_that_fails_is_run_again_in_halves(
    settings: Settings, store: JobStore
) -> None:
    matrices = [np.eye(3) * (k + 2) for k in range(6)]
    jobs = [
        submit(store, settings, m, owner="key-a", send=False, method="newton-schulz")
        for m in matrices
    ]
    runner = _FailsWhenBatched(
        store,
        settings.model_copy(update={"batch_max": 8}),
        worker_id="w",
        max_together=2,
        doomed=jobs[3].id,
    )

    runner.drain(lambda: None)

    # 6 fails -> 3 + 3; each 3 fails -> 1 + 2; the 2s solve, the 1s solve alone
    assert runner.groups == [6, 3, 1, 2, 3, 1, 2]
    for job, matrix in zip(jobs[:3] + jobs[4:], matrices[:3] + matrices[4:], strict=True):
        done = store.get(job.id)
        assert done is not None and done.status is JobStatus.succeeded, done.error
        np.testing.assert_allclose(
            load_npy(load_result(store, job.id)),  # type: ignore[arg-type]
            np.linalg.inv(matrix),
            atol=1e-4,
        )
    doomed = store.get(jobs[3].id)
    assert doomed is not None and doomed.status is JobStatus.failed
    assert doomed.error is not None and "out of memory" in doomed.error


def test_matrices_of_one_shape_are_checked_in_one_call(
    settings: Settings, store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Checked stacked, once, when all pass; alone, each, only when the stack is refused (the
    # case above).
    checked: list[tuple[int, ...]] = []
    real = worker.runner.check_matrix

    def counting(matrix: Any, **kwargs: Any) -> None:
        checked.append(np.shape(matrix))
        real(matrix, **kwargs)

    monkeypatch.setattr(worker.runner, "check_matrix", counting)
    opts: dict[str, Any] = {"method": "newton-schulz", "owner": "key-a", "send": False}
    for k in range(5):
        submit(store, settings, A_FIRST * (k + 1), **opts)
    runner = JobRunner(store, settings.model_copy(update={"batch_max": 16}), worker_id="w")
    assert runner.drain(lambda: None) == 5
    assert checked == [(5, 2, 2)]
