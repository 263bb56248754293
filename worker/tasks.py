"""The Celery task: a thin shell around JobRunner.run (a task is much like a web view)."""

from __future__ import annotations

from ninv.queue import SOLVE_TASK
from ninv.store import StoreUnavailable
from worker.app import celery_app, get_runner

__all__ = ["solve"]


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
    """Solve one job (and any compatible queued jobs alongside it)."""
    get_runner().run(job_id)
