"""Loss curves worth studying: a point at every check, lr stage changes marked, thinned evenly in
log-iteration; and the stall stop, switchable so that the original run is reproduced."""

from __future__ import annotations

import numpy as np
import pytest

from tests.solver.problems import original_family, with_cond
from worker.solver import HISTORY_KEEP, HistoryPoint, SolverError, invert, thin
from worker.solver._engine import Task


def test_adam_keeps_a_point_at_every_check_and_at_the_stage_change() -> None:
    sol = invert(original_family(1), "adam", device="cpu", seed=0, max_iter=20_000)
    its = [p.iteration for p in sol.history]
    assert set(range(0, 20_000, 64)) <= set(its) and its[-1] == 20_000
    assert len(sol.history) >= 20_000 // 64
    at = {p.iteration: p for p in sol.history}
    # The default schedule's second stage starts at 10,000: a point there carries its lr.
    assert at[10_000].lr == 0.025 and at[9_984].lr == 0.05


def test_newton_schulz_keeps_every_iteration() -> None:
    sol = invert(with_cond(16, 1e3, 3), "newton-schulz", dtype="float64", device="cpu")
    assert sol.converged
    assert [p.iteration for p in sol.history] == list(range(sol.iterations + 1))


def test_stall_window_zero_runs_every_step_as_the_original() -> None:
    x = original_family(0)  # cond ~3e7 in float32: adam's residual flattens early
    stalled = invert(x, "adam", device="cpu", seed=0, max_iter=30_000)
    assert stalled.reason == "stalled" and stalled.iterations < 30_000
    assert "stall_window=0" in stalled.warnings[0]
    full = invert(x, "adam", device="cpu", seed=0, max_iter=30_000, stall_window=0)
    assert full.iterations == 30_000 and full.reason == "max_iter"
    # Step for step: the same iterates as a window too wide to ever stop it.
    wide = invert(x, "adam", device="cpu", seed=0, max_iter=30_000, stall_window=10**8)
    np.testing.assert_array_equal(full.inverse, wide.inverse)


def test_stall_window_sets_the_window() -> None:
    x = original_family(0)
    short = invert(x, "adam", device="cpu", seed=0, max_iter=30_000, stall_window=640)
    assert short.reason == "stalled" and short.iterations < 20_000


def test_stall_window_must_be_a_whole_number_of_at_least_zero() -> None:
    with pytest.raises(SolverError, match="stall_window must be >= 0"):
        invert(original_family(0), "adam", device="cpu", stall_window=-1)
    with pytest.raises(SolverError, match="stall_window must be an integer"):
        invert(original_family(0), "adam", device="cpu", stall_window=1.5)  # type: ignore[arg-type]


def _curve(last: int, every: int = 64, change: int | None = 10_000) -> list[HistoryPoint]:
    def lr(it: int) -> float:
        return 0.025 if change is not None and it >= change else 0.05

    return [HistoryPoint(it, 1.0, 1.0, None, lr(it)) for it in [0, *range(every, last, every)]]


def test_thin_keeps_ends_and_stage_changes_within_the_cap() -> None:
    points = _curve(2_000_000)
    kept = thin(points, 500)
    assert len(kept) <= 500 and len(kept) >= 450  # as dense as fits
    assert kept[0] == points[0] and kept[-1] == points[-1]
    its = [p.iteration for p in kept]
    assert 10_048 in its and 9_984 in its  # the first point of the new stage, and the last before


def test_thin_is_even_in_log_iteration() -> None:
    kept = thin(_curve(10_000_000, change=None), 600)
    decades = [sum(1 for p in kept if 10**k <= p.iteration < 10 ** (k + 1)) for k in (4, 5, 6)]
    # A dense curve thinned evenly in log(1 + iteration): about as many points per decade.
    assert max(decades) <= 1.2 * min(decades), decades
    assert thin(kept, 10_000) == kept  # under the cap: untouched


def test_a_running_curve_stays_bounded() -> None:
    task = Task(max_iter=10**9, tol=None, schedule=None, seed=None, cond=1.0, stall_window=0)
    for it in range(2 * HISTORY_KEEP + 1):
        task.add_point(HistoryPoint(it * 64, 1.0, 1.0, None, None))
    assert len(task.history) <= HISTORY_KEEP
    assert task.history[0].iteration == 0 and task.history[-1].iteration == 2 * HISTORY_KEEP * 64
