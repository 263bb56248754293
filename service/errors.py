"""RFC 9457 problem details: the one shape every error answer takes, and the handlers that make it.

Every error the service sends is `application/problem+json` with `type`, `title`, `status`,
`detail` and `instance`; validation errors add `errors`, a list of `{loc, msg}`, and some problems
add extension members (`job_status`, `job_id`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response

from ninv.store import IdempotencyConflict, JobNotFound, NotFinished, StoreFull, StoreUnavailable
from service.paths import unknown_path

__all__ = [
    "CLIENT_CLOSED",
    "PROBLEM_JSON",
    "ProblemError",
    "install_handlers",
    "problem_response",
    "summarize",
    "validation_errors",
]

log = logging.getLogger("ninv.service")

PROBLEM_JSON = "application/problem+json"
#: The status recorded (metrics, access log) for a request whose client left before its body
#: arrived: nginx's "client closed request". Nobody receives it.
CLIENT_CLOSED = 499
#: Seconds a client should wait before retrying when the store does not answer.
STORE_RETRY_AFTER_S = 2
#: ... and when it refuses writes (full): freeing memory takes an operator or expiring jobs.
STORE_FULL_RETRY_AFTER_S = 30


class ProblemError(Exception):
    """Raise from a handler to answer with a problem: status, detail and optional extensions."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        errors: Sequence[Mapping[str, Any]] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title
        self.headers = dict(headers or {})
        self.errors = list(errors) if errors is not None else None
        self.extensions = extensions


def problem_response(
    request: Request,
    status: int,
    detail: str | None,
    *,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    errors: Sequence[Mapping[str, Any]] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """A problem+json response for this request."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or _phrase(status),
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    if errors is not None:
        body["errors"] = list(errors)
    body.update(extensions)
    return JSONResponse(
        body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_JSON
    )


def validation_errors(
    raw: Sequence[Any], *, prefix: tuple[str | int, ...] = ()
) -> list[dict[str, Any]]:
    """Pydantic/FastAPI error dicts as `{loc, msg}` pairs (no input echoed back)."""
    out: list[dict[str, Any]] = []
    for err in raw:
        loc = [
            *prefix,
            *(str(part) if not isinstance(part, int) else part for part in err.get("loc", ())),
        ]
        out.append({"loc": loc, "msg": str(err.get("msg", "invalid"))})
    return out


def summarize(errors: Sequence[Mapping[str, Any]]) -> str:
    """One line naming the first problem (and how many more there are)."""
    if not errors:
        return "the request is invalid"
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"])
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}" if where else f"{first['msg']}{more}"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(
        request,
        exc.status,
        exc.detail,
        title=exc.title,
        headers=exc.headers,
        errors=exc.errors,
        **exc.extensions,
    )


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else _phrase(exc.status_code)
    if exc.status_code == 404 and detail == _phrase(404):  # no route: say which there are
        detail = unknown_path(request)
    return problem_response(request, exc.status_code, detail, headers=exc.headers)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(exc.errors())
    return problem_response(request, 422, summarize(errors), errors=errors)


async def _on_unavailable(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, StoreFull):
        log.warning("store full on %s %s: %s", request.method, request.url.path, exc)
        return problem_response(
            request,
            503,
            "the job store is full and refuses writes (Redis reached its maxmemory); nothing "
            "was changed; retry later",
            title="Job store full",
            headers={"Retry-After": str(STORE_FULL_RETRY_AFTER_S)},
        )
    log.warning("store unavailable on %s %s: %s", request.method, request.url.path, exc)
    return problem_response(
        request,
        503,
        "the job store does not answer; retry shortly",
        headers={"Retry-After": str(STORE_RETRY_AFTER_S)},
    )


async def _on_idempotency(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, IdempotencyConflict)
    return problem_response(
        request,
        422,
        "this Idempotency-Key was already used with a different request body "
        f"(for job {exc.job_id}); use a new key for a new request",
        title="Idempotency-Key reused",
        job_id=exc.job_id,
    )


async def _on_not_found(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, JobNotFound)
    return problem_response(request, 404, str(exc))


async def _on_not_finished(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NotFinished)
    return problem_response(
        request, 409, f"job {exc.job_id} is {exc.status}", job_status=str(exc.status)
    )


async def _on_disconnect(request: Request, exc: Exception) -> Response:
    # The client's doing, not a server error: no traceback, and a status of its own, which the
    # access log's one line and the request metrics record (service.metrics).
    return Response(status_code=CLIENT_CLOSED)


async def _on_anything(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(request, 500, "an internal error occurred; it has been logged")


def install_handlers(app: FastAPI) -> None:
    """Register the problem+json exception handlers on the app."""
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StoreUnavailable, _on_unavailable)
    app.add_exception_handler(IdempotencyConflict, _on_idempotency)
    app.add_exception_handler(JobNotFound, _on_not_found)
    app.add_exception_handler(NotFinished, _on_not_finished)
    app.add_exception_handler(ClientDisconnect, _on_disconnect)
    app.add_exception_handler(Exception, _on_anything)
