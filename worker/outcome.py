"""What a solve's outcome looks like to the job store: its Summary and its loss curve."""

from __future__ import annotations

from collections.abc import Sequence

from ninv.schemas import CurvePoint, MatrixSummary, Summary, finite
from worker.solver import BatchSolution, Solution

__all__ = ["curve", "summarise"]


def _worst(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _matrix_summary(solution: Solution) -> MatrixSummary:
    return MatrixSummary(
        iterations=solution.iterations,
        loss=finite(solution.loss),
        residual=finite(solution.residual),
        aux_error=finite(solution.aux_error),
        converged=solution.converged,
        reason=solution.reason,
        tol=solution.tol,
        cond=finite(solution.cond),
        warnings=list(solution.warnings),
    )


def _worst_index(matrices: Sequence[MatrixSummary]) -> int:
    """The matrix that sets a batch job's headline figures: the largest (or unknown) residual."""
    return max(
        range(len(matrices)),
        key=lambda i: (matrices[i].residual is None, matrices[i].residual or 0.0),
    )


def summarise(solution: Solution | BatchSolution) -> Summary:
    """A Summary from a Solution; for a (b, n, n) input, the worst figures plus each matrix's."""
    if isinstance(solution, Solution):
        return Summary(
            **_matrix_summary(solution).model_dump(),
            method=solution.method,
            max_iter=solution.max_iter,
            device=solution.device,
            dtype=solution.dtype,
            elapsed_s=solution.elapsed_s,
        )
    sols = solution.solutions
    matrices = [_matrix_summary(s) for s in sols]
    warnings = [f"matrix {i}: {w}" for i, s in enumerate(sols) for w in s.warnings]
    tols = [s.tol for s in sols if s.tol is not None]
    return Summary(
        iterations=max(m.iterations for m in matrices),
        loss=_worst([m.loss for m in matrices]),
        residual=_worst([m.residual for m in matrices]),
        aux_error=_worst([m.aux_error for m in matrices]),
        converged=all(m.converged for m in matrices),
        reason=matrices[_worst_index(matrices)].reason,
        tol=max(tols) if tols else None,
        cond=_worst([m.cond for m in matrices]),
        matrices=matrices,
        method=sols[0].method,
        max_iter=max(s.max_iter for s in sols),
        device=sols[0].device,
        dtype=sols[0].dtype,
        elapsed_s=solution.elapsed_s,
        warnings=warnings,
    )


def curve(solution: Solution | BatchSolution) -> Sequence[CurvePoint]:
    """The loss curve to keep: the solve's own, or for a batch input its worst matrix's.

    The solver's own points, as they are: the store writes them without a model per point
    (a point every check, tens a job, for every job of a batch), non-finite figures as null.
    """
    if isinstance(solution, BatchSolution):
        sols = solution.solutions
        solution = sols[_worst_index([_matrix_summary(s) for s in sols])]
    return solution.history
