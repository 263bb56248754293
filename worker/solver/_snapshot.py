"""A solve's whole state at a check, to save it and to resume from it: `Snapshot`.

The engine emits a `Snapshot` at a check when its `CheckHook` asks for one ("save"), or returns
`Suspended(snapshot)` when the hook asks it to yield. Resuming from a snapshot continues the
same iterates: the stepper's tensors (iterate, Adam moments, cg directions), the iteration (the
schedule's position and Adam's step count follow from it), each matrix's stop-rule state (best
residual, stall reference), the best iterate, the loss curve so far, and the matrices of a
batch that had stopped already. On the CPU a resumed solve equals an uninterrupted one bit for
bit (tests/solver/test_snapshot.py).

`to_bytes`/`from_bytes` encode a snapshot as one `.npz` (arrays plus a JSON header), never
pickle, so that any worker can read a checkpoint that another one wrote.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from ._problem import SolverError
from ._solution import HistoryPoint, Solution

__all__ = ["CheckHook", "Directive", "Snapshot", "Suspended", "TaskState"]

#: What a `CheckHook` answers at a check: go on, save a snapshot and go on, or yield.
Directive = Literal["go", "save", "yield"]

_FORMAT = 1


class CheckHook(Protocol):
    """Asked at every check on the grid whether to go on, save a snapshot, or yield."""

    def at_check(self, iteration: int) -> Directive: ...

    def save(self, snapshot: Snapshot) -> None: ...


@dataclass(frozen=True, slots=True)
class TaskState:
    """One matrix's state that is not in the stepper: its seed, stop-rule state and curve."""

    seed: int | None
    best_res: float
    ref_res: float
    ref_it: int
    history: tuple[HistoryPoint, ...]


@dataclass(frozen=True, slots=True, eq=False)
class Snapshot:
    """A solve at a check (see the module docstring).

    Fields:
        method, dtype, n, size: what is solved (size: matrices in the batch, live or not).
        iteration: the steps taken.
        elapsed_s: wall time of the solve so far (a resumed solve adds to it).
        active, aux_ok: the live matrices (indices into the batch) and whether each has an aux
            reference.
        tensors: the stepper's state and "best" (the best iterates), live matrices only.
        tasks: every matrix's `TaskState`, in batch order.
        done: the matrices that had stopped, with their `Solution`s.
    """

    method: str
    dtype: str
    n: int
    size: int
    iteration: int
    elapsed_s: float
    active: tuple[int, ...]
    aux_ok: tuple[bool, ...]
    tensors: Mapping[str, np.ndarray[Any, Any]]
    tasks: tuple[TaskState, ...]
    done: tuple[tuple[int, Solution], ...] = ()

    @property
    def nbytes(self) -> int:
        """The size of its arrays: about the size of `to_bytes()`, known without encoding."""
        arrays = [*self.tensors.values(), *(sol.inverse for _, sol in self.done)]
        return sum(int(a.nbytes) for a in arrays)

    def check_fits(self, method: str, dtype: str, n: int, size: int) -> None:
        """Raise SolverError unless this snapshot is of a solve of that shape and method."""
        want = (method, dtype, n, size)
        have = (self.method, self.dtype, self.n, self.size)
        if want != have:
            raise SolverError(f"checkpoint of {have} cannot resume a solve of {want}")

    def to_bytes(self) -> bytes:
        """The snapshot as `.npz` bytes: arrays, plus a JSON header named "header"."""
        arrays = {f"t.{name}": array for name, array in self.tensors.items()}
        arrays.update({f"done.{i}": sol.inverse for i, sol in self.done})
        header = {
            "format": _FORMAT,
            "method": self.method,
            "dtype": self.dtype,
            "n": self.n,
            "size": self.size,
            "iteration": self.iteration,
            "elapsed_s": self.elapsed_s,
            "active": list(self.active),
            "aux_ok": list(self.aux_ok),
            "tasks": [
                [t.seed, t.best_res, t.ref_res, t.ref_it, [_point(p) for p in t.history]]
                for t in self.tasks
            ],
            "done": [[i, _solution_fields(sol)] for i, sol in self.done],
        }
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        buffer = io.BytesIO()
        np.savez(buffer, allow_pickle=False, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> Snapshot:
        """Read `to_bytes`' output; SolverError if it is not a snapshot this version reads."""
        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
            header = json.loads(arrays.pop("header").tobytes())
            if header.get("format") != _FORMAT:
                raise SolverError(f"checkpoint format {header.get('format')} is not {_FORMAT}")
            tasks = tuple(
                TaskState(seed, best, ref, ref_it, tuple(HistoryPoint(*p) for p in hist))
                for seed, best, ref, ref_it, hist in header["tasks"]
            )
            done = tuple(
                (i, _solution(fields, arrays[f"done.{i}"])) for i, fields in header["done"]
            )
            return cls(
                method=header["method"],
                dtype=header["dtype"],
                n=header["n"],
                size=header["size"],
                iteration=header["iteration"],
                elapsed_s=header["elapsed_s"],
                active=tuple(header["active"]),
                aux_ok=tuple(header["aux_ok"]),
                tensors={k[2:]: v for k, v in arrays.items() if k.startswith("t.")},
                tasks=tasks,
                done=done,
            )
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
            if isinstance(exc, SolverError):
                raise
            raise SolverError(f"not a readable checkpoint: {exc}") from None


@dataclass(frozen=True, slots=True)
class Suspended:
    """What a solve returns when its hook asked it to yield: the snapshot to resume from."""

    snapshot: Snapshot


def _point(p: HistoryPoint) -> list[Any]:
    return [p.iteration, p.loss, p.residual, p.aux_error, p.lr]


def _solution_fields(sol: Solution) -> dict[str, Any]:
    fields = {f.name: getattr(sol, f.name) for f in dataclasses.fields(sol) if f.name != "inverse"}
    fields["history"] = [_point(p) for p in sol.history]
    return fields


def _solution(fields: dict[str, Any], inverse: np.ndarray[Any, Any]) -> Solution:
    history = tuple(HistoryPoint(*p) for p in fields.pop("history"))
    # JSON has no tuples: a Solution's sequence fields come back as lists.
    rest: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    return Solution(inverse=inverse, history=history, **rest)
