"""Readiness checks: does the job store answer, and can the broker take a message?"""

from __future__ import annotations

import redis

from ninv.settings import Settings
from ninv.store import JobStore, StoreError

__all__ = ["BROKER_TIMEOUT_S", "check_broker", "check_store"]

#: How long a readiness probe waits for Redis before calling it down.
BROKER_TIMEOUT_S = 1.0


def check_store(store: JobStore) -> str | None:
    """None when the store answers, else why not."""
    try:
        store.ping()
    except StoreError as exc:
        return f"job store unavailable: {exc}"
    return None


def check_broker(settings: Settings) -> str | None:
    """None when the broker is reachable: Redis answers a ping, or the broker folder exists."""
    if settings.redis_url:
        client = redis.Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=BROKER_TIMEOUT_S,
            socket_timeout=BROKER_TIMEOUT_S,
        )
        try:
            client.ping()
        except (redis.RedisError, OSError) as exc:
            return f"broker unavailable: {type(exc).__name__}"
        finally:
            client.close()
        return None
    folder = settings.data_dir / "broker" / "queue"
    return None if folder.is_dir() else f"broker folder {folder} does not exist"
