"""The job resource: status, result, history, events, cancel, list and delete."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ninv.jobs import JobRecord
from ninv.schemas import FINISHED, History, Job, JobList, JobStatus, Result
from ninv.store import JobNotFound
from service import examples
from service.deps import JobId, OwnerDep, ResourcesDep, StoreDep
from service.errors import ProblemError
from service.inverse import HeldRead, inverse_values
from service.parsing import NPY
from service.prefer import PreferHeader, applied, hold, parse_wait
from service.sse import job_events
from service.workers import noted

__all__ = ["router"]

router = APIRouter(prefix="/jobs", tags=["jobs"])

_JSON_EXAMPLE = "application/json"


def _example(value: Any) -> dict[str, Any]:
    return {"content": {_JSON_EXAMPLE: {"example": value}}}


@router.get(
    "/{job_id}",
    response_model=Job,
    summary="Get a job",
    responses={
        200: {
            **_example(examples.JOB),
            "headers": {
                "Preference-Applied": {
                    "description": "wait=N: the job finished within `Prefer: wait=N`",
                    "schema": {"type": "string"},
                }
            },
        },
        **examples.problems(401, 404, 422, 503),
    },
)
async def get_job(
    job_id: JobId,
    response: Response,
    owner: OwnerDep,
    resources: ResourcesDep,
    prefer: PreferHeader = None,
) -> Job:
    """A job's status, latest progress, summary when finished and error when failed (and,
    held with `Prefer: wait` until it finished, a small inverse inline)."""
    store = resources.store  # not a dependency of its own: the route is polled often

    read = HeldRead(store, job_id, owner, resources.settings.inline_max_entries)

    async def fetch() -> JobRecord | None:
        return await run_in_threadpool(read)

    wait_s = parse_wait(prefer, resources.settings.max_wait_s)
    if wait_s is None:
        record = await run_in_threadpool(store.get, job_id, owner=owner)
    else:
        record = await hold(
            resources.changes, job_id, fetch, timeout=wait_s, poll_s=resources.settings.poll_s
        )
    if record is None:
        raise JobNotFound(job_id)
    if wait_s is not None and record.status in FINISHED:
        response.headers.update(applied(wait_s))
        return await read.answer(record.view())
    return await run_in_threadpool(noted, record.view(), resources.recent_workers)


def _not_ready(record: JobRecord) -> ProblemError:
    status = record.status
    if status in (JobStatus.queued, JobStatus.running):
        detail = f"job {record.id} is {status}; its result is ready when it has finished"
        return ProblemError(409, detail, headers={"Retry-After": "1"}, job_status=str(status))
    if status == JobStatus.failed:
        detail = f"job {record.id} failed: {record.error or 'no error recorded'}"
    else:
        detail = f"job {record.id} is {status} and has no result"
    return ProblemError(409, detail, job_status=str(status))


def _inverse_json(blob: bytes, record: JobRecord) -> bytes:
    assert record.summary is not None
    summary = record.summary.model_dump(mode="json")
    body = {"inverse": inverse_values(blob), "summary": summary}
    return json.dumps(body, allow_nan=False).encode()


@router.get(
    "/{job_id}/result",
    summary="Get a job's inverse",
    response_class=Response,
    responses={
        200: {
            "model": Result,
            "description": "The inverse and the summary, or the inverse as .npy",
            "content": {
                _JSON_EXAMPLE: {"example": examples.RESULT},
                NPY: {"schema": {"type": "string", "format": "binary"}},
            },
        },
        **examples.problems(401, 404, 409, 422, 503),
    },
)
def get_result(
    job_id: JobId,
    store: StoreDep,
    owner: OwnerDep,
    accept: Annotated[str | None, Header(description=f"{NPY} for the raw inverse")] = None,
) -> Response:
    """The inverse with its summary (JSON), or the raw inverse (.npy) by Accept."""
    record, blob = store.result(job_id, owner=owner)
    if blob is None or record.summary is None:
        raise _not_ready(record)
    if accept and NPY in accept.lower():
        return Response(blob, media_type=NPY)
    return Response(_inverse_json(blob, record), media_type="application/json")


@router.get(
    "/{job_id}/history",
    response_model=History,
    summary="Get a job's loss curve",
    responses={200: _example(examples.HISTORY), **examples.problems(401, 404, 422, 503)},
)
def get_history(job_id: JobId, store: StoreDep, owner: OwnerDep) -> History:
    """The loss curve: a point per check and lr stage change, thinned evenly in log-iteration."""
    return History(points=store.history(job_id, owner=owner))


@router.get(
    "/{job_id}/events",
    summary="Follow a job's progress (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "progress events, then one end event carrying the job",
            "content": {"text/event-stream": {"example": examples.EVENTS}},
        },
        **examples.problems(401, 404, 422, 503),
    },
)
async def get_events(
    job_id: JobId,
    request: Request,
    store: StoreDep,
    owner: OwnerDep,
    resources: ResourcesDep,
    last_event_id: Annotated[
        int | None,
        Header(ge=0, description="resume after this iteration (the id of the last event seen)"),
    ] = None,
) -> StreamingResponse:
    """Stream progress events until the job finishes, then one end event with the job."""
    if await run_in_threadpool(store.get, job_id, owner=owner) is None:
        raise JobNotFound(job_id)
    timing = request.app.state.sse
    changes = resources.changes

    async def fetch() -> JobRecord | None:
        return await run_in_threadpool(store.get, job_id, owner=owner)

    async def stream() -> AsyncIterator[str]:
        # Watched before the stream's first read: a change written after it wakes the stream.
        with changes.watch(job_id) as watch:
            async for message in job_events(
                fetch,
                after=-1 if last_event_id is None else last_event_id,
                poll_s=timing.poll_s,
                keepalive_s=timing.keepalive_s,
                disconnected=request.is_disconnected,
                changed=watch.wait,
            ):
                yield message

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    response_model=Job,
    summary="Cancel a job",
    responses={
        202: _example({**examples.JOB, "cancel_requested": True}),
        **examples.problems(401, 404, 409, 422, 503),
    },
)
def cancel_job(job_id: JobId, store: StoreDep, owner: OwnerDep) -> Job:
    """Cancel a queued job at once, or ask a running one to stop (it keeps its best W)."""
    return store.request_cancel(job_id, owner=owner).view()


@router.get(
    "",
    response_model=JobList,
    summary="List your jobs",
    responses={200: _example(examples.JOB_LIST), **examples.problems(401, 422, 503)},
)
def list_jobs(
    store: StoreDep,
    owner: OwnerDep,
    status: Annotated[JobStatus | None, Query(description="only jobs in this status")] = None,
    cursor: Annotated[
        str | None, Query(max_length=256, description="next_cursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="jobs per page")] = 50,
) -> JobList:
    """The caller's jobs, newest first, a page at a time."""
    try:
        records, next_cursor = store.list(owner, status=status, cursor=cursor, limit=limit)
    except (ValueError, OverflowError):  # a cursor the store did not make
        msg = "invalid cursor; use next_cursor from the previous page"
        raise ProblemError(422, msg, errors=[{"loc": ["query", "cursor"], "msg": msg}]) from None
    return JobList(jobs=[record.view() for record in records], next_cursor=next_cursor)


@router.delete(
    "/{job_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a finished job",
    responses={204: {"description": "Deleted"}, **examples.problems(401, 404, 409, 422, 503)},
)
def delete_job(job_id: JobId, store: StoreDep, owner: OwnerDep) -> Response:
    """Forget a finished job and its data; a queued or running job answers 409."""
    store.delete(job_id, owner=owner)
    return Response(status_code=204)
