"""Turning a solver's progress ticks into what the store keeps for one job (no I/O here)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from ninv.jobs import utcnow
from ninv.schemas import CurvePoint, HistoryPoint, Progress, finite
from ninv.store import Beat, Heartbeat
from worker.solver import ProgressPoint

__all__ = ["JobProgress"]

#: Log-spaced history: a point is kept when the iteration has grown by this factor since the
#: last kept one (about 50 points a decade, so even 1e8 iterations stay within a few hundred).
_HISTORY_GROWTH = 10 ** (1 / 50)


class JobProgress:
    """One running job's side of the progress protocol.

    `beat` turns a solver tick into what one store heartbeat writes (the latest progress and a
    log-spaced history point); `answer` takes what the store said back (still owned? cancel
    requested?) and decides whether the job goes on. The runner does the I/O, so that a batch
    of jobs reports in one store call.
    """

    def __init__(self, job_id: str, *, max_iter: int, timeout_s: float) -> None:
        self.job_id = job_id
        self._max_iter = max_iter
        self._last_kept_iteration = 0
        self._reported: list[HistoryPoint] = []
        self._deadline = time.monotonic() + timeout_s
        self.cancel_requested = False
        self.owned = True
        self.timed_out = False

    def _history_due(self, iteration: int) -> bool:
        last = self._last_kept_iteration
        return iteration >= max(last * _HISTORY_GROWTH, last + 1)

    def beat(self, point: ProgressPoint) -> Beat:
        """The store writes of one tick: progress with rate and ETA, maybe a history point."""
        rate = point.rate
        progress = Progress(
            iteration=point.iteration,
            max_iter=self._max_iter,
            loss=finite(point.loss),
            residual=finite(point.residual),
            aux_error=finite(point.aux_error),
            lr=point.lr,
            rate=rate,
            eta_s=(self._max_iter - point.iteration) / rate if rate else None,
            updated_at=utcnow(),
        )
        history = []
        if self._history_due(point.iteration):
            self._last_kept_iteration = point.iteration
            history.append(
                HistoryPoint(
                    iteration=point.iteration,
                    loss=progress.loss,
                    residual=progress.residual,
                    aux_error=progress.aux_error,
                    lr=point.lr,
                )
            )
            self._reported += history
        return Beat(self.job_id, progress=progress, history=history)

    def answer(self, heartbeat: Heartbeat) -> bool:
        """Take the store's answer; False when the job must stop (cancelled, lost, timed out)."""
        self.owned = heartbeat.owned
        self.cancel_requested = heartbeat.cancel_requested
        self.timed_out = time.monotonic() > self._deadline
        return self.owned and not self.cancel_requested and not self.timed_out

    def final_history(self, solver_points: Sequence[CurvePoint]) -> list[CurvePoint]:
        """The whole curve for the store: the solver's own (every check from iteration 0) and
        the points reported live, in iteration order; the solver's point wins a tie."""
        by_iteration: dict[int, CurvePoint] = {point.iteration: point for point in self._reported}
        by_iteration.update((point.iteration, point) for point in solver_points)
        return [by_iteration[i] for i in sorted(by_iteration)]
