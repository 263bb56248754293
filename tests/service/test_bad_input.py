"""Every bad request gets a 4xx problem+json saying what is wrong and where; the API serves on."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from ninv.settings import Settings
from ninv.store import JobStore
from tests.fake_worker import FakeWorker

pytestmark = pytest.mark.anyio

MAX_N = 8
MAX_BATCH = 4
MAX_BODY = 16 * 1024
NPY = {"Content-Type": "application/x-npy"}
JSON = {"Content-Type": "application/json"}
UNKNOWN_ID = "0" * 32


def raw(text: str) -> bytes:
    return text.encode()


def npy_bytes(array: np.ndarray[Any, Any]) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def eye_json(n: int) -> dict[str, Any]:
    return {"matrix": np.eye(n).tolist()}


@dataclass
class Case:
    """One bad request; `{queued}` / `{succeeded}` in the path name a job in that state."""

    id: str
    status: int
    detail: str  # a substring the problem's detail must contain (case-insensitive)
    method: str = "POST"
    path: str = "/invert"
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


CASES = [
    # -- matrix shape and values (JSON) ---------------------------------------------------------
    Case(
        "ragged",
        422,
        "row 2 has 2 entries, expected 3",
        json={"matrix": [[1, 2, 3], [4, 5, 6], [7, 8]]},
    ),
    Case("non-square", 422, "2x3", json={"matrix": [[1, 2, 3], [4, 5, 6]]}),
    Case("0x0", 422, "0x0", json={"matrix": []}),
    Case("1x0", 422, "1x0", json={"matrix": [[]]}),
    Case("nan-literal", 422, "NaN", content=raw('{"matrix": [[1, NaN], [0, 1]]}'), headers=JSON),
    Case(
        "infinity-literal", 422, "Infinity", content=raw('{"matrix": [[Infinity]]}'), headers=JSON
    ),
    Case("neg-infinity", 422, "-Infinity", content=raw('{"matrix": [[-Infinity]]}'), headers=JSON),
    Case(
        "float-overflow",
        422,
        "matrix[1][0] overflows float64",
        content=raw('{"matrix": [[1, 2], [1e999, 3]]}'),
        headers=JSON,
    ),
    Case(
        "int-overflow",
        422,
        "matrix[0][0] overflows float64",
        content=raw('{"matrix": [[1' + "0" * 400 + "]]}"),
        headers=JSON,
    ),
    Case("string-entry", 422, "matrix[0][1] is a string", json={"matrix": [[1, "2"], [3, 4]]}),
    Case("null-entry", 422, "matrix[1][0] is null", json={"matrix": [[1, 2], [None, 4]]}),
    Case("bool-entry", 422, "matrix[0][0] is a boolean", json={"matrix": [[True, 0], [0, 1]]}),
    Case("row-not-array", 422, "matrix[1] is a number", json={"matrix": [[1, 2], 3]}),
    Case("matrix-not-array", 422, "matrix must be an array", json={"matrix": "eye"}),
    Case("nesting-4d", 422, "nesting too deep", json={"matrix": [[[[1.0]]]]}),
    Case(
        "nesting-very-deep",
        422,
        "nesting too deep",
        content=raw('{"matrix": ' + "[" * 5000 + "]" * 5000 + "}"),
        headers=JSON,
    ),
    Case(
        "batch-mixed-sizes",
        422,
        "matrix[1] is 1x1 but matrix[0] is 2x2",
        json={"matrix": [[[1, 0], [0, 1]], [[1]]]},
    ),
    Case("n-over-limit", 413, f"limit is n <= {MAX_N}", json=eye_json(MAX_N + 1)),
    Case(
        "batch-over-limit",
        413,
        f"limit is {MAX_BATCH}",
        json={"matrix": [[[1.0]]] * (MAX_BATCH + 1)},
    ),
    Case(
        "body-over-limit",
        413,
        f"limit is {MAX_BODY} bytes",
        content=b"{" + b" " * MAX_BODY + b"}",
        headers=JSON,
    ),
    # -- the body as a whole ----------------------------------------------------------------------
    Case(
        "invalid-json",
        422,
        "invalid JSON at line 1",
        content=raw('{"matrix": [[1, 2]'),
        headers=JSON,
    ),
    Case("json-not-object", 422, "must be a JSON object", json=[[1, 0], [0, 1]]),
    Case("missing-matrix", 422, "'matrix' is required", json={"method": "adam"}),
    Case(
        "wrong-content-type",
        415,
        "text/plain",
        content=b"[[1]]",
        headers={"Content-Type": "text/plain"},
    ),
    Case("missing-content-type", 415, "missing", content=b'{"matrix": [[1]]}'),
    Case("query-with-json", 422, "only for .npy", json=eye_json(2), params={"method": "cg"}),
    # -- .npy bodies ------------------------------------------------------------------------------
    Case("npy-truncated", 422, "truncated", content=npy_bytes(np.eye(4))[:-9], headers=NPY),
    Case(
        "npy-trailing",
        422,
        "longer than its header",
        content=npy_bytes(np.eye(2)) + b"xx",
        headers=NPY,
    ),
    Case("npy-invalid", 422, "not a valid .npy", content=b"definitely not numpy", headers=NPY),
    Case("npy-empty-body", 422, "not a valid .npy", content=b"", headers=NPY),
    Case(
        "npy-object-dtype",
        422,
        "object",
        content=npy_bytes(np.array([[1, "a"], [None, 2]], dtype=object)),
        headers=NPY,
    ),
    Case(
        "npy-complex",
        422,
        "complex",
        content=npy_bytes(np.eye(2, dtype=np.complex128)),
        headers=NPY,
    ),
    Case("npy-bool", 422, "boolean", content=npy_bytes(np.eye(2, dtype=bool)), headers=NPY),
    Case(
        "npy-strings",
        422,
        "string",
        content=npy_bytes(np.array([["a", "b"], ["c", "d"]])),
        headers=NPY,
    ),
    Case("npy-1d", 422, "must be n x n", content=npy_bytes(np.ones(4)), headers=NPY),
    Case("npy-non-square", 422, "must be square", content=npy_bytes(np.ones((2, 3))), headers=NPY),
    Case(
        "npy-nan",
        422,
        "matrix[1][0] is not finite",
        content=npy_bytes(np.array([[1.0, 0.0], [np.nan, 1.0]])),
        headers=NPY,
    ),
    Case(
        "npy-n-over-limit",
        413,
        f"limit is n <= {MAX_N}",
        content=npy_bytes(np.eye(MAX_N + 1)),
        headers=NPY,
    ),
    Case(
        "npy-unknown-query",
        422,
        "unknown query parameter 'foo'",
        content=npy_bytes(np.eye(2)),
        headers=NPY,
        params={"foo": "1"},
    ),
    Case(
        "npy-bad-lr-schedule",
        422,
        "lr_schedule must be a JSON array",
        content=npy_bytes(np.eye(2)),
        headers=NPY,
        params={"lr_schedule": "[[0, 0.1"},
    ),
    Case(
        "npy-bad-max-iter",
        422,
        "query.max_iter",
        content=npy_bytes(np.eye(2)),
        headers=NPY,
        params={"max_iter": "lots"},
    ),
    # -- options ----------------------------------------------------------------------------------
    Case("unknown-method", 422, "body.method", json={**eye_json(2), "method": "magic"}),
    Case("unknown-dtype", 422, "body.dtype", json={**eye_json(2), "dtype": "float8"}),
    Case("unknown-device", 422, "body.device", json={**eye_json(2), "device": "tpu"}),
    Case("negative-max-iter", 422, "body.max_iter", json={**eye_json(2), "max_iter": -5}),
    Case("absurd-max-iter", 422, "body.max_iter", json={**eye_json(2), "max_iter": 10**12}),
    Case("negative-tol", 422, "body.tol", json={**eye_json(2), "tol": -1e-6}),
    Case(
        "negative-stall-window",
        422,
        "body.stall_window",
        json={**eye_json(2), "stall_window": -1},
    ),
    Case("absurd-tol", 422, "body.tol", json={**eye_json(2), "tol": 5.0}),
    Case(
        "lr-schedule-not-from-0",
        422,
        "iteration 0",
        json={**eye_json(2), "lr_schedule": [[10, 0.1]]},
    ),
    Case(
        "lr-schedule-unordered",
        422,
        "strictly increase",
        json={**eye_json(2), "lr_schedule": [[0, 0.1], [0, 0.2]]},
    ),
    Case("lr-schedule-shape", 422, "body.lr_schedule", json={**eye_json(2), "lr_schedule": [[0]]}),
    Case(
        "lr-schedule-negative-lr",
        422,
        "body.lr_schedule",
        json={**eye_json(2), "lr_schedule": [[0, -0.1]]},
    ),
    Case("unknown-field", 422, "body.learning_rate", json={**eye_json(2), "learning_rate": 0.1}),
    Case(
        "long-idempotency-key",
        422,
        "idempotency-key",
        json=eye_json(2),
        headers={"Idempotency-Key": "k" * 300},
    ),
    # -- the job resource -------------------------------------------------------------------------
    Case("unknown-job", 404, f"no job {UNKNOWN_ID}", method="GET", path=f"/jobs/{UNKNOWN_ID}"),
    Case("malformed-job-id", 422, "job_id", method="GET", path="/jobs/not-a-job"),
    Case("uppercase-job-id", 422, "job_id", method="GET", path="/jobs/" + "A" * 32),
    Case("malformed-id-result", 422, "job_id", method="GET", path="/jobs/123/result"),
    Case("malformed-id-cancel", 422, "job_id", method="POST", path="/jobs/123/cancel"),
    Case("malformed-id-delete", 422, "job_id", method="DELETE", path="/jobs/123"),
    Case("unknown-job-events", 404, "no job", method="GET", path=f"/jobs/{UNKNOWN_ID}/events"),
    Case("result-before-finish", 409, "is queued", method="GET", path="/jobs/{queued}/result"),
    Case("history-unknown-job", 404, "no job", method="GET", path=f"/jobs/{UNKNOWN_ID}/history"),
    Case("cancel-finished", 409, "is succeeded", path="/jobs/{succeeded}/cancel"),
    Case("delete-unfinished", 409, "is queued", method="DELETE", path="/jobs/{queued}"),
    Case(
        "bad-last-event-id",
        422,
        "last-event-id",
        method="GET",
        path="/jobs/{queued}/events",
        headers={"Last-Event-ID": "abc"},
    ),
    Case("list-limit-zero", 422, "query.limit", method="GET", path="/jobs", params={"limit": "0"}),
    Case(
        "list-limit-huge", 422, "query.limit", method="GET", path="/jobs", params={"limit": "201"}
    ),
    Case(
        "list-bad-status",
        422,
        "query.status",
        method="GET",
        path="/jobs",
        params={"status": "done"},
    ),
    Case("unknown-route", 404, "not found", method="GET", path="/nope"),
    Case("wrong-method", 405, "method not allowed", method="PUT", path="/invert"),
]


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(max_n=MAX_N, max_batch=MAX_BATCH, max_body_bytes=MAX_BODY)


async def _job(client: httpx.AsyncClient, store: JobStore, state: str) -> str:
    response = await client.post("/invert", json=eye_json(2))
    job_id: str = response.json()["id"]
    if state == "succeeded":
        FakeWorker(store).run(job_id, np.eye(2))
    return job_id


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 25
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_bad_request(
    case: Case, client: httpx.AsyncClient, store: JobStore, app: FastAPI
) -> None:
    path = case.path
    for state in ("queued", "succeeded"):
        if "{" + state + "}" in path:
            path = path.replace("{" + state + "}", await _job(client, store, state))
    response = await client.request(
        case.method,
        path,
        json=case.json,
        content=case.content,
        headers=case.headers,
        params=case.params,
    )
    assert response.status_code == case.status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == case.status
    assert problem["title"]
    assert problem["instance"] == path
    assert case.detail.lower() in problem["detail"].lower(), problem
    if case.status == 422 and case.path == "/invert":
        assert problem["errors"] and all({"loc", "msg"} <= set(e) for e in problem["errors"])
    # ... and the service keeps serving
    assert (await client.post("/invert", json=eye_json(2))).status_code == 202


async def test_body_limit_applies_without_content_length(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield b" " * 1024

    response = await client.post("/invert", content=chunks(), headers=JSON)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


async def test_declared_content_length_over_limit_is_refused_unread(app: FastAPI) -> None:
    """A Content-Length over the limit answers 413 before a single body byte is read."""
    received: list[dict[str, Any]] = []
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        received.append({})
        return {"type": "http.request", "body": b"{}", "more_body": True}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/invert",
        "raw_path": b"/invert",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"content-length", str(10**9).encode()),
        ],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 413
    assert not received
    assert json.loads(sent[1]["body"])["status"] == 413
