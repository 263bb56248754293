"""A worker announces itself in the job store, so that the API knows which workers are live.

Every announcement lives one lease (NINV_LEASE_S) and is renewed three times a lease: a worker
that died drops out of GET /workers and /readyz within a lease, as its jobs' leases expire.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from importlib.metadata import PackageNotFoundError, version

from ninv.jobs import utcnow
from ninv.schemas import WorkerInfo
from ninv.store import JobStore, StoreError

__all__ = ["Presence", "describe_worker"]

log = logging.getLogger(__name__)


def _ninv_version() -> str:
    try:
        return version("ninv")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def describe_worker(
    worker_id: str, device: str, *, cuda_devices: int, torch_version: str
) -> WorkerInfo:
    """This process as a WorkerInfo, seen now."""
    now = utcnow()
    return WorkerInfo(
        id=worker_id,
        hostname=socket.gethostname(),
        pid=os.getpid(),
        device=device,
        cuda_devices=cuda_devices,
        version=_ninv_version(),
        torch_version=torch_version,
        started_at=now,
        last_seen=now,
    )


class Presence(threading.Thread):
    """Announces the worker at once and every `ttl_s / 3` seconds after, in the background;
    `stop` withdraws it."""

    def __init__(self, store: JobStore, worker: WorkerInfo, *, ttl_s: float) -> None:
        super().__init__(name="ninv-presence", daemon=True)
        self._store = store
        self._worker = worker
        self._ttl_s = ttl_s
        self._stopped = threading.Event()

    def announce(self) -> None:
        """Say once that the worker is alive (for the next ttl_s seconds)."""
        self._worker = self._worker.model_copy(update={"last_seen": utcnow()})
        self._store.announce_worker(self._worker, self._ttl_s)

    def run(self) -> None:
        while True:
            try:
                self.announce()
            except StoreError as exc:  # the store is down: the next round tries again
                log.warning("worker announcement skipped: %s", exc)
            except Exception:  # never let the announcements stop quietly
                log.exception("worker announcement failed")
            if self._stopped.wait(max(0.2, self._ttl_s / 3)):
                return

    def stop(self) -> None:
        """Stop announcing and withdraw the worker, so that it is not shown as live."""
        self._stopped.set()
        if self.is_alive():
            self.join(timeout=5)  # an announcement under way must not outlive the withdrawal
        try:
            self._store.forget_worker(self._worker.id)
        except StoreError as exc:
            log.warning("could not withdraw the worker's announcement: %s", exc)
