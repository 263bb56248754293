"""Turning a solver's progress ticks into what the store keeps for one job."""

from __future__ import annotations

import time

from ninv.jobs import utcnow
from ninv.schemas import HistoryPoint, Progress, finite
from ninv.store import JobStore

__all__ = ["JobProgress"]

#: Log-spaced history: a point is kept when the iteration has grown by this factor since the
#: last kept one (about 50 points a decade, so even 1e8 iterations stay within a few hundred).
_HISTORY_GROWTH = 10 ** (1 / 50)


class JobProgress:
    """Reports one running job's ticks to the store and learns whether to go on.

    Each tick renews the lease, stores the latest progress, appends a log-spaced history point
    and reads the cancel flag, all in one store call.
    """

    def __init__(
        self,
        store: JobStore,
        job_id: str,
        worker: str,
        *,
        lease_s: float,
        max_iter: int,
        history_max_points: int,
        timeout_s: float,
    ) -> None:
        self._store = store
        self._job_id = job_id
        self._worker = worker
        self._lease_s = lease_s
        self._max_iter = max_iter
        self._history_max_points = history_max_points
        self._last_kept_iteration = 0
        self._deadline = time.monotonic() + timeout_s
        self.cancel_requested = False
        self.owned = True
        self.timed_out = False

    def _history_due(self, iteration: int) -> bool:
        return iteration >= max(
            self._last_kept_iteration * _HISTORY_GROWTH, 1 + self._last_kept_iteration
        )

    def tick(
        self,
        *,
        iteration: int,
        loss: float | None,
        residual: float | None,
        aux_error: float | None,
        lr: float | None,
        rate: float | None,
    ) -> bool:
        """Report one tick; return False when the job must stop (cancelled, lost, timed out)."""
        eta = (self._max_iter - iteration) / rate if rate else None
        progress = Progress(
            iteration=iteration,
            max_iter=self._max_iter,
            loss=finite(loss),
            residual=finite(residual),
            aux_error=finite(aux_error),
            lr=lr,
            rate=rate,
            eta_s=eta,
            updated_at=utcnow(),
        )
        history = []
        if self._history_due(iteration):
            self._last_kept_iteration = iteration
            history.append(
                HistoryPoint(
                    iteration=iteration,
                    loss=progress.loss,
                    residual=progress.residual,
                    aux_error=progress.aux_error,
                    lr=lr,
                )
            )
        beat = self._store.heartbeat(
            self._job_id,
            self._worker,
            self._lease_s,
            progress=progress,
            history=history,
            history_max_points=self._history_max_points,
        )
        self.owned = beat.owned
        self.cancel_requested = beat.cancel_requested
        self.timed_out = time.monotonic() > self._deadline
        return beat.owned and not beat.cancel_requested and not self.timed_out

    def final_history(self, points: list[HistoryPoint]) -> None:
        """Append the solver's own history points that come after the last one reported live."""
        later = [point for point in points if point.iteration > self._last_kept_iteration]
        if later:
            self._store.heartbeat(
                self._job_id,
                self._worker,
                self._lease_s,
                history=later,
                history_max_points=self._history_max_points,
            )
            self._last_kept_iteration = later[-1].iteration
