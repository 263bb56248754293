"""The app's long-lived resources: settings, the job store and the Celery app, opened lazily.

Lazily, so that an app built in a test (where no lifespan runs) or started while Redis is down
still serves: the first request that needs the store opens it, and readiness reports it.
"""

from __future__ import annotations

import threading
import time

from celery import Celery

from ninv.notify import ChangeFeed, open_feed
from ninv.queue import make_celery
from ninv.schemas import WorkerInfo
from ninv.settings import Settings
from ninv.store import JobStore, open_store
from service.auth import KeyRing

__all__ = ["WORKERS_MAX_AGE_S", "Resources"]

#: How old the list of live workers behind a job's notice may be: it saves a store round trip
#: on every submission, and workers announce themselves only every few seconds anyway.
WORKERS_MAX_AGE_S = 1.0


class Resources:
    """What the handlers share; given store or celery stay the caller's to close."""

    def __init__(
        self, settings: Settings, *, store: JobStore | None = None, celery: Celery | None = None
    ) -> None:
        self.settings = settings
        self.keys = KeyRing(settings.api_key_list)
        self._store = store
        self._celery = celery
        self._owns_store = store is None
        self._owns_celery = celery is None
        self._lock = threading.Lock()
        self._workers: tuple[float, list[WorkerInfo]] | None = None
        self._changes: ChangeFeed | None = None
        self.workers_max_age_s = WORKERS_MAX_AGE_S

    @property
    def store(self) -> JobStore:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = open_store(self.settings)
        return self._store

    @property
    def celery(self) -> Celery:
        if self._celery is None:
            with self._lock:
                if self._celery is None:
                    self._celery = make_celery(self.settings)
        return self._celery

    @property
    def changes(self) -> ChangeFeed:
        """The store's change notices, for requests that wait on a job (started on first use)."""
        if self._changes is None:
            with self._lock:
                if self._changes is None:
                    self._changes = open_feed(self.settings)
        return self._changes

    def recent_workers(self) -> list[WorkerInfo]:
        """The live workers, as the store listed them at most workers_max_age_s ago."""
        cached = self._workers
        if cached is None or time.monotonic() - cached[0] >= self.workers_max_age_s:
            cached = (time.monotonic(), self.store.live_workers())
            self._workers = cached
        return cached[1]

    def close(self) -> None:
        """Close what this object opened."""
        with self._lock:
            if self._changes is not None:
                self._changes.close()
                self._changes = None
            if self._owns_store and self._store is not None:
                self._store.close()
                self._store = None
            if self._owns_celery and self._celery is not None:
                self._celery.close()
                self._celery = None
