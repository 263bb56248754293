"""`Prefer: wait=N` (RFC 7240): hold a request up to N seconds for its job to finish.

A small job then takes one request, with no polling: the answer carries the finished job with
its inverse inline (service/inverse.py; up to NINV_INLINE_MAX_ENTRIES entries, a larger one is
fetched from GET /jobs/{id}/result). The hold wakes on the store's change notice
(ninv/notify.py) and re-reads the job, and re-reads it every NINV_POLL_S anyway in case a
notice is lost.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Header

from ninv.jobs import JobRecord
from ninv.notify import ChangeFeed, Watch
from ninv.schemas import FINISHED

__all__ = ["PREFER_HEADER", "PreferHeader", "applied", "hold", "hold_watched", "parse_wait"]

PREFER_HEADER = "Preference-Applied"

PreferHeader = Annotated[
    str | None,
    Header(
        description="`wait=N` (RFC 7240): hold the answer up to N seconds (at most "
        "NINV_MAX_WAIT_S) and answer 200 with the finished job if it ends in time "
        "(`Preference-Applied: wait=N`), its inverse inline if it has at most "
        "NINV_INLINE_MAX_ENTRIES entries; else the answer is as without it",
        examples=["wait=10"],
    ),
]


def parse_wait(prefer: str | None, cap: float) -> float | None:
    """The seconds a `Prefer` header asks to wait, capped; None if it asks for no wait.

    A preference the server does not understand, or a malformed `wait`, is ignored, as RFC
    7240 asks (it is a preference, not a demand).
    """
    if not prefer or cap <= 0:
        return None
    for preference in prefer.split(","):
        name, _, value = preference.split(";", 1)[0].partition("=")
        if name.strip().lower() != "wait":
            continue
        try:
            seconds = float(value.strip().strip('"'))
        except ValueError:
            return None
        if not seconds >= 0 or seconds == float("inf"):  # NaN, negative, infinite
            return None
        return min(seconds, cap) if seconds > 0 else None
    return None


def applied(seconds: float) -> dict[str, str]:
    """The header that says the wait was honoured."""
    shown = int(seconds) if float(seconds).is_integer() else seconds
    return {PREFER_HEADER: f"wait={shown}"}


async def hold(
    changes: ChangeFeed,
    job_id: str,
    fetch: Callable[[], Awaitable[JobRecord | None]],
    *,
    timeout: float,
    poll_s: float,
) -> JobRecord | None:
    """Read the job until it has finished or `timeout` seconds passed; its last state.

    The job is watched before the first read, so an end written after that read wakes us.
    None if the job is gone.
    """
    with changes.watch(job_id) as watch:
        return await hold_watched(watch, fetch, timeout=timeout, poll_s=poll_s)


async def hold_watched(
    watch: Watch,
    fetch: Callable[[], Awaitable[JobRecord | None]],
    *,
    timeout: float,
    poll_s: float,
    read_first: bool = True,
) -> JobRecord | None:
    """`hold` with a watch made by the caller. `read_first=False` when the watch was made before
    the job existed (a new submission): nothing can have changed unseen, so the first read waits
    for a notice. Then None means it timed out without reading."""
    deadline = time.monotonic() + timeout
    record = None
    while True:
        if read_first:
            record = await fetch()
            if record is None or record.status in FINISHED:
                return record
        read_first = True
        left = deadline - time.monotonic()
        if left <= 0:
            return record
        await watch.wait(min(left, poll_s))
