"""Progress ticks: cadence, fields, the batch view, and history."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.solver.problems import original_family
from worker.solver import BatchSolution, ProgressPoint, invert


def test_progress_every_check_with_all_fields() -> None:
    points: list[ProgressPoint] = []
    sol = invert(
        original_family(0),
        "adam",
        max_iter=640,
        seed=0,
        device="cpu",
        on_progress=points.append,  # returns None: go on
        progress_every_s=0,
    )
    assert sol.reason == "max_iter"
    # Every check of a live matrix ticks; the last one (640) is the Solution's to report.
    assert [p.iteration for p in points] == list(range(64, 640, 64))
    for p in points:
        assert p.max_iter == 640 and p.lr == 0.05
        assert p.rate > 0 and p.elapsed_s > 0
        assert p.loss == pytest.approx(p.residual**2 / 16)
        assert p.aux_error is not None and math.isfinite(p.aux_error)
    # Every tick is in the history, as are iteration 0 and the end.
    ticks = {p.iteration for p in points}
    assert ticks <= {h.iteration for h in sol.history}
    assert sol.history[0].iteration == 0 and sol.history[-1].iteration == 640


def test_progress_is_throttled_by_time() -> None:
    points: list[ProgressPoint] = []
    invert(
        original_family(0),
        "adam",
        max_iter=2000,
        seed=0,
        device="cpu",
        on_progress=points.append,
        progress_every_s=3600,
    )
    assert points == []


def test_lr_stage_shows_in_progress() -> None:
    points: list[ProgressPoint] = []
    invert(
        original_family(0),
        "adam",
        max_iter=256,
        seed=0,
        lr_schedule=[(0, 0.05), (100, 0.02)],
        device="cpu",
        on_progress=points.append,
        progress_every_s=0,
    )
    assert [p.lr for p in points] == [0.05, 0.02, 0.02]


def test_batch_progress_reports_the_worst_matrix() -> None:
    xs = np.stack([original_family(i) for i in range(3)])
    points: list[ProgressPoint] = []
    sol = invert(
        xs,
        "adam",
        max_iter=128,
        seed=0,
        device="cpu",
        on_progress=points.append,
        progress_every_s=0,
    )
    assert [p.iteration for p in points] == [64]
    assert isinstance(sol, BatchSolution) and len(sol.solutions) == 3
    at_64 = [next(h for h in s.history if h.iteration == 64) for s in sol.solutions]
    assert points[0].residual == pytest.approx(max(h.residual for h in at_64))


def test_methods_without_lr_report_none() -> None:
    points: list[ProgressPoint] = []
    invert(
        original_family(0),
        "newton-schulz",
        dtype="float64",
        device="cpu",
        on_progress=points.append,
        progress_every_s=0,
    )
    assert points and all(p.lr is None for p in points)
    assert [p.iteration for p in points] == list(range(1, len(points) + 1))
