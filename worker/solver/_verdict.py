"""What a finished solve is worth: converged or not, the cause of a stop short of tol, warnings.

The engine knows why it stopped (tol, max_iter, stall, divergence, cancel); this module judges
the outcome after the fact, from the final residual, the method, the dtype and the condition
estimate, so that what a summary says agrees with what happened:

- `converged` is true exactly when the final residual is within tol (for a solve without a
  tolerance stop, adam's default and exact, within `USABLE_TOL` of its dtype);
- a stop short of tol is re-named `singular` (X has no inverse) or `precision_floor` (rounding
  in this dtype stopped it; for float32, float64 gets further) where that is its cause;
- the warnings say what the result is and what to do; a converged solve has none.

What the methods do with a singular X (checked in tests/solver/test_verdict.py): cg starts
from 0 and newton-schulz from a multiple of X^T, so their iterates stay in the row space of
X^T and approach the Moore-Penrose pseudo-inverse, the least-squares inverse. adam and gd start
from a random W0 whose part in the null space of X^T no gradient ever touches (gd) or that
Adam's per-entry scaling mixes in, so their results are not the pseudo-inverse.
"""

from __future__ import annotations

import dataclasses
import math

from ._problem import DType, StopReason
from ._solution import Solution

__all__ = ["USABLE_TOL", "judge"]

#: The residual a solve without a tolerance stop is judged against: the tolerances cg and
#: newton-schulz stop at by default, comfortably above each dtype's rounding floor.
USABLE_TOL: dict[DType, float] = {"float32": 1e-4, "float64": 1e-10}
_EPS: dict[DType, float] = {"float32": 2.0**-23, "float64": 2.0**-52}
_PSEUDO = "method='newton-schulz' (or 'cg') with dtype='float64'"


def judge(solution: Solution, *, stall_window: int) -> Solution:
    """The solution with `converged`, `reason`, `tol` and `warnings` judged from its outcome.

    Args:
        solution: as the engine (or the exact method) built it; its `tol` is the solve's own
            tolerance, or None for a solve without one.
        stall_window: the steps without progress after which it would stop as stalled (0: off),
            for the words of a stalled solve's warning.
    """
    tol = solution.tol if solution.tol is not None else USABLE_TOL[solution.dtype]
    r = solution.residual
    converged = math.isfinite(r) and r <= tol
    reason = solution.reason
    warnings: list[str] = []
    if converged or reason == "cancelled":
        pass
    elif reason == "diverged" and not _lost_to_rounding(solution):
        warnings.append(_diverged(solution))
    else:
        reason = _cause(solution, reason)
        warnings.append(_advice(solution, reason, tol, stall_window))
    return dataclasses.replace(
        solution, converged=converged, reason=reason, tol=tol, warnings=tuple(warnings)
    )


def _singular_in(dtype: DType, cond: float, n: int) -> bool:
    """X is singular to `dtype`'s precision: its smallest direction is lost to rounding."""
    return math.isinf(cond) or cond * n * _EPS[dtype] >= 1.0


def _lost_to_rounding(sol: Solution) -> bool:
    """cg or newton-schulz diverged on a matrix singular in its dtype: the singularity did it
    (with a well-posed X neither can diverge: they have no step size to get wrong)."""
    n = sol.inverse.shape[-1]
    return sol.method in ("cg", "newton-schulz") and _singular_in(sol.dtype, sol.cond, n)


def _cause(sol: Solution, reason: StopReason) -> StopReason:
    """The cause of a stop short of tol, where the outcome shows it."""
    n = sol.inverse.shape[-1]
    if _singular_in("float64", sol.cond, n):
        return "singular"
    # adam and gd stop short because their steps shrink with cond^2 (in any dtype): their stop
    # keeps its name, and the warning adds float64 where float32 loses the matrix too.
    if sol.method in ("adam", "gd"):
        return reason
    # cg and newton-schulz only stall when rounding stops them (exact ends at its floor by
    # construction).
    if _singular_in(sol.dtype, sol.cond, n) or reason != "max_iter":
        return "precision_floor"
    return reason


