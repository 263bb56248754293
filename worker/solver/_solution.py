"""What a solve returns and reports: `Solution`, `ProgressPoint`, `HistoryPoint`, `ItemOptions`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._problem import DType, Method, StopReason

__all__ = ["HistoryPoint", "ItemOptions", "ProgressPoint", "Solution"]


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
    """The result of a solve.

    For one (n, n) matrix every field is a scalar. For a (b, n, n) batch solved by `invert`,
    `inverse` has shape (b, n, n) and the per-matrix fields (iterations, loss, residual,
    aux_error, converged, reason, cond, history, seed) are tuples of b values; `warning` joins
    the per-matrix warnings.

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
        elapsed_s: wall time of the whole call.
        history: loss-curve points (iteration 0, log-spaced checks, progress ticks, the end).
        warning: a diagnostic (e.g. too ill-conditioned for the method), or None.
        method, device, dtype, max_iter: what ran.
        seed: the seed of the random start (None for methods that start deterministically).
    """

    inverse: np.ndarray[Any, Any]
    iterations: int | tuple[int, ...]
    loss: float | tuple[float, ...]
    residual: float | tuple[float, ...]
    aux_error: float | tuple[float | None, ...] | None
    converged: bool | tuple[bool, ...]
    reason: StopReason | tuple[StopReason, ...]
    cond: float | tuple[float, ...]
    elapsed_s: float
    history: tuple[HistoryPoint, ...] | tuple[tuple[HistoryPoint, ...], ...]
    warning: str | None
    method: Method
    device: str
    dtype: DType
    max_iter: int | tuple[int, ...]
    seed: int | tuple[int | None, ...] | None = None
