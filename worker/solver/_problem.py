"""Input validation: the solver's one exception type and the checks that raise it.

Every bad input raises `SolverError` (a `ValueError`) with a message that names the problem and
the offending shape or value, so that callers can turn it into a 4xx without parsing text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, get_args

import numpy as np
import torch

__all__ = [
    "DEFAULT_MAX_N",
    "DTYPES",
    "METHODS",
    "REASONS",
    "DType",
    "Method",
    "SolverError",
    "StopReason",
    "as_matrix",
    "check_matrix",
    "check_max_iter",
    "check_method",
    "check_seeds",
    "check_stall_window",
    "check_tol",
    "resolve_device",
    "torch_dtype",
]

Method = Literal["adam", "gd", "cg", "newton-schulz", "exact"]
DType = Literal["float32", "float64"]
#: Why a matrix stopped. The engine stops as converged, max_iter, stalled, diverged or cancelled;
#: the verdict (`_verdict.py`) then names the cause of a stop short of tol where it is known:
#: singular (no inverse exists) or precision_floor (rounding in this dtype stopped it).
StopReason = Literal[
    "converged", "max_iter", "stalled", "diverged", "cancelled", "singular", "precision_floor"
]

METHODS: tuple[Method, ...] = get_args(Method)
DTYPES: tuple[DType, ...] = get_args(DType)
REASONS: tuple[StopReason, ...] = get_args(StopReason)

#: The largest n accepted when the caller passes no `max_n` of its own.
DEFAULT_MAX_N = 8192


class SolverError(ValueError):
    """A bad input to the solver: the message names the problem and the offending value."""


def check_method(method: object) -> Method:
    """Return `method` if it is one of `METHODS`, else raise `SolverError`."""
    for m in METHODS:
        if method == m:
            return m
    raise SolverError(f"unknown method {method!r}: expected one of {', '.join(METHODS)}")


def torch_dtype(dtype: object) -> torch.dtype:
    """Map "float32"/"float64" to the torch dtype, else raise `SolverError`."""
    if dtype == "float32":
        return torch.float32
    if dtype == "float64":
        return torch.float64
    raise SolverError(f"unsupported dtype {dtype!r}: expected 'float32' or 'float64'")


def resolve_device(device: object) -> torch.device:
    """Resolve "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N"."""
    if not isinstance(device, str | torch.device):
        raise SolverError(
            f"device must be a string such as 'auto', 'cpu' or 'cuda:0', not {device!r}"
        )
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise SolverError(f"unknown device {name!r}: expected 'auto', 'cpu' or 'cuda:N'") from None
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise SolverError(f"unsupported device {name!r}: expected 'auto', 'cpu' or 'cuda:N'")
    if not torch.cuda.is_available():
        raise SolverError(f"device {name!r} requested but CUDA is not available on this machine")
    count = torch.cuda.device_count()
    if dev.index is not None and dev.index >= count:
        raise SolverError(
            f"device {name!r} does not exist: this machine has {count} CUDA device(s)"
        )
    return dev


def check_max_iter(max_iter: object) -> int:
    """Return `max_iter` as an int >= 1, else raise `SolverError`."""
    if isinstance(max_iter, bool) or not isinstance(max_iter, int | np.integer):
        raise SolverError(f"max_iter must be an integer, not {max_iter!r}")
    if max_iter < 1:
        raise SolverError(f"max_iter must be at least 1, not {max_iter}")
    return int(max_iter)


def check_tol(tol: object) -> float | None:
    """Return `tol` if it is None or a float in (0, 1), else raise `SolverError`."""
    if tol is None:
        return None
    if isinstance(tol, bool) or not isinstance(tol, int | float | np.floating | np.integer):
        raise SolverError(f"tol must be a number in (0, 1), not {tol!r}")
    value = float(tol)
    if not (0.0 < value < 1.0):
        raise SolverError(f"tol must lie in (0, 1), not {tol!r}")
    return value


def check_stall_window(window: object) -> int | None:
    """Return `window` if it is None or an int >= 0 (0: no stall stop), else raise `SolverError`."""
    if window is None:
        return None
    if isinstance(window, bool) or not isinstance(window, int | np.integer):
        raise SolverError(f"stall_window must be an integer >= 0, not {window!r}")
    if window < 0:
        raise SolverError(f"stall_window must be >= 0 (0 turns the stall stop off), not {window}")
    return int(window)


def _first_bad(values: np.ndarray[Any, Any]) -> tuple[int, ...]:
    bad = np.argwhere(~np.isfinite(values))
    return tuple(int(i) for i in bad[0])


def as_matrix(
    matrix: object, *, dtype: torch.dtype, device: torch.device, max_n: int | None
) -> torch.Tensor:
    """Validate `matrix` and return it as a (b, n, n) tensor of `dtype` on `device`.

    Accepts a NumPy array or a torch tensor (anything `numpy.asarray` takes, too) of shape (n, n)
    or (b, n, n) with real, non-boolean, finite entries that fit in `dtype`.
    """
    if isinstance(matrix, torch.Tensor):
        t = matrix.detach()
        if t.is_complex() or t.dtype == torch.bool or not (t.is_floating_point() or _is_int(t)):
            raise SolverError(f"matrix must hold real numbers, not {t.dtype}")
        if t.dtype in (torch.bfloat16, torch.float16):
            t = t.to(torch.float32)
        array = t.cpu().numpy()
    else:
        try:
            array = np.asarray(matrix)
        except (ValueError, TypeError) as exc:
            raise SolverError(f"matrix is not an array of numbers: {exc}") from None
        kind = array.dtype.kind
        if kind not in "iuf":
            what = {"b": "booleans", "c": "complex numbers", "O": "Python objects"}.get(
                kind, f"dtype {array.dtype}"
            )
            raise SolverError(f"matrix must hold real numbers, not {what}")
        if array.dtype == np.float16:
            array = array.astype(np.float32)
    shape = tuple(array.shape)
    if array.ndim not in (2, 3):
        raise SolverError(f"matrix must be 2-D (n, n) or 3-D (b, n, n), got shape {shape}")
    if array.size == 0:
        raise SolverError(f"matrix is empty: shape {shape}")
    if shape[-1] != shape[-2]:
        raise SolverError(f"matrix must be square, got shape {shape}")
    n = shape[-1]
    if max_n is not None and n > max_n:
        raise SolverError(f"matrix is {n}x{n}, larger than the limit n <= {max_n}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        where = _first_bad(array)
        raise SolverError(
            f"matrix has a non-finite entry ({array[where]}) at index {list(where)} (shape {shape})"
        )
    out = torch.from_numpy(np.ascontiguousarray(array)).to(dtype)
    # NumPy on the CPU tensor's memory: torch.isfinite costs ~0.2 ms a call even at n = 16,
    # most of a small `exact` job's solve.
    if not np.isfinite(out.numpy()).all():
        where = _first_bad(out.numpy())
        raise SolverError(
            f"matrix entry {array[where]} at index {list(where)} overflows {_name(dtype)}"
        )
    if out.ndim == 2:
        out = out.unsqueeze(0)
    return out.to(device)


def check_matrix(matrix: object, *, dtype: str, max_n: int | None = None) -> None:
    """Raise `SolverError` unless `matrix` is one the solver takes in `dtype`.

    The same checks as a solve makes, on the CPU and without solving: a worker runs it on each
    job's matrix before stacking a batch, so a bad matrix fails its own job with indices in its
    own matrix, not the whole batch with indices in the stack.
    """
    as_matrix(matrix, dtype=torch_dtype(dtype), device=torch.device("cpu"), max_n=max_n)


def _is_int(t: torch.Tensor) -> bool:
    return t.dtype in (torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64)


def _name(dtype: torch.dtype) -> str:
    return "float32" if dtype == torch.float32 else "float64"


def check_seeds(seeds: Sequence[object]) -> None:
    """Raise `SolverError` unless every seed is None or an int in [0, 2**63)."""
    for seed in seeds:
        if seed is None:
            continue
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise SolverError(f"seed must be an integer, not {seed!r}")
        if not (0 <= int(seed) < 2**63):
            raise SolverError(f"seed must lie in [0, 2**63), not {seed}")
