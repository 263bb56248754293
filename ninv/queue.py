"""The Celery app shared by the API (which enqueues by task name) and the worker (which runs it).

Messages carry no job data: the store is the record of every job and what runs next
(`JobStore.claim_next`, round-robin across owners). The API sends one `ninv.wake` message
when jobs are queued and none is pending (`wake`), and a woken worker drains the store in
batches; a burst of N jobs costs about N / NINV_BATCH_MAX messages, not N.

With Redis configured, Redis is the broker; on the embedded default, kombu's filesystem
transport under NINV_DATA_DIR needs no server. Celery keeps no results: the job store is the
one place a job's state lives.
"""

from __future__ import annotations

from celery import Celery
from kombu.transport.redis import Transport as _KombuRedisTransport
from redis.exceptions import OutOfMemoryError, ReadOnlyError

from ninv.fsbroker import TRANSPORT as FS_TRANSPORT
from ninv.fsbroker import broker_options
from ninv.settings import Settings
from ninv.store import JobStore

__all__ = [
    "SOLVE_TASK",
    "WAKE_TASK",
    "RedisTransport",
    "enqueue",
    "make_celery",
    "send_marked_wake",
    "wake",
]

#: The per-job task older versions sent (`enqueue`); workers still run such messages.
SOLVE_TASK = "ninv.solve"
#: The task the API sends by name (so it never imports torch): "jobs are waiting in the store".
WAKE_TASK = "ninv.wake"


class RedisTransport(_KombuRedisTransport):
    """kombu's Redis transport, for which a Redis that refuses writes is a lost connection.

    kombu counts Redis's OOM and READONLY replies as channel errors, which Celery's consumer
    does not recover from: a full Redis (maxmemory, noeviction) stopped the worker for good.
    As connection errors, the worker reconnects with backoff and resumes on its own once Redis
    takes writes again. A message lost meanwhile leaves its job queued in the store, where the
    sweeper's outbox re-sends it (worker.recovery.Outbox).
    """

    connection_errors = (*_KombuRedisTransport.connection_errors, OutOfMemoryError, ReadOnlyError)


def _broker_options(settings: Settings) -> tuple[str, dict[str, object]]:
    # Redis redelivers an unacked message after the visibility timeout; it must outlast the
    # longest job, or a healthy long job would run twice. Dead workers are found sooner by the
    # job lease (see worker.recovery).
    if settings.redis_url:
        return settings.redis_url, {
            "visibility_timeout": settings.job_timeout_s + 3600,
            "socket_connect_timeout": 1,
            "socket_timeout": 5,
            "global_keyprefix": f"{settings.redis_prefix}:celery:",
        }
    # The embedded default: files in a folder, with a doorbell that wakes the worker at once.
    return "filesystem://", broker_options(settings.data_dir / "broker")


def _transport(settings: Settings, broker_url: str) -> type[RedisTransport] | str | None:
    """The transport kombu uses instead of the one the URL's scheme names, if any."""
    if settings.embedded:  # the filesystem transport with a doorbell (ninv/fsbroker.py)
        return FS_TRANSPORT
    # A class, not a name: plain redis:// only; rediss:// and sentinel:// keep kombu's own.
    return RedisTransport if broker_url.startswith("redis://") else None


def make_celery(settings: Settings) -> Celery:
    """A Celery app configured for long single-device jobs."""
    broker_url, transport_options = _broker_options(settings)
    app = Celery("ninv", broker=broker_url)
    app.conf.update(
        broker_transport=_transport(settings, broker_url),
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_pool="solo",
        worker_hijack_root_logger=False,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        task_default_queue="ninv",
        task_publish_retry=False,
        # Task events cost broker messages on every task, a real share of a small job's cost;
        # Flower (compose profile "monitoring") switches them on when it runs.
        worker_send_task_events=False,
    )
    return app


def enqueue(app: Celery, job_id: str) -> None:
    """Send the solve task for one job (what older versions did for every job)."""
    app.send_task(SOLVE_TASK, args=[job_id])


def wake(app: Celery, store: JobStore, *, pending_s: float) -> bool:
    """Send one wake message unless one is pending already (`JobStore.mark_wake`); True if
    sent. A mark lapses after pending_s, so a message lost with a dead worker is replaced.

    No job is lost by a wake not sent: a pending message's worker clears the mark before it
    claims (`JobStore.clear_wake`), so it sees every job stored before the mark was found set.
    """
    if not store.mark_wake(pending_s):
        return False
    send_marked_wake(app, store)
    return True


def send_marked_wake(app: Celery, store: JobStore) -> None:
    """Send the wake message whose pending mark the caller has just set (`wake`, or
    `JobStore.create` with `wake_pending_s`); if sending fails, clear the mark and raise."""
    try:
        app.send_task(WAKE_TASK)
    except BaseException:
        store.clear_wake()  # nothing is on its way: the next caller must send
        raise
