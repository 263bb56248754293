"""The LU reference: torch.linalg.inv, also what the aux error is measured against."""

from __future__ import annotations

import torch

from ._problem import SolverError

__all__ = ["exact_inverse", "reference_inverse"]


def reference_inverse(x: torch.Tensor) -> tuple[torch.Tensor, list[bool]]:
    """inv(X) in float64 for the aux error, and per matrix whether it exists (X not singular)."""
    inv, info = torch.linalg.inv_ex(x.to(torch.float64))
    finite = torch.isfinite(inv).flatten(1).all(dim=1)
    ok: list[bool] = ((info == 0) & finite).cpu().tolist()
    return inv, ok


def exact_inverse(x: torch.Tensor, singular: list[bool], cond: list[float]) -> torch.Tensor:
    """inv(X) in X's dtype; raise `SolverError` naming the first singular matrix."""
    inv, info = torch.linalg.inv_ex(x)
    finite = torch.isfinite(inv).flatten(1).all(dim=1).cpu().tolist()
    failed = (info != 0).cpu().tolist()
    for i, (bad, fin, sing) in enumerate(zip(failed, finite, singular, strict=True)):
        if bad or not fin or sing:
            where = f" (matrix {i} of the batch)" if x.shape[0] > 1 else ""
            n = x.shape[-1]
            raise SolverError(
                f"matrix{where} is singular to {str(x.dtype).removeprefix('torch.')} precision "
                f"(cond {cond[i]:.3g}, shape ({n}, {n})): it has no usable inverse; for the "
                "least-squares (pseudo-)inverse use method='newton-schulz' with dtype='float64'"
            )
    out: torch.Tensor = inv
    return out
