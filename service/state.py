"""The app's long-lived resources: settings, the job store and the Celery app, opened lazily.

Lazily, so that an app built in a test (where no lifespan runs) or started while Redis is down
still serves: the first request that needs the store opens it, and readiness reports it.
"""

from __future__ import annotations

import threading

from celery import Celery

from ninv.queue import make_celery
from ninv.settings import Settings
from ninv.store import JobStore, open_store
from service.auth import KeyRing

__all__ = ["Resources"]


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

    def close(self) -> None:
        """Close what this object opened."""
        with self._lock:
            if self._owns_store and self._store is not None:
                self._store.close()
                self._store = None
            if self._owns_celery and self._celery is not None:
                self._celery.close()
                self._celery = None
