"""Plain gradient descent on L(W) = mean((WX - I)^2): the textbook baseline.

The loss's gradient is Lipschitz with constant L = 2 sigma_max^2 / n^2, so the default step is
1/L = n^2 / (2 sigma_max^2): W <- W - (WX - I) X^T / sigma_max^2. It needs ~cond^2 steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

__all__ = ["GdStepper", "default_step"]


def default_step(n: int, smax: float) -> float:
    """1/L for L = 2 sigma_max^2 / n^2 (sigma_max an upper estimate)."""
    return n * n / (2.0 * smax * smax) if smax > 0 else 1.0


class GdStepper:
    """Gradient-descent iterations on a (b, n, n) batch; each matrix has its own step size."""

    check_every = 64

    def __init__(self, x: torch.Tensor, w0: torch.Tensor, lrs: Sequence[float]) -> None:
        self.x = x
        self.w = w0.clone()
        self.warmup = [0] * x.shape[0]
        self._alloc()
        self.set_lr(lrs)

    def _alloc(self) -> None:
        b, n, _ = self.x.shape
        self._xt = self.x.mT.contiguous()
        self._neg_eye = -torch.eye(n, dtype=self.w.dtype, device=self.w.device).expand(b, n, n)
        self._r = torch.empty_like(self.w)
        self._g = torch.empty_like(self.w)
        self._scale = 2.0 / (n * n)

    def set_lr(self, lrs: Sequence[float]) -> None:
        """Set each matrix's step size for the following steps."""
        self._lrs = list(lrs)
        self._uniform = all(lr == self._lrs[0] for lr in self._lrs)
        self._neg_lr = -torch.tensor(self._lrs, dtype=self.w.dtype, device=self.w.device)[
            :, None, None
        ]

    def state(self) -> dict[str, torch.Tensor]:
        """The iterate: all a step reads besides X and the step sizes."""
        return {"w": self.w}

    def restore(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self.w.copy_(tensors["w"])

    def keep(self, idx: torch.Tensor) -> None:
        """Keep only the matrices at positions `idx`."""
        self.x = self.x.index_select(0, idx)
        self.w = self.w.index_select(0, idx)
        self._alloc()
        self.set_lr([self._lrs[i] for i in idx.tolist()])

    def step(self, start: int, k: int) -> None:
        """Take `k` steps (`start`, the steps taken before, does not matter here)."""
        x, xt, w, r, g = self.x, self._xt, self.w, self._r, self._g
        for _ in range(k):
            torch.baddbmm(self._neg_eye, w, x, out=r)
            if self._uniform:
                w.baddbmm_(r, xt, alpha=-self._lrs[0] * self._scale)
            else:
                torch.baddbmm(g, r, xt, beta=0.0, alpha=self._scale, out=g)
                w.addcmul_(g, self._neg_lr)
