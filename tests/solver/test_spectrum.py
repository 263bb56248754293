"""The condition estimate, on both of its paths (SVD for small n, power iterations above)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.solver.problems import with_cond
from worker.solver import _spectrum, invert


@pytest.fixture
def estimated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Take the large-n path (power / inverse power iteration) at test sizes."""
    monkeypatch.setattr(_spectrum, "EXACT_SVD_MAX_N", 4)


@pytest.mark.parametrize("cond", [10.0, 1e3, 1e6])
def test_estimate_close_to_svd(estimated: None, cond: float) -> None:
    x = torch.from_numpy(np.stack([with_cond(40, cond, 0), with_cond(40, 2.0, 1)]))
    spec = _spectrum.spectrum(x)
    assert spec.cond[0] == pytest.approx(cond, rel=0.1)
    assert spec.cond[1] == pytest.approx(2.0, rel=0.1)
    for hi, safe in zip(spec.smax, spec.smax_safe, strict=True):
        assert safe >= hi  # an upper estimate for step sizes
    assert not any(spec.singular)


def test_estimate_flags_singular(estimated: None) -> None:
    x = with_cond(20, 10.0, 0)
    x[3] = 0.0
    spec = _spectrum.spectrum(torch.from_numpy(x)[None])
    assert spec.singular == (True,) and math.isinf(spec.cond[0])


def test_newton_schulz_on_the_estimated_path(estimated: None) -> None:
    x = with_cond(48, 1e3, 2)
    sol = invert(x, "newton-schulz", dtype="float64", device="cpu")
    assert sol.reason == "converged"
    np.testing.assert_allclose(sol.inverse, np.linalg.inv(x), atol=1e-6 * np.abs(x).max() * 1e3)
