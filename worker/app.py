"""The worker's Celery app, `celery_app` (what Flower is pointed at), and its lifecycle hooks."""

from __future__ import annotations

import gc
import logging
import os
import socket
from functools import cache
from typing import TYPE_CHECKING

from celery.signals import worker_ready, worker_shutdown

from ninv.durability import log_persistence
from ninv.queue import make_celery, wake
from ninv.settings import Settings, get_settings
from ninv.store import JobStore, StoreError, open_store
from worker.presence import Presence, describe_worker
from worker.recovery import LeaseSweeper, wake_if_waiting

if TYPE_CHECKING:  # the real import waits for get_runner: Flower must not load torch
    from worker.runner import JobRunner

__all__ = ["celery_app", "get_runner", "get_store", "send_wake"]

log = logging.getLogger(__name__)

# Celery logs two INFO lines per task (received, succeeded); with thousands of small jobs that
# is much of a short task's cost. The runner logs what matters about each job instead.
for _name in ("celery.app.trace", "celery.worker.strategy"):
    logging.getLogger(_name).setLevel(logging.WARNING)

celery_app = make_celery(get_settings())
celery_app.conf.include = ["worker.tasks"]


@cache
def get_store() -> JobStore:
    # A worker's writes can be redone (a job whose claim or result is lost runs again), so
    # they need not wait for the disk; see SqliteStore.
    return open_store(get_settings(), durable=False)


@cache
def get_runner() -> JobRunner:
    # Imported here so that `celery -A worker.app` (Flower, inspect) does not load torch.
    from worker.runner import JobRunner

    settings = get_settings()
    worker_id = f"{socket.gethostname()}:{os.getpid()}:{settings.device}"
    return JobRunner(get_store(), settings, worker_id=worker_id, wake=send_wake)


def send_wake() -> bool:
    """Send a wake message for queued jobs, unless one is pending (see ninv.queue.wake)."""
    return wake(celery_app, get_store(), pending_s=get_settings().lease_s)


def _enqueue(job_id: str) -> None:
    """What the sweeper calls for a job that needs a message: a wake covers them all."""
    send_wake()


_sweeper: LeaseSweeper | None = None
_presence: Presence | None = None


def _announce(settings: Settings, worker_id: str) -> Presence:
    """Start announcing this worker (device, versions) in the store, once it takes jobs."""
    import torch  # loaded already by get_runner

    cuda_devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    info = describe_worker(
        worker_id, settings.device, cuda_devices=cuda_devices, torch_version=torch.__version__
    )
    presence = Presence(get_store(), info, ttl_s=settings.lease_s)
    presence.start()
    return presence


@worker_ready.connect
def _start_recovery(**_: object) -> None:
    global _sweeper, _presence
    settings = get_settings()
    runner = get_runner()  # load torch and the store before the first job, not during it
    if settings.redis_url:
        log_persistence(settings.redis_url)
    # A wake mark may outlive its message (the filesystem broker deletes a message when it
    # delivers it; an API may die between storing a job and sending): start with a fresh one.
    # Later, the sweeper's outbox wakes the workers for any job queued longer than
    # NINV_REQUEUE_AFTER_S (its wake lost with a dead worker, or by a full Redis).
    try:
        if wake_if_waiting(get_store(), send_wake):
            log.info("jobs wait in the store: woke the workers")
    except Exception as exc:  # store or broker down or full: the sweeper's outbox retries
        log.warning("start-up wake skipped: %s: %s", type(exc).__name__, exc)
    _sweeper = LeaseSweeper(
        get_store(),
        _enqueue,
        max_attempts=settings.max_attempts,
        interval_s=max(0.5, settings.lease_s / 3),
        resend_after_s=settings.requeue_after_s,
    )
    try:
        _sweeper.sweep()
    except StoreError as exc:  # the store is down or full: the sweeper's rounds retry
        log.warning("first lease sweep skipped: %s", exc)
    _sweeper.start()
    _presence = _announce(settings, runner.worker_id)
    # Start-up's objects (torch, celery, pydantic's schemas: ~200k) live as long as the
    # process: out of the collector's reach, a full collection scans only what jobs allocate
    # (a drain of small jobs spent ~40% of its time in collections that found nothing to free).
    gc.freeze()


@worker_shutdown.connect
def _stop_recovery(**_: object) -> None:
    if _sweeper is not None:
        _sweeper.stop()
    if _presence is not None:
        _presence.stop()
