"""`AsyncClient`: the asyncio client, method for method the same as `Client`."""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Self, Unpack

import httpx
from numpy.typing import ArrayLike, NDArray

from client._base import (
    ATTEMPTS,
    DEFAULT_TIMEOUT,
    INVERT_WAIT_S,
    RETRY_STATUSES,
    USER_AGENT,
    BaseClient,
    InverseResult,
    ProgressCallback,
    RequestSpec,
    SolveKwargs,
    build_options,
    error_from_response,
    inline_inverse,
    is_retryable_exception,
    not_converged,
    parse_model,
    parse_result,
    parse_retry_after,
    result_error,
    transport_error,
    was_retried,
)
from client._wait import Waiter
from client.errors import NinvError, ServerError, WaitTimeout
from ninv.schemas import FINISHED, HistoryPoint, Job, JobList, JobStatus, SolveOptions

__all__ = ["AsyncClient"]


class AsyncClient(BaseClient):
    """An asyncio client of the ninv API, with the same methods as `Client` (awaitable).

    Args:
        base_url: the API's root URL; else `http.base_url` when a client is injected, else
            NINV_URL, else http://127.0.0.1:8000.
        api_key: the Bearer key; else NINV_API_KEY.
        http: an `httpx.AsyncClient` to send through (give it
            `httpx.ASGITransport(app=app)` for an in-process app); the caller closes it.
        transport: an httpx transport for a client of our own (e.g. `httpx.MockTransport`, or
            `httpx.ASGITransport`); not with `http`.
        timeout: the request timeout of a client of our own.
        retries, backoff: how connection errors and 502/503/504 are retried.

    Use it as an async context manager, or call `aclose()`.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        http: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        if http is not None and transport is not None:
            raise TypeError("pass either http or transport, not both")
        super().__init__(
            base_url,
            api_key,
            injected_base_url=http.base_url if http is not None else None,
            retries=retries,
            backoff=backoff,
        )
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            transport=transport, timeout=timeout, headers={"User-Agent": USER_AGENT}
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the connection pool (not an injected client's)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- transport ---------------------------------------------------------------------------

    async def _send(self, spec: RequestSpec) -> httpx.Response:
        """Send with retries: connection errors and 502/503/504 (honouring Retry-After)."""
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    spec.method,
                    spec.url,
                    headers=spec.headers,
                    params=spec.params,
                    content=spec.content,
                )
            except httpx.TransportError as exc:
                delay = self.retry.delay(attempt) if is_retryable_exception(exc) else None
                if delay is None:
                    raise transport_error(exc, self.base_url, attempt + 1) from None
            except httpx.HTTPError as exc:
                raise ServerError(f"request to {spec.url} failed: {exc}") from None
            else:
                if response.status_code not in RETRY_STATUSES:
                    response.extensions[ATTEMPTS] = attempt + 1
                    return response
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                delay = self.retry.delay(attempt, retry_after=retry_after)
                if delay is None:
                    response.extensions[ATTEMPTS] = attempt + 1
                    return response
            await asyncio.sleep(delay)
            attempt += 1

    # -- the API -----------------------------------------------------------------------------

    async def submit(
        self,
        matrix: ArrayLike,
        options: SolveOptions | None = None,
        *,
        idempotency_key: str | None = None,
        wait: float | None = None,
        **kwargs: Unpack[SolveKwargs],
    ) -> Job:
        """Submit an inversion job and return it (queued, or finished within `wait`).

        Args:
            matrix: an (n, n) array, or a (b, n, n) batch.
            options: solve options; keyword arguments (method, max_iter, tol, lr_schedule,
                dtype, device, seed, stall_window, aux) override its fields.
            idempotency_key: reuse one to make a resubmission return the same job; by default a
                fresh key per call, reused across this call's retries.
            wait: hold the request up to this many seconds for the job to finish (`Prefer:
                wait`; the server caps it at NINV_MAX_WAIT_S): a small job comes back finished,
                with its inverse inline, in this one request.
        """
        spec = self.submit_request(
            matrix, build_options(options, kwargs), idempotency_key, wait=wait
        )
        return parse_model(await self._send(spec), Job)

    async def get(self, job_id: str) -> Job:
        """The job now: status, latest progress, summary or error."""
        return parse_model(await self._send(self.job_request(job_id)), Job)

    async def wait(
        self,
        job_id: str,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> Job:
        """Block until the job finishes (in any way) and return it.

        Follows the job's event stream, calling `on_progress` with each progress tick; if the
        stream fails it falls back to polling with backoff. Raises WaitTimeout after `timeout`
        seconds (the job keeps running).
        """
        waiter = Waiter(job_id, timeout, on_progress)
        opened = False
        while True:
            response = await self._send(self.job_request(job_id))
            done = waiter.polled(parse_model(response, Job))
            if done is not None:
                return done
            if waiter.use_stream:
                if opened:
                    await asyncio.sleep(waiter.poll_delay())
                opened = True
                done = await self._follow(waiter)
                if done is not None:
                    return done
            else:
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                await asyncio.sleep(waiter.poll_delay(retry_after))

    async def _follow(self, waiter: Waiter) -> Job | None:
        """Read the event stream until the job ends (its Job) or the stream stops (None)."""
        spec = waiter.stream_request(self)
        try:
            async with self._http.stream(
                spec.method, spec.url, headers=spec.headers, timeout=waiter.stream_timeout()
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                if not waiter.stream_answer(response):
                    return None
                async for line in response.aiter_lines():
                    job = waiter.feed_line(line)
                    if job is not None:
                        return job
                    waiter.remaining()
        except httpx.HTTPError:
            waiter.remaining()
        except ServerError:  # a malformed event: the stream cannot be trusted, poll instead
            waiter.stream_unsupported()
            return None
        waiter.stream_failed()
        return None

    async def result(self, job_id: str) -> InverseResult:
        """The inverse and the summary of a finished job, as `InverseResult(inverse, summary)`
        (it unpacks as `inverse, summary = ...`); `summary.converged` says if it is usable.

        Raises Conflict while it runs, JobFailed or JobCancelled when it ended without one.
        """
        inverse, summary = parse_result(await self._send(self.result_request(job_id)))
        if summary is None:
            summary = (await self.get(job_id)).summary
            if summary is None:
                raise ServerError(f"job {job_id} has a result but no summary")
        return InverseResult(inverse, summary)

    async def cancel(self, job_id: str) -> Job:
        """Ask the job to stop: a queued job is cancelled at once, a running one soon after.

        Raises Conflict if the job has already finished.
        """
        response = await self._send(self.cancel_request(job_id))
        if response.status_code == 409 and was_retried(response):
            # An earlier attempt whose answer was lost may have cancelled it: report the job.
            return await self.get(job_id)
        return parse_model(response, Job)

    async def list(
        self, status: JobStatus | str | None = None, *, page_size: int | None = None
    ) -> AsyncIterator[Job]:
        """The caller's jobs, newest first, optionally of one status: walks every page lazily
        (`async for job in client.list()`)."""
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            response = await self._send(self.list_request(status, cursor, page_size))
            page = parse_model(response, JobList)
            for job in page.jobs:
                yield job
            if not page.next_cursor:
                return
            if page.next_cursor in seen:
                raise ServerError("the server sent the same page cursor twice")
            seen.add(page.next_cursor)
            cursor = page.next_cursor

    async def history(self, job_id: str) -> builtins.list[HistoryPoint]:
        """The job's loss curve so far (log-spaced while it runs; once it ends, a point per
        check and lr stage change, thinned evenly in log-iteration)."""
        return self.history_points(await self._send(self.history_request(job_id)))

    async def delete(self, job_id: str) -> None:
        """Forget a finished job and its data. Raises Conflict if it has not finished."""
        response = await self._send(self.delete_request(job_id))
        if response.status_code == 404 and was_retried(response):
            return  # an earlier attempt whose answer was lost deleted it
        if response.status_code >= 400:
            raise error_from_response(response)

    async def invert(
        self,
        matrix: ArrayLike,
        options: SolveOptions | None = None,
        *,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        allow_unconverged: bool = False,
        **kwargs: Unpack[SolveKwargs],
    ) -> NDArray[Any]:
        """Submit, wait and return the inverse in one call.

        Raises NotConverged (carrying `inverse` and `summary`) when the job finished without
        reaching its tolerance, unless `allow_unconverged`; JobFailed or JobCancelled when the
        job ends without a result; WaitTimeout after `timeout` seconds.
        """
        # Prefer: wait: a small job has finished when the submission answers, its inverse inline.
        start = time.monotonic()
        # With on_progress, hold only briefly: a long job's progress comes from its events.
        wait = INVERT_WAIT_S if on_progress is None else 1.0
        wait = wait if timeout is None else min(wait, timeout)
        spec = self.submit_request(matrix, build_options(options, kwargs), wait=wait)
        job = parse_model(await self._send(spec), Job)
        if job.status not in FINISHED:
            left = None if timeout is None else max(0.0, timeout - (time.monotonic() - start))
            try:
                job = await self.wait(job.id, timeout=left, on_progress=on_progress)
            except WaitTimeout:
                raise WaitTimeout(job.id, timeout or 0.0) from None  # the whole wait's length
        error: NinvError | None = result_error(job)
        if error is not None:
            raise error
        inverse, summary = inline_inverse(job), job.summary
        if inverse is None:
            # The inverse only, with the summary the finished job already carries: an .npy
            # answer lacks it, and asking `result` would cost another request.
            inverse, fetched = parse_result(await self._send(self.result_request(job.id)))
            summary = fetched or summary
        if summary is None:
            raise ServerError(f"job {job.id} has a result but no summary")
        result = InverseResult(inverse, summary)
        unusable = None if allow_unconverged else not_converged(job.id, result)
        if unusable is not None:
            raise unusable
        return inverse
