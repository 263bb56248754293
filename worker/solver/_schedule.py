"""Staged learning rates: (start_iteration, lr) stages, the first starting at 0."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from ._problem import SolverError

__all__ = ["DEFAULT_LR_SCHEDULE", "LrSchedule", "parse_schedule"]

#: The original run's stages: lr 0.05, then 0.025 from iteration 10,000, then 0.01 from 100,000
#: (the last stage only matters when max_iter > 100,000).
DEFAULT_LR_SCHEDULE: tuple[tuple[int, float], ...] = ((0, 0.05), (10_000, 0.025), (100_000, 0.01))


@dataclass(frozen=True, slots=True)
class LrSchedule:
    """A validated schedule: `starts[k]` is the first iteration (0-based) that uses `lrs[k]`."""

    starts: tuple[int, ...]
    lrs: tuple[float, ...]

    def lr_at(self, iteration: int) -> float:
        """The learning rate of the step taken at 0-based `iteration`."""
        return self.lrs[bisect.bisect_right(self.starts, iteration) - 1]

    def next_change(self, iteration: int) -> int | None:
        """The first stage start strictly after `iteration`, or None."""
        k = bisect.bisect_right(self.starts, iteration)
        return self.starts[k] if k < len(self.starts) else None

    def as_list(self) -> list[tuple[int, float]]:
        return list(zip(self.starts, self.lrs, strict=True))


def parse_schedule(stages: object) -> LrSchedule:
    """Validate a sequence of (start_iteration, lr) pairs; raise `SolverError` when malformed.

    Starts are integers, the first is 0, they strictly increase; every lr is finite and > 0.
    """
    if isinstance(stages, LrSchedule):
        return stages
    if not isinstance(stages, Sequence) or isinstance(stages, str | bytes) or not stages:
        raise SolverError(
            f"lr_schedule must be a non-empty list of (start_iteration, lr) pairs, not {stages!r}"
        )
    starts: list[int] = []
    lrs: list[float] = []
    for stage in stages:
        if not isinstance(stage, Sequence) or isinstance(stage, str | bytes) or len(stage) != 2:
            raise SolverError(f"lr_schedule stage {stage!r} is not a (start_iteration, lr) pair")
        start, lr = stage
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise SolverError(f"lr_schedule stage start {start!r} is not an integer >= 0")
        if isinstance(lr, bool) or not isinstance(lr, int | float):
            raise SolverError(f"lr_schedule learning rate {lr!r} is not a number")
        if not (math.isfinite(lr) and lr > 0):
            raise SolverError(f"lr_schedule learning rate {lr!r} must be finite and > 0")
        if starts and start <= starts[-1]:
            raise SolverError(
                f"lr_schedule stage starts must strictly increase, got {start} after {starts[-1]}"
            )
        starts.append(start)
        lrs.append(float(lr))
    if starts[0] != 0:
        raise SolverError(f"the first lr_schedule stage must start at iteration 0, not {starts[0]}")
    return LrSchedule(tuple(starts), tuple(lrs))
