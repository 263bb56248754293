"""Every bad input raises SolverError with a message naming the problem and the value."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from worker.solver import ItemOptions, SolverError, invert, solve_batch

GOOD = np.eye(3) * 2.0


def nan_at(i: int, j: int) -> np.ndarray:
    x = GOOD.copy()
    x[i, j] = np.nan
    return x


BAD_MATRICES: list[tuple[Any, str]] = [
    (np.ones(3), r"2-D \(n, n\) or 3-D \(b, n, n\), got shape \(3,\)"),
    (np.ones((2, 2, 2, 2)), r"got shape \(2, 2, 2, 2\)"),
    (np.array(5.0), r"got shape \(\)"),
    (np.ones((3, 4)), r"square, got shape \(3, 4\)"),
    (np.ones((2, 3, 4)), r"square, got shape \(2, 3, 4\)"),
    (np.ones((0, 0)), r"empty: shape \(0, 0\)"),
    (np.ones((2, 0, 0)), r"empty: shape \(2, 0, 0\)"),
    (nan_at(1, 2), r"non-finite entry \(nan\) at index \[1, 2\]"),
    (np.full((2, 2), np.inf), r"non-finite entry \(inf\) at index \[0, 0\]"),
    (torch.tensor([[1.0, float("-inf")], [0.0, 1.0]]), r"\(-inf\) at index \[0, 1\]"),
    (np.array([[1e300, 0.0], [0.0, 1.0]]), r"1e\+300 at index \[0, 0\] overflows float32"),
    (np.array([["a", "b"], ["c", "d"]]), r"real numbers"),
    (np.array([[1, None], [2, 3]], dtype=object), r"Python objects"),
    (np.eye(2, dtype=bool), r"booleans"),
    (np.eye(2, dtype=complex), r"complex"),
    (torch.eye(2, dtype=torch.complex64), r"complex64"),
    (torch.eye(2, dtype=torch.bool), r"torch.bool"),
    ([[1, 2], [3]], r"not an array of numbers"),
    (np.eye(5), r"5x5, larger than the limit n <= 4"),
]


@pytest.mark.parametrize(("matrix", "message"), BAD_MATRICES)
def test_bad_matrix(matrix: Any, message: str) -> None:
    with pytest.raises(SolverError, match=message):
        invert(matrix, "exact", device="cpu", max_n=4)


BAD_OPTIONS: list[tuple[dict[str, Any], str]] = [
    ({"method": "lbfgs"}, r"unknown method 'lbfgs'"),
    ({"dtype": "float16"}, r"unsupported dtype 'float16'"),
    ({"device": "tpu"}, r"device 'tpu'"),
    ({"device": 3}, r"device must be a string"),
    ({"max_iter": 0}, r"max_iter must be at least 1, not 0"),
    ({"max_iter": 2.5}, r"max_iter must be an integer, not 2.5"),
    ({"tol": 0}, r"tol must lie in \(0, 1\), not 0"),
    ({"tol": 1.0}, r"tol must lie in \(0, 1\), not 1.0"),
    ({"tol": -1e-3}, r"not -0.001"),
    ({"tol": "small"}, r"tol must be a number"),
    ({"lr_schedule": []}, r"non-empty list"),
    ({"lr_schedule": [(1, 0.1)]}, r"must start at iteration 0, not 1"),
    ({"lr_schedule": [(0, 0.1), (0, 0.2)]}, r"strictly increase, got 0 after 0"),
    ({"lr_schedule": [(0, -0.1)]}, r"-0.1 must be finite and > 0"),
    ({"lr_schedule": [(0, float("nan"))]}, r"nan must be finite"),
    ({"lr_schedule": [(0,)]}, r"not a \(start_iteration, lr\) pair"),
    ({"lr_schedule": [(-1, 0.1)]}, r"start -1 is not an integer >= 0"),
    ({"seed": -1}, r"seed must lie in \[0, 2\*\*63\), not -1"),
    ({"seed": "x"}, r"seed must be an integer"),
    ({"progress_every_s": -1}, r"progress_every_s"),
]


@pytest.mark.parametrize(("options", "message"), BAD_OPTIONS)
def test_bad_option(options: dict[str, Any], message: str) -> None:
    kwargs = {"method": "adam", "device": "cpu", **options}
    with pytest.raises(SolverError, match=message):
        invert(GOOD, **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_requested_without_cuda() -> None:
    with pytest.raises(SolverError, match=r"'cuda:0' requested but CUDA is not available"):
        invert(GOOD, device="cuda:0")


def test_items_must_match_the_batch() -> None:
    with pytest.raises(SolverError, match="got 1 item options for a batch of 2 matrices"):
        solve_batch(np.stack([GOOD, GOOD]), [ItemOptions()], device="cpu")


def test_solver_error_is_a_value_error() -> None:
    assert issubclass(SolverError, ValueError)


@pytest.mark.parametrize(
    "matrix",
    [
        np.arange(1, 5).reshape(2, 2),
        torch.tensor([[2, 1], [1, 3]], dtype=torch.int32),
        np.eye(2, dtype=np.float16),
        torch.eye(2, dtype=torch.float64),
        [[2.0, 1.0], [1.0, 3.0]],
    ],
)
def test_accepted_inputs(matrix: Any) -> None:
    sol = invert(matrix, "exact", device="cpu")
    np.testing.assert_allclose(sol.inverse, np.linalg.inv(np.asarray(matrix, float)), rtol=1e-5)
