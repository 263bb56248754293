"""The solver's names for methods, dtypes and stop reasons are the wire schema's.

They are written twice on purpose: the solver imports neither pydantic nor ninv (it runs where
only torch and numpy are installed), and ninv never imports torch. This test keeps them equal.
"""

from __future__ import annotations

from typing import Any, get_args

import pytest

from ninv import schemas
from worker import solver


@pytest.mark.parametrize(
    ("ours", "wire"),
    [
        (solver.Method, schemas.Method),
        (solver.DType, schemas.DType),
        (solver.StopReason, schemas.StopReason),
    ],
    ids=["Method", "DType", "StopReason"],
)
def test_solver_literals_equal_the_wire_schemas(ours: Any, wire: Any) -> None:
    assert get_args(ours) == get_args(wire)
