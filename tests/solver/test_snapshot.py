"""Snapshots: a solve suspended at checks and resumed equals one never interrupted, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from tests.solver.problems import with_cond
from worker.solver import (
    BatchSolution,
    Directive,
    Snapshot,
    Solution,
    SolverError,
    Suspended,
    invert,
    invert_resumable,
)

#: (method, options): budgets small enough for a test, long enough for several suspensions;
#: adam's schedule changes stage inside the run, so the schedule's position is resumed too.
CASES = [
    ("adam", {"max_iter": 700, "lr_schedule": [(0, 0.05), (300, 0.02)], "seed": 7}, 3),
    ("gd", {"max_iter": 700, "seed": 3}, 3),
    ("cg", {"max_iter": 200, "tol": 1e-13}, 1),
    ("newton-schulz", {"max_iter": 40, "tol": 1e-14}, 3),
]


class YieldEvery:
    """A hook that yields at every `every`-th check and saves at every other check."""

    def __init__(self, every: int) -> None:
        self.every, self.checks, self.saved = every, 0, 0

    def at_check(self, iteration: int) -> Directive:
        self.checks += 1
        if self.checks % self.every == 0:
            return "yield"
        return "save" if self.checks % 2 else "go"

    def save(self, snapshot: Snapshot) -> None:
        self.saved += 1
        Snapshot.from_bytes(snapshot.to_bytes())  # every saved snapshot reads back


def _in_slices(matrix, method, options, every):
    """Solve with a hook that keeps suspending; resume each time from the snapshot's bytes."""
    resume, slices = None, 0
    while True:
        out = invert_resumable(
            matrix, method, dtype="float64", device="cpu", hook=YieldEvery(every),
            resume=resume, **options,
        )  # fmt: skip
        if not isinstance(out, Suspended):
            return out, slices
        slices += 1
        resume = Snapshot.from_bytes(out.snapshot.to_bytes())


def _same(a: Solution, b: Solution) -> None:
    np.testing.assert_array_equal(a.inverse, b.inverse)
    assert (a.iterations, a.reason, a.residual, a.loss, a.seed) == (
        b.iterations, b.reason, b.residual, b.loss, b.seed
    )  # fmt: skip
    assert a.aux_error == b.aux_error
    assert a.history == b.history


@pytest.mark.parametrize(("method", "options", "every"), CASES, ids=[c[0] for c in CASES])
def test_resumed_solve_equals_uninterrupted(method, options, every):
    x = with_cond(12, 30.0, 5)
    whole = invert(x, method, dtype="float64", device="cpu", **options)
    sliced, slices = _in_slices(x, method, options, every=every)
    assert slices >= 2
    assert isinstance(whole, Solution) and isinstance(sliced, Solution)
    _same(sliced, whole)


def test_batch_with_early_stops_resumes_equal():
    # Matrices of very different conditioning stop at different checks: a snapshot then holds
    # finished matrices and a compacted batch.
    x = np.stack([with_cond(8, c, 9) for c in (2.0, 1e3, 10.0)])
    options = {"max_iter": 60, "tol": 1e-12}
    whole = invert(x, "newton-schulz", dtype="float64", device="cpu", **options)
    sliced, slices = _in_slices(x, "newton-schulz", options, every=2)
    assert slices >= 2
    assert isinstance(whole, BatchSolution) and isinstance(sliced, BatchSolution)
    assert len({s.iterations for s in whole.solutions}) > 1
    for a, b in zip(sliced.solutions, whole.solutions, strict=True):
        _same(a, b)


def test_snapshot_of_another_solve_is_refused():
    x = with_cond(6, 10.0, 1)
    out = invert_resumable(x, "gd", dtype="float64", device="cpu", max_iter=500, hook=YieldEvery(1))
    assert isinstance(out, Suspended)
    assert out.snapshot.iteration == 64
    with pytest.raises(SolverError, match="cannot resume"):
        invert_resumable(x, "adam", dtype="float64", device="cpu", resume=out.snapshot)
    with pytest.raises(SolverError, match="not a readable checkpoint"):
        Snapshot.from_bytes(b"not a checkpoint")
