"""OpenAPI examples and documented error answers, kept apart so the routes stay short."""

from __future__ import annotations

from typing import Any

from ninv.schemas import Problem, SolveOptions

__all__ = [
    "EVENTS",
    "HISTORY",
    "INVERT_BODY",
    "JOB",
    "JOB_ID",
    "JOB_LIST",
    "NPY_QUERY",
    "RESULT",
    "WORKER",
    "invert_request_body",
    "problems",
]

JOB_ID = "3f2b9c4e8d1a4b7f9e6c5d4a3b2c1d0e"

_OPTIONS = {
    "method": "adam",
    "max_iter": 100000,
    "tol": None,
    "lr_schedule": [[0, 0.05], [10000, 0.025], [100000, 0.01]],
    "dtype": "float32",
    "device": "auto",
    "seed": None,
    "stall_window": None,
    "aux": True,
}

_SUMMARY = {
    "method": "adam",
    "iterations": 100000,
    "max_iter": 100000,
    "loss": 8.6e-6,
    "residual": 0.047,
    "aux_error": 0.21,
    "converged": False,
    "reason": "max_iter",
    "tol": 1e-4,
    "cond": 412.7,
    "device": "cuda:0",
    "dtype": "float32",
    "elapsed_s": 41.3,
    "warnings": [
        "adam stopped after 100000 iterations at residual 0.047, above tol 0.0001: at cond 413 "
        "adam needs ~cond^2 x ln(1/tol) = 1.57e+06 steps; use method='newton-schulz' or 'cg'"
    ],
}

_PROGRESS = {
    "iteration": 25000,
    "max_iter": 100000,
    "loss": 1.2e-4,
    "residual": 0.18,
    "aux_error": 3.1,
    "lr": 0.025,
    "rate": 2480.0,
    "eta_s": 30.2,
    "updated_at": "2026-01-05T10:00:10Z",
}

JOB: dict[str, Any] = {
    "id": JOB_ID,
    "status": "running",
    "options": _OPTIONS,
    "n": 16,
    "batch": None,
    "input_dtype": "float64",
    "created_at": "2026-01-05T10:00:00Z",
    "started_at": "2026-01-05T10:00:00.2Z",
    "finished_at": None,
    "attempts": 2,
    "preemptions": 1,
    "resumed_from": 24960,
    "worker": "worker-1@host",
    "cancel_requested": False,
    "progress": _PROGRESS,
    "summary": None,
    "error": None,
    "notice": None,
}

WORKER: dict[str, Any] = {
    "id": "gpu1:4242:cuda:0",
    "hostname": "gpu1",
    "pid": 4242,
    "device": "cuda:0",
    "cuda_devices": 1,
    "version": "0.1.0",
    "torch_version": "2.13.0+cu126",
    "started_at": "2026-01-05T09:00:00Z",
    "last_seen": "2026-01-05T10:00:08Z",
}

JOB_LIST = {"jobs": [JOB], "next_cursor": None}
RESULT = {"inverse": [[0.5, -0.25], [0.0, 0.25]], "summary": _SUMMARY}
HISTORY = {
    "points": [
        {"iteration": 1, "loss": 0.061, "residual": 3.9, "aux_error": 250.0, "lr": 0.05},
        {"iteration": 10000, "loss": 1.9e-3, "residual": 0.7, "aux_error": 212.0, "lr": 0.025},
    ]
}
EVENTS = (
    "retry: 1000\n\n"
    "event: progress\nid: 25000\n"
    'data: {"iteration": 25000, "max_iter": 100000, "loss": 0.00012, ...}\n\n'
    'event: end\ndata: {"id": "' + JOB_ID + '", "status": "succeeded", ...}\n\n'
)

INVERT_BODY: dict[str, Any] = {
    "matrix": [[2.0, 1.0], [0.0, 4.0]],
    "method": "adam",
    "max_iter": 20000,
    "tol": 1e-6,
    "dtype": "float32",
}


def invert_request_body() -> dict[str, Any]:
    """The OpenAPI requestBody of POST /invert: JSON with options, or raw .npy."""
    options = SolveOptions.model_json_schema()
    schema = {
        "type": "object",
        "title": "InvertRequest",
        "required": ["matrix"],
        "additionalProperties": False,
        "properties": {
            "matrix": {
                "description": "n x n rows of numbers, or b x n x n for a batch",
                "type": "array",
                "minItems": 1,
                "items": {"type": "array", "minItems": 1, "items": {}},
            },
            **options["properties"],
        },
    }
    if "$defs" in options:
        schema["$defs"] = options["$defs"]
    return {
        "required": True,
        "content": {
            "application/json": {"schema": schema, "example": INVERT_BODY},
            "application/x-npy": {
                "schema": {"type": "string", "format": "binary"},
                "example": "(the bytes of numpy.save(f, matrix))",
            },
        },
    }


#: Query parameters of a .npy request (a JSON request carries its options in the body).
NPY_QUERY: list[dict[str, Any]] = [
    {
        "name": name,
        "in": "query",
        "required": False,
        "description": f"{name} (for application/x-npy bodies)"
        + (": a JSON array of [start, lr] pairs" if name == "lr_schedule" else ""),
        "schema": {"type": "string"},
    }
    for name in SolveOptions.model_fields
]

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    503: "Service Unavailable",
}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Documented problem+json answers for these status codes."""
    return {
        code: {
            "description": _TITLES[code],
            "content": {
                "application/problem+json": {
                    "schema": Problem.model_json_schema(),
                    "example": {
                        "type": "about:blank",
                        "title": _TITLES[code],
                        "status": code,
                        "detail": "what went wrong, and where",
                        "instance": f"/jobs/{JOB_ID}",
                    },
                }
            },
        }
        for code in codes
    }
