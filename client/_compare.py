"""`ninv-client compare`: one matrix through several methods on the service, side by side.

The seed's own question, which method gets where and when: every method's job is submitted at
once (a worker may solve them in turn or batch none of them: each has its own method), each is
followed to its end, and their curves and outcomes come back for a table and one chart.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from numpy.typing import ArrayLike

from client._display import num
from client._sync import Client
from client.plot import Curve
from ninv.schemas import HistoryPoint, Job, Method

__all__ = ["DEFAULT_METHODS", "CompareRun", "compare", "curves", "format_compare"]

#: Every method, the original first.
DEFAULT_METHODS: tuple[Method, ...] = ("adam", "gd", "cg", "newton-schulz", "exact")


@dataclass(frozen=True)
class CompareRun:
    """One method's finished job and its loss curve."""

    method: Method
    job: Job
    points: list[HistoryPoint]


def compare(
    client: Client,
    matrix: ArrayLike,
    methods: Sequence[Method] = DEFAULT_METHODS,
    *,
    timeout: float | None = None,
    **options: Any,
) -> list[CompareRun]:
    """Submit `matrix` once per method with the same `options`, wait for all (at most `timeout`
    seconds in all), and return each job with its curve, in the order of `methods`."""
    jobs = [client.submit(matrix, method=method, **options) for method in methods]
    deadline = None if timeout is None else time.monotonic() + timeout
    runs = []
    for method, job in zip(methods, jobs, strict=True):
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        done = client.wait(job.id, timeout=left)
        runs.append(CompareRun(method, done, client.history(job.id)))
    return runs


def curves(runs: Sequence[CompareRun]) -> list[Curve]:
    """The runs as `plot_compare` draws them."""
    return [Curve(run.method, run.points, run.job.summary) for run in runs]


def format_compare(runs: Sequence[CompareRun]) -> str:
    """A table: each method's outcome, iterations, residual, aux error and time."""
    header = ["METHOD", "STATUS", "CONVERGED", "REASON", "ITERATIONS", "RESIDUAL", "AUX", "SECONDS"]
    rows = [header]
    for run in runs:
        s = run.job.summary
        rows.append(
            [
                run.method,
                run.job.status.value,
                "-" if s is None else ("yes" if s.converged else "no"),
                "-" if s is None else s.reason,
                "-" if s is None else str(s.iterations),
                num(None if s is None else s.residual),
                num(None if s is None else s.aux_error),
                "-" if s is None else f"{s.elapsed_s:.3g}",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
