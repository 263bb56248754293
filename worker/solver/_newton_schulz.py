"""Newton-Schulz iteration W <- W (2I - X W), from a scaled X^T.

With W0 = 2 X^T / (sigma_max^2 + sigma_min^2) every singular direction of X W0 lies in (0, 2),
and I - X W_{k+1} = (I - X W_k)^2: the error squares each step once the smallest direction has
left 1, so it takes ~log2(cond^2) steps to start and a few more to reach machine precision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

__all__ = ["NewtonSchulzStepper", "scaled_start"]


def scaled_start(x: torch.Tensor, smax: Sequence[float], smin: Sequence[float]) -> torch.Tensor:
    """W0 = 2 X^T / (1.01 smax^2 + smin^2): smax must be an upper estimate of sigma_max.

    The 1% margin keeps X W0's largest direction safely below 2 (above 2 the iteration
    diverges); with smin = 0 (unknown or singular) it is close to X^T / sigma_max^2 * 2/1.01.
    """
    scale = [
        2.0 / (1.01 * hi * hi + lo * lo) if hi > 0 else 1.0
        for hi, lo in zip(smax, smin, strict=True)
    ]
    s = torch.tensor(scale, dtype=x.dtype, device=x.device)[:, None, None]
    return x.mT * s


class NewtonSchulzStepper:
    """Newton-Schulz iterations on a (b, n, n) batch, double-buffered."""

    check_every = 1

    def __init__(self, x: torch.Tensor, w0: torch.Tensor, cond: Sequence[float]) -> None:
        self.x = x
        self.w = w0.contiguous().clone()
        # The residual stays on a plateau for the ~2 log2(cond) steps its slowest direction
        # needs to leave it: no stall is judged before then.
        self.warmup = [math.ceil(2 * math.log2(c)) + 2 if math.isfinite(c) else 0 for c in cond]
        self._alloc()

    def _alloc(self) -> None:
        self._t = torch.empty_like(self.w)
        self._next = torch.empty_like(self.w)

    def set_lr(self, lrs: Sequence[float]) -> None:
        """Newton-Schulz has no learning rate."""

    def state(self) -> dict[str, torch.Tensor]:
        """The iterate: all a step reads besides X."""
        return {"w": self.w}

    def restore(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self.w.copy_(tensors["w"])

    def keep(self, idx: torch.Tensor) -> None:
        """Keep only the matrices at positions `idx`."""
        self.x = self.x.index_select(0, idx)
        self.w = self.w.index_select(0, idx)
        self._alloc()

    def step(self, start: int, k: int) -> None:
        """Take `k` iterations."""
        for _ in range(k):
            torch.bmm(self.x, self.w, out=self._t)  # T = X W
            torch.baddbmm(self.w, self.w, self._t, beta=2.0, alpha=-1.0, out=self._next)
            self.w, self._next = self._next, self.w
