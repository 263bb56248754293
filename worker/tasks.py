"""The Celery task: a thin shell around JobRunner.run (a task is much like a web view)."""

from __future__ import annotations

from ninv.queue import SOLVE_TASK
from worker.app import celery_app, get_runner

__all__ = ["solve"]


@celery_app.task(name=SOLVE_TASK)
def solve(job_id: str) -> None:
    """Solve one job (and any compatible queued jobs alongside it)."""
    get_runner().run(job_id)
