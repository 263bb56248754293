"""What a finished solve says it is worth: converged, the cause of a stop short of tol, and
warnings judged from what happened (worker/solver/_verdict.py), for every method."""

from __future__ import annotations

import numpy as np
import pytest

from tests.solver.problems import original_family, with_cond
from worker.solver import USABLE_TOL, SolverError, invert

ONES = np.ones((4, 4))  # rank 1: no inverse; its pseudo-inverse is ONES / 16


@pytest.mark.parametrize("method", ["cg", "newton-schulz"])
def test_singular_cg_and_newton_schulz_give_the_pseudo_inverse_and_say_so(method: str) -> None:
    sol = invert(ONES, method, dtype="float64", device="cpu")
    assert not sol.converged and sol.reason == "singular"
    np.testing.assert_allclose(sol.inverse, np.linalg.pinv(ONES), atol=1e-9)
    assert sol.residual == pytest.approx(np.sqrt(3 / 4))  # the least a W can reach
    (warning,) = sol.warnings
    assert "singular" in warning and "no inverse" in warning
    assert "pseudo-)inverse" in warning and f"{method}'s result approximates" in warning


@pytest.mark.parametrize("method", ["adam", "gd"])
def test_singular_adam_and_gd_say_so_and_name_the_pseudo_inverse_method(method: str) -> None:
    sol = invert(ONES, method, dtype="float64", device="cpu", seed=0, max_iter=2000)
    assert not sol.converged and sol.reason == "singular"
    # Their random start keeps a part the gradient never removes: not the pseudo-inverse.
    assert np.abs(sol.inverse - np.linalg.pinv(ONES)).max() > 1e-3
    (warning,) = sol.warnings
    assert "singular" in warning and "not the least-squares (pseudo-)inverse" in warning
    assert "method='newton-schulz'" in warning


def test_singular_exact_refuses_and_names_the_pseudo_inverse_method() -> None:
    with pytest.raises(SolverError, match=r"singular.*pseudo-\)inverse use method='newton-schulz'"):
        invert(ONES, "exact", dtype="float64", device="cpu")


@pytest.mark.parametrize("method", ["newton-schulz", "cg", "exact"])
def test_float32_stopped_by_precision_says_use_float64(method: str) -> None:
    x = with_cond(16, 1e4, 3)
    sol = invert(x, method, dtype="float32", device="cpu")
    assert not sol.converged and sol.reason == "precision_floor"
    assert sol.residual > sol.tol == USABLE_TOL["float32"]
    (warning,) = sol.warnings
    assert "float32" in warning and "use dtype='float64'" in warning
    again = invert(x, method, dtype="float64", device="cpu")  # the advice works
    assert again.residual < 1e-4 * sol.residual


def test_float64_at_its_floor_says_to_loosen_tol_not_to_take_more_steps() -> None:
    sol = invert(original_family(0), "newton-schulz", dtype="float64", device="cpu")  # cond 3e7
    assert not sol.converged and sol.reason == "precision_floor"
    assert "float64's rounding floor" in sol.warnings[0] and "loosen tol" in sol.warnings[0]
    assert "steps" not in sol.warnings[0]


@pytest.mark.parametrize("method", ["cg", "newton-schulz", "exact"])
def test_a_converged_solve_has_no_warning(method: str) -> None:
    # The case: cg reached its tolerance, yet warned it needed ~2e5 steps.
    sol = invert(with_cond(16, 300.0, 1), method, dtype="float64", device="cpu")
    assert sol.converged and sol.reason == "converged" and sol.residual <= sol.tol
    assert sol.warnings == ()


def test_adam_without_tol_is_judged_against_the_usable_tolerance() -> None:
    # The case: a 16x16 adam job with cond 1.6 ended above 1e-4 with no warning.
    x = with_cond(16, 1.6, 0)
    sol = invert(x, "adam", device="cpu", seed=0, max_iter=2000)
    assert sol.tol == USABLE_TOL["float32"] and sol.reason == "max_iter"
    assert sol.converged == (sol.residual <= 1e-4)
    if not sol.converged:
        assert "its learning rate (lr 0.05) is" in sol.warnings[0]
        assert "smaller lr_schedule stage" in sol.warnings[0]


def test_adam_short_of_steps_says_how_many_it_needs() -> None:
    sol = invert(with_cond(8, 100.0, 0), "adam", device="cpu", seed=0, max_iter=640, tol=1e-6)
    assert not sol.converged and sol.reason == "max_iter"
    assert "needs ~cond^2 x ln(1/tol)" in sol.warnings[0]


def test_cg_short_of_max_iter_says_so() -> None:
    sol = invert(with_cond(16, 1e3, 0), "cg", dtype="float64", device="cpu", max_iter=8)
    assert not sol.converged and sol.reason == "max_iter"
    assert "raise max_iter" in sol.warnings[0]


def test_batch_judges_each_matrix() -> None:
    xs = np.stack([with_cond(4, 10.0, 0), ONES])
    batch = invert(xs, "newton-schulz", dtype="float64", device="cpu")
    good, bad = batch.solutions  # type: ignore[union-attr]
    assert good.converged and good.warnings == ()
    assert bad.reason == "singular" and "pseudo-)inverse" in bad.warnings[0]
