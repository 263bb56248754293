"""Thinning a loss curve evenly in log-iteration, keeping its ends and its lr stage changes.

A curve holds a point at every check; a long solve has too many to keep or to send. Thinned
evenly in log(1 + iteration), a curve keeps as much detail per decade at 1e2 as at 1e6, which
is how it is plotted (log-log). The points where the learning rate changes, and the ones just
before, are always kept, so that a plot can mark each lr stage where it starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

import numpy as np

__all__ = ["HISTORY_KEEP", "thin"]

#: Points a solve keeps of its curve while it runs (it thins to this when it holds twice as
#: many): enough for any NINV_HISTORY_MAX_POINTS (at most 10,000), bounded for any max_iter.
HISTORY_KEEP = 10_000


class _Point(Protocol):
    @property
    def iteration(self) -> int: ...
    @property
    def lr(self) -> float | None: ...


P = TypeVar("P", bound=_Point)


def _kept(u: np.ndarray[Any, Any], must: np.ndarray[Any, Any], step: float) -> np.ndarray[Any, Any]:
    """Indices kept on a grid of `step` in log-iteration: the first point of each grid cell,
    the ends, and the `must` indices."""
    _, first = np.unique(np.floor(u / step), return_index=True)
    return np.union1d(np.union1d(first, must), [0, len(u) - 1])


def thin(points: Sequence[P], cap: int) -> list[P]:
    """At most `cap` points (at least 2), evenly spread in log(1 + iteration): the first, the last,
    the lr stage changes (and the point before each) and as dense a log-even grid as fits."""
    if len(points) <= max(cap, 2):
        return list(points)
    cap = max(cap, 2)
    changes = [i for i in range(1, len(points)) if points[i].lr != points[i - 1].lr]
    must = np.array(sorted({j for i in changes for j in (i - 1, i)}), dtype=np.int64)
    if len(must) + 2 > cap:
        must = must[:0]  # more stages than room: spread the points evenly instead
    u = np.log1p(np.array([max(p.iteration, 0) for p in points], dtype=np.float64))
    lo, hi = 0.0, float(u[-1] - u[0]) + 1.0  # at hi, one cell: the ends and `must` only
    # The smallest step whose grid fits in cap points: the densest even spread.
    for _ in range(40):
        mid = (lo + hi) / 2
        if len(_kept(u, must, mid)) > cap:
            lo = mid
        else:
            hi = mid
    return [points[int(i)] for i in _kept(u, must, hi)]
