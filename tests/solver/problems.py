"""A registry of test problems: matrices with a known conditioning, built from fixed seeds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Problem:
    name: str
    n: int
    cond: float
    make: Callable[[], np.ndarray]

    def __repr__(self) -> str:
        return self.name


def with_cond(n: int, cond: float, seed: int) -> np.ndarray:
    """U diag(s) V^T with singular values log-spaced from 1 down to 1/cond."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((n, n)))
    v, _ = np.linalg.qr(rng.standard_normal((n, n)))
    s = np.logspace(0, -np.log10(cond), n)
    return (u * s) @ v.T


def original_family(seed: int, n: int = 16) -> np.ndarray:
    """The original's matrices, float32: X = Q @ triu(rand), Q from a QR of rand.

    (The design's "Q * triu(rand)" read as a matrix product: an elementwise product would be
    triangular with cond 1e4-1e11, out of line with the original's reported aux errors.)
    """
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.rand(n, n, generator=gen))
    return (q @ torch.triu(torch.rand(n, n, generator=gen))).numpy()


PROBLEMS = [
    Problem("n4-cond10", 4, 10.0, lambda: with_cond(4, 10.0, 1)),
    Problem("n16-cond30", 16, 30.0, lambda: with_cond(16, 30.0, 2)),
    Problem("n64-cond100", 64, 100.0, lambda: with_cond(64, 100.0, 3)),
    Problem("n128-cond1e3", 128, 1e3, lambda: with_cond(128, 1e3, 4)),
]


def tolerance(dtype: str, cond: float, residual_tol: float = 0.0) -> float:
    """Relative tolerance on the inverse: the forward error is at most ~cond times the residual,
    which is the method's tolerance or the dtype's floor cond * eps (with slack)."""
    eps = np.finfo(np.float32 if dtype == "float32" else np.float64).eps
    return float(min(0.05, 3 * cond * (residual_tol + 100 * cond * eps)))
