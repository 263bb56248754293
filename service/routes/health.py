"""Liveness, readiness and metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from ninv.store import StoreError
from service import examples
from service.auth import check_metrics_access
from service.deps import ResourcesDep
from service.errors import ProblemError
from service.readiness import check_broker, check_store, check_writes
from service.state import Resources
from service.workers import START_WORKER

__all__ = ["router"]

router = APIRouter(tags=["health"])

_metrics_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="MetricsKey",
    description="NINV_METRICS_KEY, when the server sets one.",
)


@router.get(
    "/healthz",
    summary="Liveness",
    responses={200: {"content": {"application/json": {"example": {"status": "ok"}}}}},
)
def healthz() -> dict[str, str]:
    """Always 200 while the process serves."""
    return {"status": "ok"}


def _store_problem(resources: Resources) -> str | None:
    try:
        store = resources.store
    except StoreError as exc:
        return f"job store unavailable: {exc}"
    return check_store(store) or check_writes(resources.settings)


def _broker_problem(resources: Resources) -> str | None:
    try:
        resources.celery  # noqa: B018 - the embedded broker's folders are made with the app
    except OSError as exc:
        return f"broker unavailable: {exc}"
    return check_broker(resources.settings)


@router.get(
    "/readyz",
    summary="Readiness",
    responses={
        200: {
            "content": {
                "application/json": {
                    "example": {"status": "ready", "store": "ok", "broker": "ok", "workers": 1}
                }
            }
        },
        **examples.problems(503),
    },
)
async def readyz(resources: ResourcesDep) -> dict[str, Any]:
    """200 when the job store answers and takes writes and the broker answers (else 503 saying
    which does not), with the number of live workers; with none, `no workers`: jobs would wait."""
    found: dict[str, str | None] = {}

    async def run(name: str, check: Callable[[Resources], str | None]) -> None:
        found[name] = await run_in_threadpool(check, resources)

    async with anyio.create_task_group() as group:
        group.start_soon(run, "store", _store_problem)
        group.start_soon(run, "broker", _broker_problem)
    failures = [why for why in found.values() if why]
    if failures:
        raise ProblemError(
            503,
            "; ".join(failures),
            headers={"Retry-After": "2"},
            checks={name: why or "ok" for name, why in found.items()},
        )
    workers = await run_in_threadpool(resources.store.live_workers)
    ready: dict[str, Any] = {"status": "ready", "store": "ok", "broker": "ok"}
    if not workers:
        detail = f"no worker is running: submitted jobs wait in the queue; {START_WORKER}"
        return {**ready, "status": "no workers", "workers": 0, "detail": detail}
    return {**ready, "workers": len(workers)}


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {"example": "ninv_queue_depth 3.0\n"}}},
        **examples.problems(401, 403),
    },
)
def metrics(
    request: Request,
    resources: ResourcesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_metrics_bearer)],
) -> Response:
    """Requests and latency by route, jobs by status, queue depth and solve durations; with API
    keys set, for NINV_METRICS_KEY or (without one) loopback clients only."""
    check_metrics_access(
        metrics_key=resources.settings.metrics_key,
        keys_configured=not resources.keys.open,
        token=credentials.credentials if credentials else None,
        client_host=request.client.host if request.client else None,
    )
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
