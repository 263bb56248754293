"""The closed-form, in-place adam against the original loop: autograd + torch.optim.Adam."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.solver.problems import original_family
from worker.solver import invert

SCHEDULE = [(0, 0.05), (300, 0.025), (700, 0.01)]


def original_start(x: torch.Tensor, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    r = torch.randn(*x.shape, generator=gen, dtype=x.dtype)
    return r / (torch.linalg.matrix_norm(r) * torch.linalg.matrix_norm(x))


def reference_iterates(x: torch.Tensor, seed: int, steps: list[int]) -> dict[int, torch.Tensor]:
    """The original method, written the plain way, with a staged lr set between steps."""
    n = x.shape[-1]
    w = original_start(x, seed).clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=SCHEDULE[0][1], betas=(0.9, 0.999), eps=1e-8)
    stages = dict(SCHEDULE)
    eye = torch.eye(n, dtype=x.dtype)
    out = {0: w.detach().clone()}
    for i in range(max(steps)):
        if i in stages:
            for group in opt.param_groups:
                group["lr"] = stages[i]
        opt.zero_grad()
        loss = ((w @ x - eye) ** 2).mean()
        loss.backward()
        opt.step()
        if i + 1 in steps:
            out[i + 1] = w.detach().clone()
    return out


@pytest.mark.parametrize("seed", [0, 7])
def test_adam_iterates_match_torch_optim_adam(seed: int) -> None:
    x = torch.from_numpy(original_family(seed).astype(np.float64))
    steps = [1, 2, 64, 299, 300, 301, 1000]
    ref = reference_iterates(x, seed, steps)
    for k in steps:
        sol = invert(
            x, "adam", max_iter=k, lr_schedule=SCHEDULE, dtype="float64", device="cpu", seed=seed
        )
        assert sol.iterations == k and sol.reason == "max_iter"
        expected = ref[k]
        torch.testing.assert_close(
            torch.from_numpy(sol.inverse),
            expected,
            rtol=1e-9,
            atol=1e-9 * float(expected.abs().max()),
            msg=lambda m, k=k: f"iterate {k}: {m}",
        )


def test_start_is_the_original_initialisation() -> None:
    x = torch.from_numpy(original_family(3).astype(np.float64))
    # One Adam step moves every entry by ~lr, so recover W0 from the reference at step 0.
    ref = reference_iterates(x, 11, [1])
    sol = invert(x, "adam", max_iter=1, dtype="float64", device="cpu", seed=11)
    torch.testing.assert_close(torch.from_numpy(sol.inverse), ref[1], rtol=1e-12, atol=1e-14)
    assert sol.history[0].iteration == 0
    w0 = ref[0]
    r0 = torch.linalg.matrix_norm(w0 @ x - torch.eye(16, dtype=x.dtype)) / 4.0
    assert sol.history[0].residual == pytest.approx(float(r0), rel=1e-12)
