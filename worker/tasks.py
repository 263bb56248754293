"""The Celery tasks: thin shells around JobRunner (a task is much like a web view)."""

from __future__ import annotations

from ninv.queue import SOLVE_TASK, WAKE_TASK
from ninv.store import StoreUnavailable
from worker.app import celery_app, get_runner, get_store, send_wake

__all__ = ["solve", "wake"]


# A store that does not answer leaves the job queued; retrying the message (with backoff)
# keeps it from waiting for the next worker start-up to be found.
@celery_app.task(
    name=SOLVE_TASK,
    autoretry_for=(StoreUnavailable,),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=None,
)
def solve(job_id: str) -> None:
    """Solve one job (and any compatible queued jobs alongside it): older versions' message."""
    get_runner().run(job_id)


@celery_app.task(
    name=WAKE_TASK,
    autoretry_for=(StoreUnavailable,),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=None,
)
def wake() -> None:
    """Jobs wait in the store: take them, a batch at a time, in round-robin order."""
    # Cleared before claiming, so that a job stored after this point sends a new message and
    # a job stored before it is seen by the drain.
    get_store().clear_wake()
    get_runner().drain(send_wake)
