"""What a solve returns and reports: `Solution`, `BatchSolution`, `ProgressPoint`, `HistoryPoint`,
`ItemOptions`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ._problem import DType, Method, StopReason

__all__ = ["BatchSolution", "HistoryPoint", "ItemOptions", "ProgressPoint", "Solution"]


@dataclass(frozen=True, slots=True)
class ItemOptions:
    """Per-matrix options of a batch solve; None takes the method's default.

    Args:
        max_iter: iteration budget of this matrix.
        tol: stop as converged once the residual ||WX - I||_F / sqrt(n) is <= tol.
        lr_schedule: (start_iteration, lr) stages (adam and gd only).
        seed: seed of this matrix's own generator for the random start (adam and gd).
        stall_window: stop as stalled when the best residual has not improved within this many
            steps; 0 turns the stall stop off (every step up to max_iter or tol runs).
    """

    max_iter: int | None = None
    tol: float | None = None
    lr_schedule: Sequence[tuple[int, float]] | None = None
    seed: int | None = None
    stall_window: int | None = None


class HistoryPoint(NamedTuple):
    """One point of the loss curve: iteration, loss, residual, aux error and learning rate.

    A named tuple: a solve makes one for every live matrix at every check, and a tuple is made
    in a quarter of the time of a frozen dataclass (the curve was a tenth of a batch's cost).
    """

    iteration: int
    loss: float
    residual: float
    aux_error: float | None
    lr: float | None


@dataclass(frozen=True, slots=True)
class ProgressPoint:
    """A progress tick, handed to `on_progress`.

    `rate` is iterations per second since the start of the solve; `lr` is None for methods
    without a learning rate.
    """

    iteration: int
    max_iter: int
    loss: float
    residual: float
    aux_error: float | None
    lr: float | None
    rate: float
    elapsed_s: float


@dataclass(frozen=True, slots=True, eq=False)
class Solution:
    """The result of solving one (n, n) matrix.

    Fields:
        inverse: the approximate inverse W (NumPy, float32 or float64).
        iterations: steps taken.
        loss: mean((WX - I)^2).
        residual: ||WX - I||_F / sqrt(n).
        aux_error: mean((W - inv(X))^2) against the exact inverse; None when aux=False or X is
            singular.
        converged: True when the final residual is within `tol`: the inverse is usable.
        reason: why it stopped: "converged", "max_iter", "stalled", "diverged", "cancelled",
            or, for a stop short of tol whose cause is known, "singular" (X has no inverse)
            or "precision_floor" (rounding in this dtype stopped it).
        cond: 2-norm condition number of X (inf when singular).
        elapsed_s: wall time from the start of the call to this matrix's stop.
        history: loss-curve points: iteration 0, every check, every lr stage change, the end
            (thinned evenly in log-iteration past `HISTORY_KEEP` points).
        warnings: what the outcome means and what to do, judged from how the solve ended
            (`_verdict.py`); empty for a converged solve.
        method, device, dtype, max_iter: what ran.
        seed: the seed of the random start (None for methods that start deterministically).
        tol: the residual tolerance `converged` was judged against: the solve's tol, or for a
            solve without a tolerance stop (adam's default, exact) `USABLE_TOL[dtype]`.
    """

    inverse: np.ndarray[Any, Any]
    iterations: int
    loss: float
    residual: float
    aux_error: float | None
    converged: bool
    reason: StopReason
    cond: float
    elapsed_s: float
    history: tuple[HistoryPoint, ...]
    method: Method
    device: str
    dtype: DType
    max_iter: int
    seed: int | None = None
    warnings: tuple[str, ...] = ()
    tol: float | None = None


@dataclass(frozen=True, slots=True, eq=False)
class BatchSolution:
    """The result of `invert` on a (b, n, n) input: one `Solution` per matrix, in order.

    Fields:
        inverse: the b inverses stacked, shape (b, n, n).
        solutions: each matrix's own `Solution` (its figures, reason, history, warnings, seed).
        elapsed_s: wall time of the whole call.
    """

    inverse: np.ndarray[Any, Any]
    solutions: tuple[Solution, ...]
    elapsed_s: float

    @classmethod
    def gather(cls, solutions: Sequence[Solution], elapsed_s: float) -> BatchSolution:
        """Stack one-matrix solutions into a batch result."""
        return cls(np.stack([s.inverse for s in solutions]), tuple(solutions), elapsed_s)
