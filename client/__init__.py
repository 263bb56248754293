"""The ninv client: `Client` and `AsyncClient` for the ninv REST API, and matrix file formats.

    from client import Client

    with Client("http://127.0.0.1:8000", api_key="...") as ninv:
        inverse = ninv.invert(matrix, method="newton-schulz")

The client imports only `ninv.schemas` from the project, plus httpx, numpy, pydantic, click
and tqdm: it installs and runs without torch, FastAPI or Celery.
"""

from __future__ import annotations

from client._async import AsyncClient
from client._base import (
    DEFAULT_URL,
    JSON_MAX_ENTRIES,
    InverseResult,
    ProgressCallback,
    RetryPolicy,
    SolveKwargs,
)
from client._sync import Client
from client.errors import (
    Conflict,
    InvalidInput,
    JobCancelled,
    JobFailed,
    MatrixFileError,
    NinvError,
    NotConverged,
    NotFound,
    PayloadTooLarge,
    ServerError,
    ServerUnavailable,
    Unauthorized,
    WaitTimeout,
)
from client.formats import read_matrix, write_matrix

__all__ = [
    "DEFAULT_URL",
    "JSON_MAX_ENTRIES",
    "AsyncClient",
    "Client",
    "Conflict",
    "InvalidInput",
    "InverseResult",
    "JobCancelled",
    "JobFailed",
    "MatrixFileError",
    "NinvError",
    "NotConverged",
    "NotFound",
    "PayloadTooLarge",
    "ProgressCallback",
    "RetryPolicy",
    "ServerError",
    "ServerUnavailable",
    "SolveKwargs",
    "Unauthorized",
    "WaitTimeout",
    "read_matrix",
    "write_matrix",
]
