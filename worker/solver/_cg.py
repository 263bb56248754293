"""Conjugate gradient on the normal equations, all rows of W at once.

W X = I is equivalent to W (X X^T) = X^T: each row w of W solves the SPD system
(X X^T) w^T = (row of X^T)^T, and CG runs on all n rows (of all b matrices) together with
per-row step sizes. It converges in ~cond(X) iterations rather than gradient descent's
~cond(X)^2 (the normal equations square the conditioning, CG takes its square root back). It
starts from W0 = 0 and needs no random start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

__all__ = ["CgStepper"]


class CgStepper:
    """CG iterations on W A = B with A = X X^T, B = X^T, for a (b, n, n) batch."""

    #: A check costs one more matmul on top of the step's one: checking every 4th step keeps it
    #: at a quarter of the cost; cg needs tens to thousands of steps, so 3 extra are cheap.
    check_every = 4

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x
        self.w = torch.zeros_like(x)
        self.warmup = [0] * x.shape[0]
        self._a = torch.bmm(x, x.mT)
        self._res = x.mT.clone()  # B - W A with W = 0
        self._p = self._res.clone()
        self._rs = self._res.square().sum(-1, keepdim=True)

    def set_lr(self, lrs: Sequence[float]) -> None:
        """CG has no learning rate."""

    def state(self) -> dict[str, torch.Tensor]:
        """The iterate, residuals, search directions and squared residual norms."""
        return {"w": self.w, "res": self._res, "p": self._p, "rs": self._rs}

    def restore(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self.w.copy_(tensors["w"])
        self._res.copy_(tensors["res"])
        self._p.copy_(tensors["p"])
        self._rs = tensors["rs"].clone()

    def keep(self, idx: torch.Tensor) -> None:
        """Keep only the matrices at positions `idx`."""
        self.x = self.x.index_select(0, idx)
        self.w = self.w.index_select(0, idx)
        self._a = self._a.index_select(0, idx)
        self._res = self._res.index_select(0, idx)
        self._p = self._p.index_select(0, idx)
        self._rs = self._rs.index_select(0, idx)

    def step(self, start: int, k: int) -> None:
        """Take `k` CG iterations."""
        tiny = torch.finfo(self.w.dtype).tiny
        for _ in range(k):
            q = torch.bmm(self._p, self._a)  # rows of P A = (A p)^T, A symmetric
            pq = (self._p * q).sum(-1, keepdim=True)
            # A row whose residual is exactly zero has p = 0: give it a zero step, not 0/0.
            alpha = torch.where(pq > tiny, self._rs / pq.clamp_min(tiny), 0.0)
            self.w.addcmul_(alpha, self._p)
            self._res.addcmul_(alpha, q, value=-1.0)
            rs_new = self._res.square().sum(-1, keepdim=True)
            beta = torch.where(self._rs > tiny, rs_new / self._rs.clamp_min(tiny), 0.0)
            self._p.mul_(beta).add_(self._res)
            self._rs = rs_new
