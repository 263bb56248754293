"""Server-Sent Events for a job: each new progress point, then one final event, then the end.

    event: progress            event: end
    id: <iteration>            data: <Job JSON>
    data: <Progress JSON>

A client that reconnects with `Last-Event-ID: <iteration>` gets only later progress. A comment
line keeps idle connections open through proxies.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio

from ninv.jobs import JobRecord
from ninv.schemas import FINISHED
from ninv.store import StoreUnavailable

__all__ = ["format_event", "job_events"]


def format_event(event: str, data: str, event_id: str | None = None) -> str:
    """One SSE message; `data` is a single line of JSON."""
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return f"{head}data: {data}\n\n"


async def job_events(
    fetch: Callable[[], Awaitable[JobRecord | None]],
    *,
    after: int,
    poll_s: float,
    keepalive_s: float,
    disconnected: Callable[[], Awaitable[bool]],
    changed: Callable[[float], Awaitable[bool]] | None = None,
) -> AsyncIterator[str]:
    """Read the job on each change notice (`changed(timeout)` returns when one comes), and at
    least every `poll_s` seconds, and yield SSE messages until it has finished.

    Progress with an iteration <= `after` is skipped (Last-Event-ID). While the store does not
    answer the stream stays open, sending keepalives, and carries on when it is back.
    """
    yield f"retry: {int(max(poll_s, 1.0) * 1000)}\n\n"
    last = after
    quiet_since = time.monotonic()
    while not await disconnected():
        try:
            record = await fetch()
        except StoreUnavailable:
            record = None
            missing = False
        else:
            missing = record is None
        if missing:  # deleted while we watched: nothing more will come
            return
        if record is not None:
            progress = record.progress
            if progress is not None and progress.iteration > last:
                last = progress.iteration
                quiet_since = time.monotonic()
                yield format_event("progress", progress.model_dump_json(), str(last))
            if record.status in FINISHED:
                yield format_event("end", record.view().model_dump_json())
                return
        if time.monotonic() - quiet_since >= keepalive_s:
            quiet_since = time.monotonic()
            yield ": keepalive\n\n"
        if changed is None:
            await anyio.sleep(poll_s)
        else:
            await changed(min(poll_s, keepalive_s))
