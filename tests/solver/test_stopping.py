"""Every stopping reason, singular matrices, and determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.solver.problems import original_family, with_cond
from worker.solver import SolverError, invert


def singular(n: int = 8) -> np.ndarray:
    x = with_cond(n, 10.0, 5)
    x[-1] = x[0] + x[1]  # rank n - 1
    return x


def test_converged() -> None:
    sol = invert(with_cond(16, 10.0, 0), "newton-schulz", dtype="float64", device="cpu", tol=1e-8)
    assert sol.reason == "converged" and sol.converged
    assert sol.residual <= 1e-8


def test_max_iter() -> None:
    sol = invert(original_family(0), "adam", max_iter=100, seed=0, device="cpu")
    assert sol.reason == "max_iter" and not sol.converged and sol.iterations == 100


@pytest.mark.parametrize("method", ["newton-schulz", "cg"])
def test_singular_matrix_stops_as_singular_with_cond_inf(method: str) -> None:
    sol = invert(singular(), method, dtype="float64", device="cpu")
    assert sol.reason == "singular" and not sol.converged
    assert math.isinf(sol.cond)
    assert "singular" in sol.warnings[0] and "pseudo-)inverse" in sol.warnings[0]
    assert sol.aux_error is None  # no inverse to compare against
    assert np.isfinite(sol.inverse).all()


def test_singular_matrix_adam_ends_with_cond_inf() -> None:
    sol = invert(singular(), "adam", max_iter=500, seed=0, dtype="float64", device="cpu")
    assert sol.reason == "singular" and math.isinf(sol.cond) and sol.iterations == 500
    assert "singular" in sol.warnings[0] and "method='newton-schulz'" in sol.warnings[0]


def test_float32_singular_matrix_warns_to_use_float64() -> None:
    sol = invert(singular(), "newton-schulz", dtype="float32", device="cpu")
    assert sol.reason == "precision_floor" and not sol.converged  # rounding hides the zero
    assert "singular to float32 precision" in sol.warnings[0]
    assert "use dtype='float64'" in sol.warnings[0]


def test_exact_rejects_a_singular_matrix() -> None:
    with pytest.raises(SolverError, match="singular"):
        invert(singular(), "exact", device="cpu")
    with pytest.raises(SolverError, match=r"matrix 1 of the batch\) is singular"):
        invert(np.stack([with_cond(8, 2.0, 0), singular()]), "exact", device="cpu")


def test_stalled_keeps_the_best_iterate() -> None:
    sol = invert(singular(), "newton-schulz", dtype="float64", device="cpu")
    assert sol.residual <= min(h.residual for h in sol.history[:-1])


def test_diverged_returns_the_best_finite_iterate() -> None:
    x = with_cond(8, 10.0, 1)
    sol = invert(x, "gd", lr_schedule=[(0, 1e8)], max_iter=100_000, seed=0, device="cpu")
    assert sol.reason == "diverged" and not sol.converged
    assert sol.iterations == 64  # detected at the first check
    assert np.isfinite(sol.inverse).all() and math.isfinite(sol.residual)
    assert sol.residual == pytest.approx(sol.history[0].residual)  # W0 was the best


def test_cancelled_through_on_progress() -> None:
    calls = []

    def on_progress(point):
        calls.append(point)
        return len(calls) < 3

    sol = invert(
        original_family(1),
        "adam",
        max_iter=100_000,
        seed=0,
        device="cpu",
        on_progress=on_progress,
        progress_every_s=0,
    )
    assert sol.reason == "cancelled" and sol.iterations == 3 * 64
    assert len(calls) == 3
    assert sol.residual <= min(h.residual for h in sol.history[:-1])


def test_same_seed_same_result_and_different_seed_differs() -> None:
    x = original_family(2)
    a = invert(x, "adam", max_iter=300, seed=42, device="cpu")
    b = invert(x, "adam", max_iter=300, seed=42, device="cpu")
    c = invert(x, "adam", max_iter=300, seed=43, device="cpu")
    np.testing.assert_array_equal(a.inverse, b.inverse)
    assert a.seed == 42 and a.history == b.history
    assert not np.array_equal(a.inverse, c.inverse)


def test_no_seed_draws_one_and_reports_it() -> None:
    x = original_family(2)
    a = invert(x, "adam", max_iter=64, device="cpu")
    assert isinstance(a.seed, int)
    b = invert(x, "adam", max_iter=64, device="cpu", seed=a.seed)
    np.testing.assert_array_equal(a.inverse, b.inverse)


def test_aux_false_reports_no_aux() -> None:
    sol = invert(with_cond(8, 3.0, 0), "cg", aux=False, device="cpu")
    assert sol.aux_error is None
    assert all(h.aux_error is None for h in sol.history)
