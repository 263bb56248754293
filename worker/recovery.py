"""Finding jobs whose worker died, and re-enqueueing jobs that have no message."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ninv.jobs import utcnow
from ninv.store import JobStore, StoreError

__all__ = ["LeaseSweeper", "requeue_waiting"]

log = logging.getLogger(__name__)


def requeue_waiting(store: JobStore, enqueue: Callable[[str], None]) -> int:
    """Send a message for every queued job, so that a job whose message was lost still runs.

    The embedded default's filesystem broker deletes a message on delivery: a worker killed
    between delivery and claim leaves its job queued with no message. Duplicate messages are
    harmless: claiming a job that is not queued is a no-op.
    """
    ids = store.queued_ids()
    for job_id in ids:
        enqueue(job_id)
    return len(ids)


class LeaseSweeper(threading.Thread):
    """Requeues running jobs whose lease expired (their worker died), in the background.

    Every worker runs one, so a job held by a killed worker is picked up by the others within
    about a lease. A job past its last attempt fails with "worker lost".
    """

    def __init__(
        self,
        store: JobStore,
        enqueue: Callable[[str], None],
        *,
        max_attempts: int,
        interval_s: float,
    ) -> None:
        super().__init__(name="ninv-lease-sweeper", daemon=True)
        self._store = store
        self._enqueue = enqueue
        self._max_attempts = max_attempts
        self._interval_s = interval_s
        self._stopped = threading.Event()

    def sweep(self) -> tuple[list[str], list[str]]:
        """One pass: requeue or fail expired jobs, drop finished jobs past retention."""
        now = utcnow()
        requeued, failed = self._store.recover_expired(now, self._max_attempts)
        for job_id in requeued:
            self._enqueue(job_id)
        if requeued or failed:
            log.warning("lease expired: requeued %s, failed %s", requeued, failed)
        self._store.purge_expired(now)
        return requeued, failed

    def run(self) -> None:
        while not self._stopped.wait(self._interval_s):
            try:
                self.sweep()
            except StoreError as exc:  # the store is down: try again next round
                log.warning("lease sweep skipped: %s", exc)
            except Exception:  # never let the sweeper die quietly
                log.exception("lease sweep failed")

    def stop(self) -> None:
        self._stopped.set()
