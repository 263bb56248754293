"""Is an acknowledged job durable? A start-up look at Redis's persistence settings.

A 202 promises that the job will run, but the job lives in Redis: with neither the append-only
file nor snapshots, a Redis restart forgets every accepted job, and with snapshots only, the
jobs accepted since the last snapshot. The API and the workers log what they find, once, at
start-up; the README's guarantees section says the same. The same look logs an error when the
server is older than the store can use (Redis 7.0).
"""

from __future__ import annotations

import logging

import redis

from ninv.store._redis import NEEDS_REDIS

__all__ = ["describe_persistence", "log_persistence", "version_problem"]

log = logging.getLogger("ninv.durability")


def describe_persistence(appendonly: str, save: str) -> tuple[bool, str]:
    """(durable, one line) for Redis's `appendonly` and `save` settings."""
    if appendonly.strip().lower() == "yes":
        return True, "Redis persistence: append-only file on; accepted jobs survive a restart"
    if save.strip():
        return False, (
            f"Redis persistence: snapshots only (save {save!r}), no append-only file: a Redis "
            "restart loses the jobs accepted since the last snapshot; set appendonly yes"
        )
    return False, (
        "Redis persistence: none (appendonly no, save ''): a Redis restart loses every "
        "accepted job; set appendonly yes"
    )


def version_problem(version: str) -> str | None:
    """Why a Redis server of `version` cannot hold ninv's jobs, or None when it can."""
    try:
        major = int(version.split(".")[0])
    except ValueError:
        return None  # not a version we can read: let the store's own errors speak
    if major >= 7:
        return None
    return f"Redis {version} is too old: {NEEDS_REDIS}; submissions answer 503 until it is upgraded"


def log_persistence(url: str, *, timeout_s: float = 1.0) -> bool | None:
    """Log one line on how durable accepted jobs are; True/False, or None when unknown.

    Managed Redis services often disable CONFIG; that is logged too, as "could not check".
    """
    client = redis.Redis.from_url(
        url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s, decode_responses=True
    )
    try:
        problem = version_problem(str(client.info("server").get("redis_version", "")))
        if problem is not None:
            log.error("%s", problem)
        appendonly = client.config_get("appendonly").get("appendonly", "")
        save = client.config_get("save").get("save", "")
    except (redis.RedisError, OSError) as exc:
        log.warning("Redis persistence: could not check (%s: %s)", type(exc).__name__, exc)
        return None
    finally:
        client.close()
    durable, line = describe_persistence(str(appendonly), str(save))
    (log.info if durable else log.warning)("%s", line)
    return durable
