"""Readiness checks: does the job store answer and take writes, can the broker take a message?"""

from __future__ import annotations

import redis

from ninv.settings import Settings
from ninv.store import JobStore, StoreError

__all__ = ["BROKER_TIMEOUT_S", "check_broker", "check_store", "check_writes"]

#: How long a readiness probe waits for Redis before calling it down.
BROKER_TIMEOUT_S = 1.0


def check_store(store: JobStore) -> str | None:
    """None when the store answers, else why not."""
    try:
        store.ping()
    except StoreError as exc:
        return f"job store unavailable: {exc}"
    return None


def check_writes(settings: Settings) -> str | None:
    """None when Redis accepts a write (a small key that expires), else why not.

    A Redis at its maxmemory (noeviction) still answers PING and reads, but refuses every job
    the API would accept: readiness must say so. The embedded store has no such limit to probe.
    """
    if not settings.redis_url:
        return None
    client = redis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=BROKER_TIMEOUT_S, socket_timeout=BROKER_TIMEOUT_S
    )
    try:
        client.set(f"{settings.redis_prefix}:readyz", b"1", ex=60)
    except (redis.exceptions.OutOfMemoryError, redis.exceptions.ReadOnlyError) as exc:
        return f"job store full: Redis refuses writes ({exc})"
    except (redis.RedisError, OSError) as exc:
        return f"job store unavailable: {type(exc).__name__}"
    finally:
        client.close()
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
