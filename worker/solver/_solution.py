"""What a solve returns and reports: `Solution`, `BatchSolution`, `ProgressPoint`, `HistoryPoint`,
`ItemOptions`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
    """

    max_iter: int | None = None
    tol: float | None = None
    lr_schedule: Sequence[tuple[int, float]] | None = None
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One point of the loss curve: iteration, loss, residual, aux error and learning rate."""

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
        converged: True when the residual reached tol (reason "converged").
        reason: "converged", "max_iter", "stalled", "diverged" or "cancelled".
        cond: 2-norm condition number of X (inf when singular).
        elapsed_s: wall time from the start of the call to this matrix's stop.
        history: loss-curve points (iteration 0, log-spaced checks, progress ticks, the end).
        warning: a diagnostic (e.g. too ill-conditioned for the method), or None.
        method, device, dtype, max_iter: what ran.
        seed: the seed of the random start (None for methods that start deterministically).
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
    warning: str | None
    method: Method
    device: str
    dtype: DType
    max_iter: int
    seed: int | None = None


@dataclass(frozen=True, slots=True, eq=False)
class BatchSolution:
    """The result of `invert` on a (b, n, n) input: one `Solution` per matrix, in order.

    Fields:
        inverse: the b inverses stacked, shape (b, n, n).
        solutions: each matrix's own `Solution` (its figures, reason, history, warning, seed).
        elapsed_s: wall time of the whole call.
    """

    inverse: np.ndarray[Any, Any]
    solutions: tuple[Solution, ...]
    elapsed_s: float

    @classmethod
    def gather(cls, solutions: Sequence[Solution], elapsed_s: float) -> BatchSolution:
        """Stack one-matrix solutions into a batch result."""
        return cls(np.stack([s.inverse for s in solutions]), tuple(solutions), elapsed_s)
