"""Finding jobs whose worker died, and re-enqueueing jobs that have no message."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ninv.jobs import resend_cutoff, utcnow
from ninv.store import JobStore, StoreError

__all__ = ["LeaseSweeper", "Outbox", "requeue_waiting", "wake_if_waiting"]

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


def wake_if_waiting(store: JobStore, send_wake: Callable[[], object]) -> bool:
    """At a worker's start: if jobs are queued, drop any pending wake mark (its message may have
    died with a worker) and send a wake. True if jobs wait."""
    if not store.queued_ids(1):
        return False
    store.clear_wake()
    send_wake()
    return True


class Outbox:
    """Re-sends the message of every job queued longer than `after_s` (the store is the record).

    A job can be stored without a message (the API died between the two, or a full Redis lost
    the delivery), and would otherwise wait forever. Each job is re-sent at most once per
    interval, and the interval doubles per job (capped at `MAX_BACKOFF` times `after_s`), so a
    job that merely waits behind a long queue costs a handful of duplicates, each a no-op claim.
    """

    MAX_BACKOFF = 64
    #: Jobs looked at per sweep, oldest first.
    LIMIT = 1000

    def __init__(
        self,
        store: JobStore,
        enqueue: Callable[[str], None],
        *,
        after_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._enqueue = enqueue
        self._after_s = after_s
        self._clock = clock
        self._next: dict[str, tuple[float, float]] = {}  # id -> (next send, its interval)

    def note_sent(self, job_ids: list[str]) -> None:
        """These jobs just got a message (requeued after their lease expired)."""
        now = self._clock()
        for job_id in job_ids:
            self._next[job_id] = (now + self._after_s, self._after_s)

    def resend(self) -> list[str]:
        """One pass: send a message for each due job; the ids sent."""
        due = self._store.queued_ids(self.LIMIT, before=resend_cutoff(utcnow(), self._after_s))
        now = self._clock()
        self._next = {job_id: self._next[job_id] for job_id in due if job_id in self._next}
        sent: list[str] = []
        for job_id in due:
            at, interval = self._next.get(job_id, (now, self._after_s))
            if at > now:
                continue
            try:
                self._enqueue(job_id)
            except Exception as exc:  # the broker refuses (down, or full): next sweep retries
                log.warning("re-send of queued jobs stopped: %s: %s", type(exc).__name__, exc)
                break
            sent.append(job_id)
            interval = min(interval * 2, self._after_s * self.MAX_BACKOFF)
            self._next[job_id] = (now + interval, interval)
        return sent


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
        resend_after_s: float | None = None,
    ) -> None:
        super().__init__(name="ninv-lease-sweeper", daemon=True)
        self._store = store
        self._enqueue = enqueue
        self._outbox = (
            None if resend_after_s is None else Outbox(store, enqueue, after_s=resend_after_s)
        )
        self._max_attempts = max_attempts
        self._interval_s = interval_s
        self._stopped = threading.Event()

    def sweep(self) -> tuple[list[str], list[str]]:
        """One pass: requeue or fail expired jobs, re-send jobs queued too long without a
        claim, drop finished jobs past retention."""
        now = utcnow()
        requeued, failed = self._store.recover_expired(now, self._max_attempts)
        for job_id in requeued:
            self._enqueue(job_id)
        if self._outbox is not None:
            self._outbox.note_sent(requeued)
        if requeued or failed:
            log.warning("lease expired: requeued %s, failed %s", requeued, failed)
        if self._outbox is not None:
            resent = self._outbox.resend()
            if resent:
                log.info("re-sent %d jobs queued without a claim: %s", len(resent), resent[:10])
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
