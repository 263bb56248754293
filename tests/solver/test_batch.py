"""Batches: each matrix stops on its own criterion and equals solving it alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.solver.problems import original_family, with_cond
from worker.solver import BatchSolution, ItemOptions, Solution, invert, solve_batch

ITEMS = [
    ItemOptions(max_iter=100, seed=1),
    ItemOptions(max_iter=300, seed=2, lr_schedule=[(0, 0.02), (130, 0.01)]),
    ItemOptions(max_iter=257, seed=3, lr_schedule=[(0, 0.05), (10, 0.03), (200, 0.001)]),
    ItemOptions(max_iter=64, seed=4),
    ItemOptions(max_iter=5000, seed=5, tol=0.33),
]


def batch(b: int = len(ITEMS), n: int = 16) -> np.ndarray:
    return np.stack([original_family(10 + i, n).astype(np.float64) for i in range(b)])


def alone(x: np.ndarray, opt: ItemOptions, method: str = "adam") -> Solution:
    return invert(
        x,
        method,
        max_iter=opt.max_iter,
        tol=opt.tol,
        lr_schedule=opt.lr_schedule,
        seed=opt.seed,
        dtype="float64",
        device="cpu",
    )


def assert_same(a: Solution, b: Solution) -> None:
    assert a.iterations == b.iterations
    assert a.reason == b.reason
    torch.testing.assert_close(
        torch.from_numpy(a.inverse), torch.from_numpy(b.inverse), rtol=1e-9, atol=1e-12
    )
    assert a.residual == pytest.approx(b.residual, rel=1e-6)
    assert a.cond == pytest.approx(b.cond, rel=1e-9)


def test_items_with_their_own_options_equal_solving_alone() -> None:
    xs = batch()
    done: list[tuple[int, int]] = []
    sols = solve_batch(
        xs,
        ITEMS,
        dtype="float64",
        device="cpu",
        on_items_done=lambda stopped: done.extend((i, int(s.iterations)) for i, s in stopped),  # type: ignore[arg-type]
    )
    assert len(sols) == len(ITEMS)
    for x, opt, sol in zip(xs, ITEMS, sols, strict=True):
        assert_same(sol, alone(x, opt))
        assert sol.inverse.shape == (16, 16)
    # Called as each item stops, in stopping order: the shortest budget first.
    assert [i for i, _ in done][:2] == [3, 0]
    assert [it for _, it in done] == sorted(it for _, it in done)
    assert sols[4].reason == "converged"
    assert sols[1].reason == sols[2].reason == "max_iter"


@pytest.mark.parametrize("method", ["gd", "cg", "newton-schulz", "exact"])
def test_other_methods_batch_equals_alone(method: str) -> None:
    xs = np.stack([with_cond(12, c, i) for i, c in enumerate([2.0, 10.0, 50.0])])
    items = [ItemOptions(max_iter=m, seed=i) for i, m in enumerate([400, 200, 300])]
    if method in ("cg", "newton-schulz", "exact"):
        items = [ItemOptions(seed=i) for i in range(3)]
    sols = solve_batch(xs, items, method=method, dtype="float64", device="cpu")
    for x, opt, sol in zip(xs, items, sols, strict=True):
        assert_same(sol, alone(x, opt, method))


def test_invert_on_a_batch_returns_per_matrix_fields() -> None:
    xs = batch(3)
    sol = invert(xs, "adam", max_iter=128, seed=9, dtype="float64", device="cpu")
    assert isinstance(sol, BatchSolution) and sol.inverse.shape == (3, 16, 16)
    assert [s.iterations for s in sol.solutions] == [128, 128, 128]
    assert len(sol.solutions) == 3 and all(isinstance(s, Solution) for s in sol.solutions)
    for i in range(3):
        np.testing.assert_array_equal(sol.solutions[i].inverse, sol.inverse[i])
        one = invert(xs[i], "adam", max_iter=128, seed=9, dtype="float64", device="cpu")
        torch.testing.assert_close(
            torch.from_numpy(sol.inverse[i]), torch.from_numpy(one.inverse), rtol=1e-9, atol=1e-12
        )


def test_batch_progress_points_and_cancel_by_index() -> None:
    xs = batch(3)
    items = [ItemOptions(max_iter=640, seed=i) for i in range(3)]
    seen: list[list[int]] = []

    def on_progress(points):
        seen.append([i for i, _ in points])
        return [1] if len(seen) == 2 else None

    sols = solve_batch(
        xs, items, dtype="float64", device="cpu", on_progress=on_progress, progress_every_s=0
    )
    assert seen[0] == [0, 1, 2] and seen[2] == [0, 2]
    assert sols[1].reason == "cancelled" and sols[1].iterations == 128
    assert sols[0].reason == sols[2].reason == "max_iter"
    assert sols[0].iterations == 640


def test_cancel_all_through_false() -> None:
    sols = solve_batch(
        batch(2),
        [ItemOptions(max_iter=10_000, seed=0)] * 2,
        device="cpu",
        on_progress=lambda points: False,
        progress_every_s=0,
    )
    assert [s.reason for s in sols] == ["cancelled", "cancelled"]
    assert all(s.iterations == 64 for s in sols)


def test_seeds_without_items_differ_and_invert_shares_one() -> None:
    xs = batch(3)
    sols = solve_batch(xs, None, method="newton-schulz", device="cpu")
    assert all(s.seed is None for s in sols)  # deterministic start: no seed
    sols = solve_batch(xs, [ItemOptions(max_iter=64)] * 3, device="cpu")
    seeds = {s.seed for s in sols}
    assert len(seeds) == 3
    shared = invert(xs, "adam", max_iter=64, device="cpu")
    assert isinstance(shared, BatchSolution) and len({s.seed for s in shared.solutions}) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="auto means cuda there")
def test_auto_device_is_cpu_without_cuda() -> None:
    sol = invert(np.eye(3) * 2, "exact", device="auto")
    assert sol.device == "cpu"
