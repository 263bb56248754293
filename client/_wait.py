"""The I/O-free half of `wait`: the Server-Sent Events line parser and the `Waiter` state.

The sync and async clients feed a Waiter what the event stream or polling brings; it reports
progress, says when the job is finished, how long to sleep, and when to give up on the stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx
from pydantic import ValidationError

from client._base import (
    DEFAULT_TIMEOUT,
    RETRY_STATUSES,
    BaseClient,
    ProgressCallback,
    RequestSpec,
    error_from_response,
)
from client.errors import ServerError, WaitTimeout
from ninv.schemas import FINISHED, Job, Progress

__all__ = ["STREAM_READ_TIMEOUT", "SSEEvent", "SSEParser", "Waiter"]

#: An SSE stream is idle between ticks; the server sends keepalive comments well within this.
STREAM_READ_TIMEOUT = 60.0


@dataclass(frozen=True)
class SSEEvent:
    """One Server-Sent Event."""

    event: str = "message"
    data: str = ""
    id: str | None = None


class SSEParser:
    """Turns the lines of a `text/event-stream` into events, as the WHATWG spec says.

    Feed it every line (without its line ending); it returns an event at each blank line that ends
    one. `:` lines are comments (keepalives) and are skipped; `last_event_id` persists, for
    resuming with Last-Event-ID.
    """

    def __init__(self) -> None:
        self.last_event_id: str | None = None
        self._event = ""
        self._data: list[str] = []
        self._has_fields = False

    def feed(self, line: str) -> SSEEvent | None:
        """Take one line; return the event it completes, if any."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        else:  # "retry" and unknown fields: nothing for this client to do
            return None
        self._has_fields = True
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._has_fields:
            return None
        event = SSEEvent(
            event=self._event or "message", data="\n".join(self._data), id=self.last_event_id
        )
        self._event, self._data, self._has_fields = "", [], False
        if not event.data and event.event == "message":
            return None
        return event


class Waiter:
    """The state of one `wait`: deadline, progress reported so far, stream or polling.

    The sync and async clients drive it: they feed it SSE events or polled jobs, and it says when
    the job is finished, how long to sleep between polls, and when to stop trying the stream.
    """

    #: Stream failures in a row after which `wait` polls for the rest of the job.
    MAX_STREAM_FAILURES = 3
    POLL_FIRST = 0.25
    POLL_FACTOR = 1.5
    POLL_MAX = 5.0

    def __init__(
        self,
        job_id: str,
        timeout: float | None,
        on_progress: ProgressCallback | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job_id = job_id
        self.timeout = timeout
        self.on_progress = on_progress
        self._clock = clock
        self._deadline = None if timeout is None else clock() + timeout
        self._last_progress: tuple[int, datetime] | None = None
        self._poll_delay = self.POLL_FIRST
        self.parser = SSEParser()
        self.stream_failures = 0

    @property
    def use_stream(self) -> bool:
        """Whether to (re)open the event stream rather than poll."""
        return self.stream_failures < self.MAX_STREAM_FAILURES

    def remaining(self) -> float | None:
        """Seconds left before the deadline (None: no deadline); WaitTimeout once it passed."""
        if self._deadline is None:
            return None
        left = self._deadline - self._clock()
        if left <= 0:
            raise WaitTimeout(self.job_id, self.timeout or 0.0)
        return left

    def stream_timeout(self) -> httpx.Timeout:
        """The timeouts of one stream request: reads end at the deadline at the latest."""
        left = self.remaining()
        read = STREAM_READ_TIMEOUT if left is None else min(left, STREAM_READ_TIMEOUT)
        return httpx.Timeout(DEFAULT_TIMEOUT.connect or 5.0, read=read)

    def stream_request(self, client: BaseClient) -> RequestSpec:
        """The request that opens (or resumes) the event stream."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.parser.last_event_id is not None:
            headers["Last-Event-ID"] = self.parser.last_event_id
        return client.build("GET", f"/jobs/{client.quote(self.job_id)}/events", headers=headers)

    def progress(self, progress: Progress | None) -> None:
        """Report a progress tick to the callback, once per distinct tick."""
        if progress is None or self.on_progress is None:
            return
        key = (progress.iteration, progress.updated_at)
        if key == self._last_progress:
            return
        self._last_progress = key
        self.on_progress(progress)

    def feed_line(self, line: str) -> Job | None:
        """Take one stream line; return the final job when the `end` event arrives."""
        event = self.parser.feed(line)
        if event is None:
            return None
        try:
            if event.event == "progress":
                self.progress(Progress.model_validate_json(event.data))
            elif event.event == "end":
                return Job.model_validate_json(event.data)
        except ValidationError:
            raise ServerError(f"unexpected {event.event!r} event from the server") from None
        # Anything else is a healthy stream: the failure count is about streams in a row.
        self.stream_failures = 0
        return None

    def stream_failed(self) -> None:
        """Count a stream that broke or ended without its `end` event."""
        self.stream_failures += 1

    def stream_unsupported(self) -> None:
        """The server does not offer the stream (wrong status or media type): poll from now on."""
        self.stream_failures = self.MAX_STREAM_FAILURES

    def stream_answer(self, response: httpx.Response) -> bool:
        """Check the answer that opens a stream: True to read it, False to fall back (counted).

        Raises the typed error for 401/403/404 (polling would get the same answer), after the
        caller read the body.
        """
        if response.status_code in (401, 403, 404):
            raise error_from_response(response)
        if response.status_code in RETRY_STATUSES or response.status_code >= 500:
            self.stream_failed()
            return False
        media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if response.status_code != 200 or media_type != "text/event-stream":
            self.stream_unsupported()
            return False
        return True

    def polled(self, job: Job) -> Job | None:
        """Take a polled job; return it when finished, else report its progress."""
        self.progress(job.progress)
        return job if job.status in FINISHED else None

    def poll_delay(self, retry_after: float | None = None) -> float:
        """Seconds to sleep before the next poll: growing backoff, or the server's Retry-After,
        never past the deadline."""
        delay = self._poll_delay
        self._poll_delay = min(self.POLL_MAX, self._poll_delay * self.POLL_FACTOR)
        if retry_after is not None:
            delay = min(max(retry_after, self.POLL_FIRST), self.POLL_MAX)
        left = self.remaining()
        return delay if left is None else min(delay, left)
