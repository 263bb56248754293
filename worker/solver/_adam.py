"""The original method: Adam on L(W) = mean((WX - I)^2), in closed form and in place.

The gradient is 2/n^2 (WX - I) X^T = 2/n^2 (W (X X^T) - X^T): with X X^T and X^T formed once,
a step takes one fused multiply-add matmul instead of two matmuls and a subtraction. The update
is torch.optim.Adam's (betas 0.9/0.999, eps 1e-8, bias correction), by the fused kernel that
torch.optim.Adam(fused=True) runs, on preallocated buffers: two kernels a step, with no
autograd, no nn.Module, no optimizer object and no allocation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch

__all__ = ["BETA1", "BETA2", "EPS", "AdamStepper", "original_start"]

BETA1 = 0.9
BETA2 = 0.999
EPS = 1e-8


def original_start(x: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
    """The original initialisation, one generator per matrix: W0 = R / (||R||_F ||X||_F).

    R = randn(n, n) is drawn on the CPU in the working dtype from torch.Generator seeded with
    the matrix's seed, so a seed gives the same start on every device and in every batch.
    """
    n = x.shape[-1]
    rs = []
    for seed in seeds:
        gen = torch.Generator(device="cpu").manual_seed(seed)
        rs.append(torch.randn(n, n, generator=gen, dtype=x.dtype))
    r = torch.stack(rs).to(x.device)
    norm_r = torch.linalg.matrix_norm(r)[:, None, None]
    norm_x = torch.linalg.matrix_norm(x)[:, None, None]
    w0: torch.Tensor = r / (norm_r * norm_x)
    return w0


class AdamStepper:
    """Adam iterations on a (b, n, n) batch; each matrix may have its own learning rate."""

    #: Steps between stopping checks: a check costs about one step, so this keeps it under 2%.
    check_every = 64

    def __init__(self, x: torch.Tensor, w0: torch.Tensor, lrs: Sequence[float]) -> None:
        self.x = x
        self.w = w0.clone()
        self.warmup = [0] * x.shape[0]
        self._m = torch.zeros_like(self.w)
        self._v = torch.zeros_like(self.w)
        self._alloc()
        self.set_lr(lrs)

    def _alloc(self) -> None:
        n = self.x.shape[-1]
        self._scale = 2.0 / (n * n)
        # G = scale W (X X^T) - scale X^T: one fused multiply-add matmul a step.
        self._xxt = torch.bmm(self.x, self.x.mT)
        self._neg_scaled_xt = self.x.mT.mul(-self._scale).contiguous()
        self._g = torch.empty_like(self.w)
        # The fused kernel applies Adam's bias corrections from a step count; it is kept at a
        # count where both corrections are exactly 1, and `step` folds the real corrections
        # into the lr and eps it passes, so no tensor needs updating between steps.
        self._no_correction = torch.full((), 1e9, dtype=torch.float32, device=self.w.device)

    def set_lr(self, lrs: Sequence[float]) -> None:
        """Set each matrix's learning rate for the following steps."""
        self._lrs = list(lrs)
        # One fused update per distinct learning rate. A lone rate updates the whole batch as
        # one tensor; mixed rates pass each group's matrices as a list. Either way every
        # element takes the same arithmetic as when its matrix is solved alone.
        groups: dict[float, list[int]] = {}
        for i, lr in enumerate(self._lrs):
            groups.setdefault(lr, []).append(i)
        views = (self.w, self._g, self._m, self._v)
        if len(groups) == 1:
            self._updates = [(self._lrs[0], [[t] for t in views], [self._no_correction])]
        else:
            self._updates = [
                (lr, [[t[i] for i in members] for t in views], [self._no_correction] * len(members))
                for lr, members in groups.items()
            ]

    def state(self) -> dict[str, torch.Tensor]:
        """The iterate and Adam's moments: what a snapshot keeps (the step count is the
        engine's iteration)."""
        return {"w": self.w, "m": self._m, "v": self._v}

    def restore(self, tensors: Mapping[str, torch.Tensor]) -> None:
        """Copy a snapshot's tensors in, in place (the fused updates hold views of them)."""
        self.w.copy_(tensors["w"])
        self._m.copy_(tensors["m"])
        self._v.copy_(tensors["v"])

    def keep(self, idx: torch.Tensor) -> None:
        """Keep only the matrices at positions `idx` (compaction after some stop)."""
        self.x = self.x.index_select(0, idx)
        self.w = self.w.index_select(0, idx)
        self._m = self._m.index_select(0, idx)
        self._v = self._v.index_select(0, idx)
        self._alloc()
        self.set_lr([self._lrs[i] for i in idx.tolist()])

    def step(self, start: int, k: int) -> None:
        """Take `k` steps; `start` is the number of steps taken before (Adam's step count)."""
        if self.x.shape[0] == 1:
            # 2-D kernels: less dispatch per call for the common single-matrix case.
            mm: Callable[..., torch.Tensor] = torch.addmm
            xxt, neg_xt, w, g = self._xxt[0], self._neg_scaled_xt[0], self.w[0], self._g[0]
        else:
            mm = torch.baddbmm
            xxt, neg_xt, w, g = self._xxt, self._neg_scaled_xt, self.w, self._g
        scale, updates, fused_adam = self._scale, self._updates, torch._fused_adam_
        for t in range(start + 1, start + k + 1):
            mm(neg_xt, w, xxt, alpha=scale, out=g)  # G = 2/n^2 (W X X^T - X^T)
            # lr/bc1 m / (sqrt(v)/sqrt(bc2) + eps) == (lr sqrt(bc2)/bc1) m / (sqrt(v) + eps
            # sqrt(bc2)): the corrections ride on the lr and eps of the call.
            bc2_sqrt = math.sqrt(1.0 - BETA2**t)
            factor = bc2_sqrt / (1.0 - BETA1**t)
            for lr, (ws, gs, ms, vs), steps in updates:
                # torch.optim.Adam's own fused kernel (what fused=True runs): one pass.
                fused_adam(
                    ws,
                    gs,
                    ms,
                    vs,
                    [],
                    steps,
                    lr=lr * factor,
                    beta1=BETA1,
                    beta2=BETA2,
                    weight_decay=0.0,
                    eps=EPS * bc2_sqrt,
                    amsgrad=False,
                    maximize=False,
                )