def _advice(sol: Solution, reason: StopReason, tol: float, stall_window: int) -> str:
    """One warning for a solve that stopped short of tol: what it got, why, what to do."""
    meth, cond, r = sol.method, sol.cond, sol.residual
    if meth == "exact":
        got = f"exact (LU) reached residual {r:.3g}, above tol {tol:g}"
    else:
        got = f"{meth} stopped after {sol.iterations} iterations at residual {r:.3g}"
        got += f", above tol {tol:g}"
    if reason == "singular":
        text = f"the matrix is singular (cond {cond:.3g}): it has no inverse"
        if meth in ("cg", "newton-schulz"):
            return (
                f"{text}; {meth}'s result approximates the least-squares (Moore-Penrose "
                f"pseudo-)inverse, the closest to an inverse there is (residual {r:.3g})"
            )
        return (
            f"{text}, and {meth}'s result is not the least-squares (pseudo-)inverse (it keeps "
            f"part of its random start); for the pseudo-inverse use {_PSEUDO}"
        )
    if reason == "precision_floor":
        if sol.dtype == "float32":
            if _singular_in("float32", cond, sol.inverse.shape[-1]):
                return (
                    f"{got}: at cond {cond:.3g} the matrix is singular to float32 precision; "
                    "use dtype='float64'"
                )
            return f"{got}: float32's rounding stops it at cond {cond:.3g}; use dtype='float64'"
        if meth == "cg":
            return (
                f"{got}: rounding in float64 stops cg at cond {cond:.3g}; newton-schulz or "
                "exact get closer, or loosen tol"
            )
        return (
            f"{got}: that is float64's rounding floor at cond {cond:.3g}; no method gets much "
            "closer: loosen tol"
        )
    return _steps(sol, reason, tol, stall_window, got)


def _gradient_steps(cond: float, tol: float) -> float:
    """Steps plain gradient methods need: the slowest direction contracts by ~1 - 1/cond^2."""
    return cond * cond * math.log(1.0 / tol)


def _steps(sol: Solution, reason: StopReason, tol: float, stall_window: int, got: str) -> str:
    """The warning of a solve that ran out of steps (max_iter) or progress (stalled)."""
    meth, cond = sol.method, sol.cond
    if reason == "stalled":
        got += (
            f" (stalled: no 0.1% gain in {stall_window} steps; stall_window=0 runs all "
            f"{sol.max_iter} steps)"
        )
    if sol.dtype == "float32" and _singular_in("float32", cond, sol.inverse.shape[-1]):
        tail = "; the matrix is singular to float32 precision: use dtype='float64' too"
    else:
        tail = ""
    if meth in ("adam", "gd"):
        need = _gradient_steps(cond, tol)
        if need > sol.iterations:
            return (
                f"{got}: at cond {cond:.3g} {meth} needs ~cond^2 x ln(1/tol) = {need:.3g} "
                f"steps; use method='newton-schulz' or 'cg'{tail}"
            )
        lr = sol.history[-1].lr if sol.history else None
        at = f" (lr {lr:g})" if lr is not None else ""
        return (
            f"{got}: at cond {cond:.3g} the steps a gradient method needs (~{need:.3g}) are not "
            f"the limit, its learning rate{at} is: run more steps, add a smaller lr_schedule "
            f"stage, or use method='cg' or 'newton-schulz'{tail}"
        )
    if meth == "cg":
        need = cond * math.log(2.0 / tol) / 2.0
        return (
            f"{got}: at cond {cond:.3g} cg needs ~cond x ln(2/tol)/2 = {need:.3g} steps; raise "
            "max_iter or use method='newton-schulz'"
        )
    need = 2 * math.log2(max(cond, 2.0)) + math.log2(max(math.log2(1.0 / tol), 1.0)) + 2
    return f"{got}: at cond {cond:.3g} newton-schulz needs ~{need:.0f} steps; raise max_iter"


def _diverged(sol: Solution) -> str:
    if sol.method in ("adam", "gd"):
        return (
            f"{sol.method} diverged (the residual became non-finite): the learning rate is too "
            "large for this matrix; lower lr_schedule, or use method='newton-schulz'"
        )
    return (
        f"{sol.method} diverged (the residual became non-finite); this result is its best "
        "iterate; use dtype='float64' or method='exact'"
    )
