"""What a solve's outcome looks like to the job store: its Summary and its loss curve."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from ninv.schemas import HistoryPoint, MatrixSummary, Summary, finite
from worker.solver import HistoryPoint as SolverHistoryPoint
from worker.solver import Solution

__all__ = ["curve", "summarise"]


def _worst(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _per_matrix(solution: Solution) -> list[MatrixSummary]:
    def at(field: object, i: int) -> Any:
        return field[i] if isinstance(field, tuple) else field

    return [
        MatrixSummary(
            iterations=at(solution.iterations, i),
            loss=finite(at(solution.loss, i)),
            residual=finite(at(solution.residual, i)),
            aux_error=finite(at(solution.aux_error, i)),
            converged=at(solution.converged, i),
            reason=at(solution.reason, i),
            cond=finite(at(solution.cond, i)),
        )
        for i in range(len(solution.iterations) if isinstance(solution.iterations, tuple) else 1)
    ]


def _worst_index(matrices: Sequence[MatrixSummary]) -> int:
    """The matrix that sets a batch job's headline figures: the largest (or unknown) residual."""
    return max(
        range(len(matrices)),
        key=lambda i: (matrices[i].residual is None, matrices[i].residual or 0.0),
    )


def summarise(solution: Solution) -> Summary:
    """A Summary from a Solution; for a (b, n, n) input, the worst figures plus each matrix's."""
    matrices = _per_matrix(solution)
    max_iter = solution.max_iter
    common = {
        "method": solution.method,
        "max_iter": max(max_iter) if isinstance(max_iter, tuple) else max_iter,
        "device": solution.device,
        "dtype": solution.dtype,
        "elapsed_s": solution.elapsed_s,
        "warning": solution.warning,
    }
    if len(matrices) == 1 and not isinstance(solution.iterations, tuple):
        return Summary(**matrices[0].model_dump(), **common)
    return Summary(
        iterations=max(m.iterations for m in matrices),
        loss=_worst([m.loss for m in matrices]),
        residual=_worst([m.residual for m in matrices]),
        aux_error=_worst([m.aux_error for m in matrices]),
        converged=all(m.converged for m in matrices),
        reason=matrices[_worst_index(matrices)].reason,
        cond=_worst([m.cond for m in matrices]),
        matrices=matrices,
        **common,
    )


def curve(solution: Solution) -> list[HistoryPoint]:
    """The loss curve to keep: the solve's own, or for a batch input its worst matrix's."""
    curve = solution.history
    if curve and isinstance(curve[0], tuple):
        curve = curve[_worst_index(_per_matrix(solution))]
    points = cast(tuple[SolverHistoryPoint, ...], curve)
    return [
        HistoryPoint(
            iteration=p.iteration,
            loss=finite(p.loss),
            residual=finite(p.residual),
            aux_error=finite(p.aux_error),
            lr=p.lr,
        )
        for p in points
    ]
