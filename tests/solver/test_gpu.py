"""The solvers on a CUDA device: same answers as on the CPU, batching intact, threads untouched.

Run on a GPU machine with `pytest -m gpu tests/solver`; they skip without CUDA.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.solver.problems import original_family, with_cond
from worker.solver import METHODS, BatchSolution, ItemOptions, Solution, invert, solve_batch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def solve(x: np.ndarray, method: str, device: str) -> Solution:
    sol = invert(x, method, dtype="float64", device=device, seed=3, max_iter=2_000)
    assert isinstance(sol, Solution)
    return sol


@pytest.mark.parametrize("method", METHODS)
def test_each_method_on_cuda_agrees_with_the_cpu(method: str) -> None:
    x = with_cond(32, 10.0, 0)
    gpu, cpu = solve(x, method, "cuda"), solve(x, method, "cpu")
    assert gpu.device.startswith("cuda") and gpu.reason == cpu.reason
    assert gpu.iterations == cpu.iterations
    assert gpu.residual == pytest.approx(cpu.residual, rel=1e-3, abs=1e-13)
    np.testing.assert_allclose(gpu.inverse, cpu.inverse, rtol=1e-5, atol=1e-7)


def test_a_cuda_batch_equals_each_matrix_alone() -> None:
    xs = np.stack([original_family(i) for i in range(4)])
    items = [ItemOptions(max_iter=m, seed=i) for i, m in enumerate([256, 128, 640, 64])]
    sols = solve_batch(xs, items, dtype="float64", device="cuda")
    for x, opt, sol in zip(xs, items, sols, strict=True):
        alone = invert(x, dtype="float64", device="cuda", max_iter=opt.max_iter, seed=opt.seed)
        assert isinstance(alone, Solution) and sol.iterations == alone.iterations
        np.testing.assert_allclose(sol.inverse, alone.inverse, rtol=1e-9, atol=1e-12)


def test_invert_on_cuda_leaves_the_callers_threads() -> None:
    before = torch.get_num_threads()
    batch = invert(np.stack([np.eye(16) * 2] * 2), device="cuda", max_iter=64)
    assert isinstance(batch, BatchSolution) and len(batch.solutions) == 2
    assert torch.get_num_threads() == before
