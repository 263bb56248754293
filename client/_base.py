"""Everything the clients do that involves no I/O (but waiting, which is in `_wait`).

`Client` and `AsyncClient` only send what this module builds and hand what comes back to it: URL
and request building (JSON or `.npy` bodies), answer -> model, problem+json -> typed error, and
the retry policy. All of it is tested without a network.
"""

from __future__ import annotations

import json
import math
import os
import urllib.parse
import uuid
from collections.abc import Callable, Mapping, Sequence, Sized
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple, TypedDict, TypeVar

import httpx
import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ValidationError

from client.errors import (
    Conflict,
    InvalidInput,
    JobCancelled,
    JobFailed,
    NinvError,
    NotConverged,
    NotFound,
    PayloadTooLarge,
    ServerError,
    ServerUnavailable,
    Unauthorized,
)
from ninv.npy import from_npy, to_npy
from ninv.schemas import (
    DType,
    History,
    HistoryPoint,
    Job,
    JobStatus,
    Method,
    Problem,
    Progress,
    Result,
    SolveOptions,
    Summary,
)

__all__ = [
    "ATTEMPTS",
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "JSON_MAX_ENTRIES",
    "NPY_MEDIA_TYPE",
    "RETRY_STATUSES",
    "USER_AGENT",
    "BaseClient",
    "InverseResult",
    "ProgressCallback",
    "RequestSpec",
    "RetryPolicy",
    "SolveKwargs",
    "build_options",
    "decode_npy",
    "encode_npy",
    "error_from_response",
    "inline_inverse",
    "is_retryable_exception",
    "not_converged",
    "parse_model",
    "parse_result",
    "parse_retry_after",
    "result_error",
    "transport_error",
    "was_retried",
]

#: Where the client looks when neither an argument nor NINV_URL says otherwise.
DEFAULT_URL = "http://127.0.0.1:8000"
#: Matrices with up to this many entries (8x8) travel as JSON: readable in logs, and free at that
#: size. Larger ones travel as `.npy` bytes: exact, compact and fast to parse.
JSON_MAX_ENTRIES = 64
NPY_MEDIA_TYPE = "application/x-npy"
#: Connect fast, but give a large upload or a busy server time to answer.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
#: How long `invert` asks the server to hold its submission for the job to finish
#: (`Prefer: wait`): a small job then takes one request, its answer carrying the inverse inline
#: (up to the server's NINV_INLINE_MAX_ENTRIES; a larger one costs a result request). Well under
#: the read timeout; a longer job is followed by its event stream after that.
INVERT_WAIT_S = 10.0
USER_AGENT = "ninv-client"

ProgressCallback = Callable[[Progress], object]
ModelT = TypeVar("ModelT", bound=BaseModel)


class InverseResult(NamedTuple):
    """A finished job's inverse with its summary; unpacks as `inverse, summary = ...`.

    `summary.converged` says whether the inverse is usable (its residual is within `tol`);
    `summary.reason` and `summary.warnings` say why not, and what to do.
    """

    inverse: NDArray[Any]
    summary: Summary


class SolveKwargs(TypedDict, total=False):
    """The solve options `submit` and `invert` take as keyword arguments (see SolveOptions)."""

    method: Method
    max_iter: int
    tol: float
    lr_schedule: Sequence[tuple[int, float]]
    dtype: DType
    device: str
    seed: int
    stall_window: int
    aux: bool


