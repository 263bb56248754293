"""Each method against numpy.linalg.inv, across problems and dtypes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.solver.problems import PROBLEMS, Problem, original_family, tolerance
from worker.solver import DEFAULT_TOL, invert

FAST_METHODS = ["cg", "newton-schulz", "exact"]


def _within_reach(problem: Problem, method: str, dtype: str) -> bool:
    # float32 cannot reach the default tol on cond 1e3 (its floor is ~cond * eps * sqrt(n)),
    # and cg needs ~cond iterations (thousands) there: those pairs are covered in float64 only.
    return dtype == "float64" or method == "exact" or problem.cond <= 100


CASES = [
    pytest.param(problem, method, dtype, id=f"{problem.name}-{method}-{dtype}")
    for problem in PROBLEMS
    for method in FAST_METHODS
    for dtype in ("float32", "float64")
    if _within_reach(problem, method, dtype) and not (method == "cg" and problem.cond > 100)
]


@pytest.mark.parametrize(("problem", "method", "dtype"), CASES)
def test_matches_numpy(problem: Problem, method: str, dtype: str) -> None:
    x = problem.make()
    sol = invert(x, method, dtype=dtype, device="cpu")
    expected = np.linalg.inv(x)
    rtol = tolerance(dtype, problem.cond, DEFAULT_TOL[method][dtype] or 0.0)
    scale = np.abs(expected).max()
    torch.testing.assert_close(
        torch.from_numpy(sol.inverse.astype(np.float64)),
        torch.from_numpy(expected),
        rtol=0,
        atol=rtol * scale,
    )
    assert sol.inverse.dtype == np.dtype(dtype)
    assert sol.inverse.shape == x.shape
    assert sol.cond == pytest.approx(problem.cond, rel=1e-6)
    if method == "exact" and dtype == "float32" and sol.residual > 1e-4:
        # LU in float32 can end just above the usable tolerance: said so, not called converged.
        assert not sol.converged and sol.reason == "precision_floor" and sol.tol == 1e-4
        assert "use dtype='float64'" in sol.warnings[0]
    else:
        assert sol.converged and sol.reason == "converged" and sol.warnings == ()
    assert sol.method == method and sol.dtype == dtype and sol.device == "cpu"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("method", ["adam", "gd"])
def test_gradient_methods_reach_well_conditioned_inverse(method: str, dtype: str) -> None:
    problem = PROBLEMS[0]  # n=4, cond 10: within reach of first-order methods
    x = problem.make()
    sol = invert(x, method, dtype=dtype, device="cpu", seed=0, tol=1e-4, max_iter=50_000)
    assert sol.reason == "converged", sol
    np.testing.assert_allclose(sol.inverse, np.linalg.inv(x), atol=1e-3 * np.abs(x).max() * 10)
    assert sol.residual <= 1e-4
    assert sol.warnings == ()


# Family seeds and their cond: 1: 3.7e2, 3: 1.4e3, 16: 9.7e2, 4: 4.1e3, 7: 1.4e5, 2: 5.2e5.
# cg needs ~cond iterations, newton-schulz ~2 log2(cond): it handles the harder ones too.
@pytest.mark.parametrize(
    ("method", "seed"),
    [("cg", 1), ("cg", 3), ("cg", 16)] + [("newton-schulz", s) for s in (1, 3, 4, 7, 2)],
)
def test_original_family_reaches_small_aux(method: str, seed: int) -> None:
    x = original_family(seed)
    sol = invert(x, method, dtype="float64", device="cpu", tol=1e-12)
    assert sol.aux_error is not None and sol.aux_error < 1e-6, sol


def test_adam_default_configuration() -> None:
    x = PROBLEMS[1].make()
    sol = invert(x, device="cpu", seed=0, max_iter=200)
    assert sol.method == "adam" and sol.dtype == "float32"
    assert sol.reason == "max_iter" and sol.iterations == 200
    assert sol.history[0].iteration == 0 and sol.history[0].lr == 0.05
    assert sol.history[-1].iteration == 200


def test_ill_conditioned_warns_and_names_a_better_method() -> None:
    from tests.solver.problems import with_cond

    x = with_cond(8, 1e6, 0)
    sol = invert(x, "adam", dtype="float64", device="cpu", seed=0, max_iter=100)
    assert sol.reason == "max_iter" and not sol.converged
    assert "newton-schulz" in sol.warnings[0] and "cond^2" in sol.warnings[0]
    assert sol.cond == pytest.approx(1e6, rel=1e-6)
