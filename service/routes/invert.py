"""POST /invert: accept a matrix to invert."""

from __future__ import annotations

from functools import partial
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Request, Response
from starlette.concurrency import run_in_threadpool

from ninv.jobs import JobRecord
from ninv.schemas import FINISHED, Job
from ninv.settings import Settings
from service import examples
from service.deps import OwnerDep, ResourcesDep
from service.errors import ProblemError
from service.inverse import HeldRead
from service.parsing import (
    NPY,
    Limits,
    ParsedRequest,
    check_length,
    media_type,
    parse_invert,
    request_fingerprint,
)
from service.parsing import read_body as read_limited_body
from service.prefer import PreferHeader, applied, hold, hold_watched, parse_wait
from service.state import Resources
from service.submission import new_record, submit
from service.workers import device_problem, noted

__all__ = ["router"]

router = APIRouter(tags=["jobs"])

#: Bodies up to this size are parsed on the event loop (well under a millisecond); larger ones in
#: a worker thread, a few at a time.
INLINE_PARSE_BYTES = 64 * 1024


@router.post(
    "/invert",
    status_code=202,
    response_model=Job,
    summary="Submit a matrix to invert",
    responses={
        200: {
            "description": "The job has finished within `Prefer: wait=N` "
            "(`Preference-Applied` says so; a small inverse is inline), or an Idempotency-Key "
            "replay: the job made by the first request",
            "headers": {
                "Preference-Applied": {"description": "wait=N", "schema": {"type": "string"}}
            },
        },
        202: {
            "description": "Accepted: the job is queued",
            "headers": {
                "Location": {"description": "/jobs/{id}", "schema": {"type": "string"}},
                "Retry-After": {"description": "seconds", "schema": {"type": "integer"}},
            },
            "content": {"application/json": {"example": {**examples.JOB, "status": "queued"}}},
        },
        **examples.problems(400, 401, 408, 413, 415, 422, 429, 503),
    },
    openapi_extra={
        "requestBody": examples.invert_request_body(),
        "parameters": examples.NPY_QUERY,
    },
)
async def invert(
    request: Request,
    response: Response,
    owner: OwnerDep,
    resources: ResourcesDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            description="makes retries safe: the same key and body return the same job",
        ),
    ] = None,
    prefer: PreferHeader = None,
) -> Job:
    """Queue a matrix (JSON or .npy) for inversion and answer with the job (held up to N s for
    it to finish with `Prefer: wait=N`)."""
    # The store, broker and settings come from `resources`: each dependency FastAPI resolves
    # costs on every request, and this is the hottest route.
    store, settings = resources.store, resources.settings
    parsed = await _read_and_parse(request, settings)
    content_type = request.headers.get("content-type")
    record = new_record(
        parsed,
        owner=owner,
        idempotency_key=idempotency_key,
        # Only an Idempotency-Key's replay compares it: hashing the matrix is not free.
        request_hash=None if idempotency_key is None else request_fingerprint(parsed),
        batch_max_n=settings.batch_max_n,
    )
    where = "query" if media_type(content_type) == NPY else "body"

    async def accept() -> Job:
        job, created = await run_in_threadpool(_accept, parsed, record, where, resources)
        response.headers["Location"] = f"/jobs/{job.id}"
        response.headers["Retry-After"] = "1"
        if not created:
            response.status_code = 200
            response.headers["Idempotent-Replayed"] = "true"
        return job

    wait_s = parse_wait(prefer, settings.max_wait_s)
    if wait_s is None:
        return await accept()
    # The new job is watched before it exists, so no change to it can go unseen: the hold
    # waits for the first notice without reading the job back.
    with resources.changes.watch(record.id) as watch:
        job = await accept()
        read = HeldRead(store, job.id, owner, settings.inline_max_entries).sized(job.n, job.batch)
        fetch = partial(run_in_threadpool, read)
        timing = {"timeout": wait_s, "poll_s": settings.poll_s}
        if job.status in FINISHED:
            found = None
        elif job.id == record.id:
            found = await hold_watched(watch, fetch, read_first=False, **timing)
        else:  # an Idempotency-Key replay: its job may have changed at any time
            found = await hold(resources.changes, job.id, fetch, **timing)
    held = job if found is None else found.view()
    return await _answer_held(held, read, wait_s, response, resources)


async def _answer_held(
    job: Job, read: HeldRead, wait_s: float, response: Response, resources: Resources
) -> Job:
    """`Prefer: wait`: the job once finished (200, Preference-Applied, a small inverse inline),
    or as it is by then."""
    if job.status in FINISHED:
        response.status_code = 200
        response.headers.update(applied(wait_s))
        return await read.answer(job)
    return await run_in_threadpool(noted, job, resources.recent_workers)


async def _read_and_parse(request: Request, settings: Settings) -> ParsedRequest:
    """The request's body, read within NINV_BODY_TIMEOUT_S and its size limit, parsed.

    Small bodies are parsed on the event loop (well under a millisecond). Large ones (or of
    unknown size) are read and parsed at most NINV_MAX_LARGE_PARSES at a time, the parse in a
    worker thread: parsed JSON takes several times its size in memory. A waiting request's body
    stays in its socket meanwhile (uvicorn stops reading a request past 64 KiB it has not taken).
    """
    limits = Limits(
        max_n=settings.max_n, max_batch=settings.max_batch, max_body_bytes=settings.max_body_bytes
    )
    content_type = request.headers.get("content-type")
    limit, hint = limits.max_body_bytes, ""
    if media_type(content_type) != NPY:
        limit = min(limit, settings.max_json_bytes)
        hint = (
            f" for a JSON body (NINV_MAX_JSON_BYTES); send a large matrix as .npy instead "
            f"(Content-Type: {NPY}, 8 bytes an entry)"
        )
    query = request.query_params.multi_items()
    declared = check_length(request, limit, hint=hint)
    if declared is not None and declared <= INLINE_PARSE_BYTES:
        body = await read_limited_body(request, limit, timeout_s=settings.body_timeout_s, hint=hint)
        return parse_invert(body, content_type, query, limits)
    async with _large_parses(request):
        body = await read_limited_body(request, limit, timeout_s=settings.body_timeout_s, hint=hint)
        return await run_in_threadpool(parse_invert, body, content_type, query, limits)


def _large_parses(request: Request) -> anyio.CapacityLimiter:
    """The app's cap on large bodies parsed at once (NINV_MAX_LARGE_PARSES): each can take
    several times its size in memory while parsed, so a burst of them waits its turn."""
    limiter: anyio.CapacityLimiter | None = getattr(request.app.state, "large_parses", None)
    if limiter is None:
        settings = request.app.state.resources.settings
        limiter = request.app.state.large_parses = anyio.CapacityLimiter(settings.max_large_parses)
    return limiter


def _accept(
    parsed: ParsedRequest,
    record: JobRecord,
    where: str,
    resources: Resources,
) -> tuple[Job, bool]:
    """Store and enqueue the job (in the thread pool); the view says if no worker can run it.

    A job for a CUDA device that no live worker has is refused: the first worker to take it
    would fail it.
    """
    if parsed.options.device.startswith("cuda"):
        problem = device_problem(parsed.options.device, resources.recent_workers())
        if problem is not None:
            raise ProblemError(422, problem, errors=[{"loc": [where, "device"], "msg": problem}])
    settings = resources.settings
    job, created = submit(
        resources.store,
        resources.celery,
        record,
        parsed.npy(),
        max_active=settings.max_active_per_key,
        pending_s=settings.lease_s,
    )
    return noted(job.view(), resources.recent_workers), created
