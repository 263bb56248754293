"""ninv's solvers: pure, typed PyTorch (no I/O, no settings, no Celery).

`invert` inverts one matrix (or a batch with shared options) by the original method, Adam on
mean((WX - I)^2), or by gd, cg, newton-schulz or exact LU; `solve_batch` solves a batch whose
matrices each carry their own options, with per-matrix callbacks. Small solves run on one
intra-op thread and give the caller's thread count back (see `SINGLE_THREAD_MAX_ENTRIES`).
"""

from __future__ import annotations

from ._adam import BETA1, BETA2, EPS
from ._api import (
    DEFAULT_MAX_ITER,
    DEFAULT_PROGRESS_EVERY_S,
    DEFAULT_STALL,
    DEFAULT_TOL,
    invert,
    invert_resumable,
    solve_batch,
)
from ._engine import StopRule
from ._history import HISTORY_KEEP, thin
from ._problem import (
    DEFAULT_MAX_N,
    DTYPES,
    METHODS,
    REASONS,
    DType,
    Method,
    SolverError,
    StopReason,
    check_matrix,
)
from ._schedule import DEFAULT_LR_SCHEDULE
from ._snapshot import CheckHook, Directive, Snapshot, Suspended
from ._solution import BatchSolution, HistoryPoint, ItemOptions, ProgressPoint, Solution
from ._threads import SINGLE_THREAD_MAX_ENTRIES
from ._verdict import USABLE_TOL

__all__ = [
    "BETA1",
    "BETA2",
    "DEFAULT_LR_SCHEDULE",
    "DEFAULT_MAX_ITER",
    "DEFAULT_MAX_N",
    "DEFAULT_PROGRESS_EVERY_S",
    "DEFAULT_STALL",
    "DEFAULT_TOL",
    "DTYPES",
    "EPS",
    "HISTORY_KEEP",
    "METHODS",
    "REASONS",
    "SINGLE_THREAD_MAX_ENTRIES",
    "USABLE_TOL",
    "BatchSolution",
    "CheckHook",
    "DType",
    "Directive",
    "HistoryPoint",
    "ItemOptions",
    "Method",
    "ProgressPoint",
    "Snapshot",
    "Solution",
    "SolverError",
    "StopReason",
    "StopRule",
    "Suspended",
    "check_matrix",
    "invert",
    "invert_resumable",
    "solve_batch",
    "thin",
]
