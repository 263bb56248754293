"""Extreme singular values: the condition estimate and the step sizes that depend on it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["EXACT_SVD_MAX_N", "Spectrum", "spectrum"]

#: Up to this n the singular values come from an SVD (exact); above it from power iteration for
#: sigma_max and inverse power iteration on an LU factorisation for sigma_min, which costs about
#: half of one inversion instead of several.
EXACT_SVD_MAX_N = 512

_POWER_STEPS = 30
_INVERSE_STEPS = 8
#: sigma_max from power iteration is a lower bound; step sizes use it inflated by this factor.
_POWER_SAFETY = 1.05


@dataclass(frozen=True, slots=True)
class Spectrum:
    """Per-matrix extreme singular values (float64) and the condition estimate.

    `smax_safe` is an upper bound on sigma_max suitable for step sizes; `cond` is inf when X is
    numerically singular (sigma_min <= n * eps64 * sigma_max).
    """

    smax: tuple[float, ...]
    smin: tuple[float, ...]
    smax_safe: tuple[float, ...]
    cond: tuple[float, ...]
    singular: tuple[bool, ...]


def spectrum(x: torch.Tensor) -> Spectrum:
    """Estimate sigma_max, sigma_min and cond of each matrix of the (b, n, n) batch `x`."""
    n = x.shape[-1]
    x64 = x.to(torch.float64)
    if n <= EXACT_SVD_MAX_N:
        sv = torch.linalg.svdvals(x64)
        smax_t, smin_t = sv[:, 0], sv[:, -1]
        safety = 1.0 + 1e-12
    else:
        smax_t = _power_smax(x64)
        smin_t = _inverse_power_smin(x64)
        safety = _POWER_SAFETY
    # tolist, not iteration: iterating a (b,) tensor makes b tensors (~1 ms at b = 256)
    smax: list[float] = smax_t.cpu().tolist()
    smin: list[float] = smin_t.cpu().tolist()
    eps = torch.finfo(torch.float64).eps
    singular = [lo <= n * eps * hi or hi == 0.0 for hi, lo in zip(smax, smin, strict=True)]
    cond = [
        math.inf if sing else hi / lo for sing, hi, lo in zip(singular, smax, smin, strict=True)
    ]
    return Spectrum(
        smax=tuple(smax),
        smin=tuple(0.0 if s else lo for s, lo in zip(singular, smin, strict=True)),
        smax_safe=tuple(hi * safety for hi in smax),
        cond=tuple(cond),
        singular=tuple(singular),
    )


def _start(x: torch.Tensor) -> torch.Tensor:
    gen = torch.Generator(device="cpu").manual_seed(0)
    v = torch.randn(x.shape[0], x.shape[-1], 1, generator=gen, dtype=torch.float64)
    unit: torch.Tensor = v / torch.linalg.vector_norm(v, dim=1, keepdim=True)
    return unit.to(x.device)


def _power_smax(x: torch.Tensor) -> torch.Tensor:
    v = _start(x)
    xt = x.mT
    est = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for _ in range(_POWER_STEPS):
        w = torch.bmm(xt, torch.bmm(x, v))
        est = torch.linalg.vector_norm(w, dim=(1, 2))
        v = w / est.clamp_min(torch.finfo(x.dtype).tiny)[:, None, None]
    smax: torch.Tensor = est.sqrt()
    return smax


def _inverse_power_smin(x: torch.Tensor) -> torch.Tensor:
    lu, piv, info = torch.linalg.lu_factor_ex(x)
    v = _start(x)
    est = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for _ in range(_INVERSE_STEPS):
        # (X^T X)^-1 v = X^-1 X^-T v
        y = torch.linalg.lu_solve(lu, piv, v, adjoint=True)
        w = torch.linalg.lu_solve(lu, piv, y)
        est = torch.linalg.vector_norm(w, dim=(1, 2))
        v = w / est.clamp_min(torch.finfo(x.dtype).tiny)[:, None, None]
    smin = torch.where(torch.isfinite(est) & (est > 0), est.rsqrt(), torch.zeros_like(est))
    return torch.where(info > 0, torch.zeros_like(smin), smin)