def build_options(options: SolveOptions | None, kwargs: Mapping[str, Any]) -> SolveOptions:
    """Merge an optional SolveOptions with keyword overrides and validate them locally.

    Only the fields the caller set are kept as set, so the server applies its own defaults to the
    rest. Raises InvalidInput (before anything is sent) for an unknown or out-of-range option.
    """
    fields: dict[str, Any] = {}
    if options is not None:
        fields.update(options.model_dump(exclude_unset=True))
    fields.update({k: v for k, v in kwargs.items() if v is not None})
    if fields.get("lr_schedule") is not None:
        fields["lr_schedule"] = [tuple(stage) for stage in fields["lr_schedule"]]
    try:
        return SolveOptions(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "options"
        raise InvalidInput(f"invalid option {where}: {first['msg']}") from None


def encode_npy(array: NDArray[Any]) -> bytes:
    """The `.npy` bytes of an array (never pickled)."""
    return to_npy(array)


def decode_npy(data: bytes) -> NDArray[Any]:
    """An array from `.npy` bytes; raises ServerError when they are not a plain numeric `.npy`."""
    try:
        return from_npy(data)
    except (ValueError, OSError, EOFError) as exc:
        raise ServerError(f"the server sent an unreadable .npy result: {exc}") from None


def _ragged(value: object, name: str = "matrix") -> str | None:
    """Where nested lists stop being rectangular: `matrix[2] has 3 entries, matrix[0] has 2`."""
    if not isinstance(value, list | tuple) or not value:
        return None

    def kind(item: object) -> str:
        return "a list" if isinstance(item, list | tuple) else "a number"

    def entries(row: Sized) -> str:
        return f"{len(row)} {'entry' if len(row) == 1 else 'entries'}"

    first = value[0]
    for i, item in enumerate(value):
        if kind(item) != kind(first):
            return f"{name}[{i}] is {kind(item)}, {name}[0] is {kind(first)}"
        if isinstance(item, list | tuple) and len(item) != len(first):
            return f"{name}[{i}] has {entries(item)}, {name}[0] has {entries(first)}"
    return next(
        (where for i, item in enumerate(value) if (where := _ragged(item, f"{name}[{i}]"))), None
    )


def _as_matrix(matrix: ArrayLike) -> NDArray[Any]:
    """The matrix as a numeric array, or InvalidInput before anything is sent."""
    try:
        array = np.asarray(matrix)
    except (ValueError, TypeError) as exc:
        where = _ragged(matrix)
        if where is not None:  # numpy's own message is about "inhomogeneous shape"
            raise InvalidInput(f"the matrix is ragged: {where}") from None
        raise InvalidInput(f"the matrix is not a rectangular array of numbers: {exc}") from None
    if array.dtype.kind not in "biuf":
        what = {"U": "text", "S": "bytes", "O": "Python objects", "c": "complex numbers"}
        shown = what.get(array.dtype.kind, f"{array.dtype} values")
        raise InvalidInput(f"the matrix must hold real numbers, not {shown}")
    if array.ndim not in (2, 3):
        raise InvalidInput(f"the matrix must be 2-D (n, n) or a 3-D batch, not {array.ndim}-D")
    return array


def _option_params(options: SolveOptions) -> dict[str, str]:
    """The options as query parameters, for an `.npy` body."""
    params: dict[str, str] = {}
    for name, value in options.model_dump(mode="json", exclude_unset=True).items():
        if value is None:
            continue
        if isinstance(value, bool):
            params[name] = "true" if value else "false"
        elif isinstance(value, list):
            params[name] = json.dumps(value, separators=(",", ":"))
        else:
            params[name] = str(value)
    return params


@dataclass(frozen=True)
class RequestSpec:
    """One HTTP request, built without I/O: what the sync and async clients send."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), else None."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


#: Answers worth another try: the server or a proxy in front of it is (briefly) unavailable.
RETRY_STATUSES = frozenset({502, 503, 504})


def is_retryable_exception(exc: Exception) -> bool:
    """Connection refused or reset, timeouts, a dropped connection: the request may be retried."""
    return isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff that honour the server's Retry-After.

    Args:
        retries: how many times a request is retried after the first attempt.
        backoff: the first delay in seconds; each later one doubles, up to `max_backoff`.
        max_retry_after: a Retry-After above this is capped (a server asking for an hour is
            better reported than waited for).
    """

    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 10.0
    max_retry_after: float = 60.0

    def delay(self, attempt: int, *, retry_after: float | None = None) -> float | None:
        """Seconds to sleep before retry number `attempt + 1` (attempt counts from 0), or None
        when the retries are spent."""
        if attempt >= self.retries:
            return None
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        return float(min(self.max_backoff, self.backoff * 2**attempt))


def _problem_from(response: httpx.Response) -> Problem:
    """The problem detail of an error answer, or one made from the status when there is none."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        if "title" not in body:
            body = {"title": response.reason_phrase or "error", **body}
        body.setdefault("status", response.status_code)
        try:
            return Problem.model_validate(body)
        except ValidationError:
            pass
    text = response.text.strip().splitlines()[0][:200] if response.text.strip() else None
    return Problem(
        title=response.reason_phrase or "error", status=response.status_code, detail=text
    )


def _problem_message(problem: Problem) -> str:
    """One line from a problem detail: the detail, and the first field error when listed."""
    message = problem.detail or problem.title
    errors = (problem.model_extra or {}).get("errors")
    if not problem.detail and isinstance(errors, list) and errors:
        first = errors[0]
        if isinstance(first, Mapping):
            where = first.get("loc") or first.get("pointer") or first.get("field")
            if isinstance(where, list):
                where = ".".join(str(part) for part in where)
            what = first.get("msg") or first.get("detail") or first.get("message")
            if what:
                message = f"{message}: {where}: {what}" if where else f"{message}: {what}"
    return " ".join(str(message).split())


def error_from_response(response: httpx.Response, *, result: bool = False) -> NinvError:
    """The typed error for an error answer (status >= 400), carrying its problem detail.

    With `result` (the answer to GET /jobs/{id}/result), a 409 for a failed or cancelled job is
    JobFailed or JobCancelled: that job will never have a result. Elsewhere a 409 is a Conflict.
    """
    problem = _problem_from(response)
    status = response.status_code
    message = _problem_message(problem)
    kwargs: dict[str, Any] = {"status": status, "problem": problem}
    if status in (401, 403):
        return Unauthorized(f"unauthorized: {message}", **kwargs)
    if status == 404:
        return NotFound(f"not found: {message}", **kwargs)
    if status == 409:
        job_status = (problem.model_extra or {}).get("job_status") if result else None
        if job_status == JobStatus.failed:
            return JobFailed(f"job failed: {message}", **kwargs)
        if job_status == JobStatus.cancelled:
            return JobCancelled(f"job cancelled: {message}", **kwargs)
        return Conflict(f"conflict: {message}", **kwargs)
    if status == 413:
        return PayloadTooLarge(f"too large: {message}", **kwargs)
    if status in (400, 415, 422):
        return InvalidInput(f"invalid input: {message}", **kwargs)
    if status in RETRY_STATUSES:
        return ServerUnavailable(f"server unavailable ({status}): {message}", **kwargs)
    if status >= 500:
        return ServerError(f"server error ({status}): {message}", **kwargs)
    return NinvError(f"request failed ({status}): {message}", **kwargs)


def transport_error(exc: Exception, url: str, attempts: int) -> NinvError:
    """The error for a request that never got an answer."""
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return InvalidInput(f"bad server URL {url}: {reason}")
    tries = f" (after {attempts} attempts)" if attempts > 1 else ""
    return ServerUnavailable(f"cannot reach ninv at {url}: {reason}{tries}")


#: Where `_send` notes how many attempts an answer took (in httpx's per-response extensions).
ATTEMPTS = "ninv.attempts"


def was_retried(response: httpx.Response) -> bool:
    """True when the answer came on a retry, so an earlier attempt may already have acted."""
    attempts = response.extensions.get(ATTEMPTS, 1)
    return isinstance(attempts, int) and attempts > 1


def parse_model(response: httpx.Response, model: type[ModelT]) -> ModelT:
    """The answer's JSON body as `model`, or the typed error for an error answer."""
    if response.status_code >= 400:
        raise error_from_response(response)
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise ServerError(
            f"unexpected answer from {response.request.url.path}: not a {model.__name__} "
            f"({exc.error_count()} errors)"
        ) from None


def parse_result(response: httpx.Response) -> tuple[NDArray[Any], Summary | None]:
    """A result answer: the inverse, and the summary when the body carries it (JSON form)."""
    if response.status_code >= 400:
        raise error_from_response(response, result=True)
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == NPY_MEDIA_TYPE:
        return decode_npy(response.content), None
    result = parse_model(response, Result)
    return np.asarray(result.inverse, dtype=np.float64), result.summary


def inline_inverse(job: Job) -> NDArray[Any] | None:
    """The inverse a `Prefer: wait` answer carried inline (a null entry as NaN); None when it
    carried none, and the result must be fetched. It takes the solve's dtype, as the `.npy`
    result has it: JSON carries each float32 entry exactly, so the array is the same."""
    if job.inverse is None or job.summary is None:
        return None
    return np.asarray(job.inverse, dtype=job.summary.dtype)


def result_error(job: Job) -> NinvError | None:
    """JobFailed or JobCancelled for a job that ended without a result, else None."""
    if job.status == JobStatus.failed:
        return JobFailed(f"job {job.id} failed: {job.error or 'no reason given'}", job=job)
    if job.status == JobStatus.cancelled:
        return JobCancelled(f"job {job.id} was cancelled", job=job)
    return None


def not_converged(job_id: str, result: InverseResult) -> NotConverged | None:
    """NotConverged for a result whose residual is not within its tolerance, else None."""
    if result.summary.converged:
        return None
    return NotConverged(job_id, result.inverse, result.summary)


class BaseClient:
    """Configuration and request building shared by Client and AsyncClient (no I/O).

    Args:
        base_url: the API's root URL; else the injected client's base_url, else NINV_URL, else
            http://127.0.0.1:8000.
        api_key: sent as `Authorization: Bearer <key>`; else NINV_API_KEY; else none.
        retries, backoff: the retry policy for connection errors and 502/503/504 answers.
    """

    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        *,
        injected_base_url: httpx.URL | None = None,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        if base_url is None and injected_base_url is not None and str(injected_base_url):
            base_url = str(injected_base_url)
        self.base_url = (base_url or os.environ.get("NINV_URL") or DEFAULT_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("NINV_API_KEY") or None
        self.retry = RetryPolicy(retries=max(0, retries), backoff=backoff)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    @staticmethod
    def quote(job_id: str) -> str:
        """A job id as one path segment (an id with a slash must not reach another route)."""
        return urllib.parse.quote(job_id, safe="")

    def build(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> RequestSpec:
        """A request to `path` under the base URL, with the auth header."""
        all_headers = {"Accept": "application/json"}
        if self.api_key:
            all_headers["Authorization"] = f"Bearer {self.api_key}"
        all_headers.update(headers or {})
        return RequestSpec(
            method=method,
            url=self.base_url + path,
            headers=all_headers,
            params=dict(params or {}),
            content=content,
        )

    def submit_request(
        self,
        matrix: ArrayLike,
        options: SolveOptions,
        idempotency_key: str | None = None,
        *,
        wait: float | None = None,
    ) -> RequestSpec:
        """POST /invert: JSON up to JSON_MAX_ENTRIES entries (and finite), `.npy` above; with
        `wait`, `Prefer: wait` asks the server to answer once the job has finished (up to that
        many seconds)."""
        array = _as_matrix(matrix)
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        if wait is not None and wait > 0:
            headers["Prefer"] = f"wait={wait:g}"
        if array.size <= JSON_MAX_ENTRIES:
            body = {"matrix": array.tolist(), **options.model_dump(mode="json", exclude_unset=True)}
            try:
                content = json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
            except ValueError:
                pass  # NaN or infinity: JSON cannot carry it, .npy can (the server rejects it)
            else:
                headers["Content-Type"] = "application/json"
                return self.build("POST", "/invert", headers=headers, content=content)
        headers["Content-Type"] = NPY_MEDIA_TYPE
        return self.build(
            "POST",
            "/invert",
            headers=headers,
            params=_option_params(options),
            content=encode_npy(array),
        )

    def job_request(self, job_id: str) -> RequestSpec:
        """GET /jobs/{id}."""
        return self.build("GET", f"/jobs/{self.quote(job_id)}")

    def result_request(self, job_id: str) -> RequestSpec:
        """GET /jobs/{id}/result, preferring `.npy`."""
        accept = f"{NPY_MEDIA_TYPE}, application/json;q=0.5, application/problem+json;q=0.5"
        return self.build("GET", f"/jobs/{self.quote(job_id)}/result", headers={"Accept": accept})

    def history_request(self, job_id: str) -> RequestSpec:
        """GET /jobs/{id}/history."""
        return self.build("GET", f"/jobs/{self.quote(job_id)}/history")

    def cancel_request(self, job_id: str) -> RequestSpec:
        """POST /jobs/{id}/cancel."""
        return self.build("POST", f"/jobs/{self.quote(job_id)}/cancel")

    def delete_request(self, job_id: str) -> RequestSpec:
        """DELETE /jobs/{id}."""
        return self.build("DELETE", f"/jobs/{self.quote(job_id)}")

    def list_request(
        self, status: JobStatus | str | None, cursor: str | None, limit: int | None
    ) -> RequestSpec:
        """GET /jobs, one page."""
        params: dict[str, str] = {}
        if status is not None:
            try:
                params["status"] = JobStatus(status).value
            except ValueError:
                choices = ", ".join(s.value for s in JobStatus)
                raise InvalidInput(f"unknown status {status!r}; one of {choices}") from None
        if cursor is not None:
            params["cursor"] = cursor
        if limit is not None:
            params["limit"] = str(limit)
        return self.build("GET", "/jobs", params=params)

    @staticmethod
    def history_points(response: httpx.Response) -> list[HistoryPoint]:
        """The points of a history answer."""
        return parse_model(response, History).points
