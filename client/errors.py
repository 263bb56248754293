"""The client's typed errors: one class per thing a caller may want to handle differently.

Every error carries the server's RFC 9457 problem detail when there was one (`problem`), the HTTP
status (`status`), and a one-line message (`str(error)`) that the CLI prints as is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from ninv.schemas import Job, Problem, Summary

__all__ = [
    "Conflict",
    "InvalidInput",
    "JobCancelled",
    "JobFailed",
    "MatrixFileError",
    "NinvError",
    "NotConverged",
    "NotFound",
    "PayloadTooLarge",
    "ServerError",
    "ServerUnavailable",
    "Unauthorized",
    "WaitTimeout",
]


class NinvError(Exception):
    """Base class of every error the client raises.

    Args:
        message: one line that says what went wrong.
        status: the HTTP status of the answer, when the server answered.
        problem: the server's problem detail, when it sent one.
    """

    def __init__(
        self, message: str, *, status: int | None = None, problem: Problem | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.problem = problem

    @property
    def detail(self) -> str | None:
        """The problem's `detail` (the server's own words), when there was one."""
        return self.problem.detail if self.problem is not None else None


class Unauthorized(NinvError):
    """401 or 403: the API key is missing or wrong."""


class NotFound(NinvError):
    """404: no such job (or it belongs to another key), or no such endpoint."""


class InvalidInput(NinvError):
    """400, 415 or 422: the server (or the client, before sending) rejected the request."""


class Conflict(NinvError):
    """409: the job is not in a state that allows this (result before it finished, and so on)."""


class PayloadTooLarge(NinvError):
    """413: the matrix is larger than the server accepts."""


class ServerError(NinvError):
    """A 5xx answer, or an answer the client cannot make sense of."""


class ServerUnavailable(ServerError):
    """The server cannot be reached (connection refused, timeout) or answered 502/503/504.

    Raised only after the client's retries ran out.
    """


class WaitTimeout(NinvError, TimeoutError):
    """`wait(..., timeout=...)` ran out of time before the job finished."""

    def __init__(self, job_id: str, timeout: float) -> None:
        super().__init__(f"job {job_id} did not finish within {timeout:g} s")
        self.job_id = job_id
        self.timeout = timeout


class _JobEnded(NinvError):
    """A job ended without a result."""

    def __init__(
        self,
        message: str,
        *,
        job: Job | None = None,
        status: int | None = None,
        problem: Problem | None = None,
    ) -> None:
        super().__init__(message, status=status, problem=problem)
        self.job = job


class JobFailed(_JobEnded):
    """The job failed; `job.error` (when `job` is set) or `detail` says why."""


class JobCancelled(_JobEnded):
    """The job was cancelled before it produced a result."""


class NotConverged(NinvError):
    """The job finished (succeeded) but its residual is not within its tolerance: the inverse
    may be unusable. `inverse` and `summary` hold what it got (`summary.reason` and
    `summary.warnings` say why, and what to do); pass `allow_unconverged=True` to `invert` to
    take such a result without this error."""

    def __init__(self, job_id: str, inverse: NDArray[Any], summary: Summary) -> None:
        why = f" ({summary.warnings[0]})" if summary.warnings else ""
        residual = "unknown" if summary.residual is None else f"{summary.residual:.3g}"
        super().__init__(
            f"job {job_id} finished without reaching its tolerance: {summary.reason}, residual "
            f"{residual} > tol {summary.tol:g}{why}"
            if summary.tol is not None
            else f"job {job_id} finished without converging: {summary.reason}{why}"
        )
        self.job_id = job_id
        self.inverse = inverse
        self.summary = summary


class MatrixFileError(NinvError, ValueError):
    """A matrix file cannot be read or written: the message names the file and the problem."""

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
