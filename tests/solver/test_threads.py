"""The solver picks its own intra-op threads for small problems and leaves the caller's alone."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from tests.solver.problems import original_family
from worker.solver import SINGLE_THREAD_MAX_ENTRIES, BatchSolution, invert


@pytest.fixture
def two_threads() -> Iterator[None]:
    """The caller runs torch on two threads (what a 2-core machine gives by default)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def threads_seen(matrix: np.ndarray) -> list[int]:
    """The thread count inside the solve, at each progress tick."""
    seen: list[int] = []
    invert(
        matrix,
        max_iter=128,
        seed=0,
        device="cpu",
        on_progress=lambda point: seen.append(torch.get_num_threads()),
        progress_every_s=0,
    )
    assert seen
    return seen


@pytest.mark.usefixtures("two_threads")
def test_a_small_solve_runs_on_one_thread_and_gives_the_callers_back() -> None:
    assert set(threads_seen(original_family(0))) == {1}
    assert torch.get_num_threads() == 2


@pytest.mark.usefixtures("two_threads")
def test_a_large_batch_keeps_the_callers_threads() -> None:
    b = SINGLE_THREAD_MAX_ENTRIES // (16 * 16) + 1
    assert set(threads_seen(np.stack([original_family(i) for i in range(b)]))) == {2}
    assert torch.get_num_threads() == 2


@pytest.mark.usefixtures("two_threads")
def test_a_failed_solve_gives_the_callers_threads_back() -> None:
    def boom(point: object) -> None:
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        invert(original_family(0), max_iter=128, device="cpu", on_progress=boom, progress_every_s=0)
    assert torch.get_num_threads() == 2


@pytest.mark.skipif(
    "OpenMP" not in torch.__config__.parallel_info(), reason="per-thread counts need OpenMP"
)
@pytest.mark.usefixtures("two_threads")
def test_a_small_solve_in_another_thread_leaves_this_threads_count() -> None:
    inside, release = threading.Event(), threading.Event()
    results: list[object] = []

    def on_progress(point: object) -> None:
        inside.set()
        release.wait(30)

    def solve() -> None:
        results.append(
            invert(
                original_family(0),
                max_iter=128,
                device="cpu",
                on_progress=on_progress,
                progress_every_s=0,
            )
        )

    worker = threading.Thread(target=solve)
    worker.start()
    try:
        assert inside.wait(30)
        assert torch.get_num_threads() == 2  # while the other thread solves on one
    finally:
        release.set()
        worker.join(30)
    assert results and not isinstance(results[0], BatchSolution)
    assert torch.get_num_threads() == 2
