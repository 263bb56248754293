"""The original method: Adam on L(W) = mean((WX - I)^2), in closed form and in place.

The gradient is 2/n^2 (WX - I) X^T. The update is torch.optim.Adam's (betas 0.9/0.999,
eps 1e-8, bias correction) written on preallocated buffers: one step is two batched matmuls and
six elementwise kernels, with no autograd, no nn.Module and no allocation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

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
        b, n, _ = x.shape
        self._alloc(b, n)
        self._m = torch.zeros_like(self.w)
        self._v = torch.zeros_like(self.w)
        self.set_lr(lrs)

    def _alloc(self, b: int, n: int) -> None:
        like = self.w
        self._xt = self.x.mT.contiguous()
        self._neg_eye = -torch.eye(n, dtype=like.dtype, device=like.device).expand(b, n, n)
        self._r = torch.empty_like(like)
        self._g = torch.empty_like(like)
        self._d = torch.empty_like(like)
        self._tmp = torch.empty_like(like)
        self._scale = 2.0 / (n * n)

    def set_lr(self, lrs: Sequence[float]) -> None:
        """Set each matrix's learning rate for the following steps."""
        self._lrs = list(lrs)
        self._uniform = all(lr == self._lrs[0] for lr in self._lrs)
        # Per-matrix step factors are formed in float64 and then rounded to the working dtype,
        # exactly as the scalar `value=` of the uniform path is: a matrix in a mixed batch takes
        # bit for bit the steps it takes alone.
        dev = self.w.device
        self._lr64 = torch.tensor(self._lrs, dtype=torch.float64, device=dev)[:, None, None]
        self._coef64 = torch.empty_like(self._lr64)
        self._coef = torch.empty(self._lr64.shape, dtype=self.w.dtype, device=dev)

    def keep(self, idx: torch.Tensor) -> None:
        """Keep only the matrices at positions `idx` (compaction after some stop)."""
        self.x = self.x.index_select(0, idx)
        self.w = self.w.index_select(0, idx)
        self._m = self._m.index_select(0, idx)
        self._v = self._v.index_select(0, idx)
        self._alloc(self.x.shape[0], self.x.shape[-1])
        self.set_lr([self._lrs[i] for i in idx.tolist()])

    def step(self, start: int, k: int) -> None:
        """Take `k` steps; `start` is the number of steps taken before (Adam's step count)."""
        x, xt, w, m, v = self.x, self._xt, self.w, self._m, self._v
        r, g, d, neg_eye, scale = self._r, self._g, self._d, self._neg_eye, self._scale
        mm: Callable[..., torch.Tensor]
        single = x.shape[0] == 1
        if single:
            # 2-D kernels: less dispatch per call for the common single-matrix case.
            x, xt, w, m, v = x[0], xt[0], w[0], m[0], v[0]
            r, g, d, neg_eye = r[0], g[0], d[0], neg_eye[0]
            mm = torch.addmm
        else:
            mm = torch.baddbmm
        # In a batch, WX - I as WX then 1 off the diagonal: a plain bmm is much cheaper than
        # baddbmm's full add, and gives the same bits (x + (-1) == x - 1).
        diag_sub = r.diagonal(dim1=-2, dim2=-1).sub_
        bmm = torch.bmm
        lerp, v_mul, v_addcmul, w_addcdiv = m.lerp_, v.mul_, v.addcmul_, w.addcdiv_
        sqrt, d_add = torch.sqrt, d.add_
        uniform, lr = self._uniform, self._lrs[0]
        for t in range(start + 1, start + k + 1):
            if single:
                mm(neg_eye, w, x, out=r)  # R = WX - I
            else:
                bmm(w, x, out=r)
                diag_sub(1.0)
            mm(g, r, xt, beta=0.0, alpha=scale, out=g)  # G = 2/n^2 R X^T
            lerp(g, 1.0 - BETA1)
            v_mul(BETA2)
            v_addcmul(g, g, value=1.0 - BETA2)
            bc1 = 1.0 - BETA1**t
            bc2_sqrt = math.sqrt(1.0 - BETA2**t)
            # lr/bc1 * m / (sqrt(v)/bc2_sqrt + eps), with bc2_sqrt moved out of the denominator.
            sqrt(v, out=d)
            d_add(EPS * bc2_sqrt)
            factor = -bc2_sqrt / bc1
            if uniform:
                w_addcdiv(m, d, value=lr * factor)
            else:
                torch.mul(self._lr64, factor, out=self._coef64)
                self._coef.copy_(self._coef64)
                torch.mul(self._m, self._coef, out=self._tmp)
                self.w.addcdiv_(self._tmp, self._d)
