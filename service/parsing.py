"""Request parsing for POST /invert: a JSON body or a raw `.npy` body, checked against the limits.

Everything here is pure (bytes in, a `ParsedRequest` or a `ProblemError` out) except
`read_body`, which streams the body and stops as soon as it passes the size limit. Errors say
where the problem is: `matrix[3]` for a ragged row, `matrix[2][1]` for a string, and so on.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import anyio
import numpy as np
import orjson
from pydantic import ValidationError
from starlette.requests import Request

from ninv.npy import read_header, to_npy
from ninv.schemas import SolveOptions
from service.errors import ProblemError, summarize, validation_errors

__all__ = [
    "JSON",
    "NPY",
    "Limits",
    "ParsedRequest",
    "check_length",
    "load_npy",
    "matrix_from_json",
    "media_type",
    "parse_invert",
    "parse_json",
    "parse_npy",
    "read_body",
    "request_fingerprint",
]

JSON = "application/json"
NPY = "application/x-npy"

#: Query parameters a `.npy` request may carry: the SolveOptions fields.
OPTION_FIELDS = frozenset(SolveOptions.model_fields)


@dataclass(frozen=True)
class Limits:
    """What a request may ask for: the largest n, batch and body (from the settings)."""

    max_n: int
    max_batch: int
    max_body_bytes: int


@dataclass(frozen=True)
class ParsedRequest:
    """A validated /invert request: the matrix as `.npy` bytes and what describes it."""

    options: SolveOptions
    matrix: np.ndarray[Any, Any]
    input_dtype: str

    @property
    def n(self) -> int:
        return int(self.matrix.shape[-1])

    @property
    def batch(self) -> int | None:
        return int(self.matrix.shape[0]) if self.matrix.ndim == 3 else None

    def npy(self) -> bytes:
        return to_npy(self.matrix)


def _bad(detail: str, loc: Sequence[str | int] = ("body",), status: int = 422) -> NoReturn:
    raise ProblemError(status, detail, errors=[{"loc": list(loc), "msg": detail}])


def _too_large(detail: str) -> NoReturn:
    raise ProblemError(413, detail, title="Content Too Large")


# -- the body -------------------------------------------------------------------------------------


def check_length(request: Request, limit: int, *, hint: str = "") -> int | None:
    """The declared Content-Length (None when chunked); 413 at once when it exceeds `limit`."""
    declared = request.headers.get("content-length")
    if declared is None:
        return None
    try:
        size = int(declared)
    except ValueError:
        raise ProblemError(400, f"invalid Content-Length {declared!r}") from None
    if size > limit:
        _too_large(f"the request body is {size} bytes; the limit is {limit} bytes{hint}")
    return size


async def read_body(request: Request, limit: int, *, timeout_s: float, hint: str = "") -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `limit` bytes, and
    with 408 when it has not all arrived within `timeout_s` (a slow or stalled client must not
    hold a connection and its buffer for ever). `hint` ends a 413's detail.

    A declared Content-Length over the limit is refused before any byte is read; a body sent
    without one (chunked) is counted while it streams.
    """
    check_length(request, limit, hint=hint)
    chunks: list[bytes] = []
    total = 0
    with anyio.move_on_after(timeout_s) as deadline:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                _too_large(f"the request body exceeds the limit of {limit} bytes{hint}")
            chunks.append(chunk)
    if deadline.cancelled_caught:
        raise ProblemError(
            408,
            f"the request body did not arrive within {timeout_s:g} s "
            f"({total} bytes received); send it faster, or send a smaller body",
            title="Request Timeout",
            headers={"Connection": "close"},
        )
    return b"".join(chunks)


def media_type(content_type: str | None) -> str:
    """The bare, lower-case media type of a Content-Type header ('' when absent)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def request_fingerprint(parsed: ParsedRequest) -> str:
    """What makes two requests "the same" for Idempotency-Key: the parsed matrix (values,
    shape, input dtype) and options, so JSON with other whitespace or key order is the same."""
    digest = hashlib.sha256()
    digest.update(parsed.options.model_dump_json().encode())
    digest.update(b"\n")
    digest.update(f"{parsed.input_dtype}:{parsed.matrix.dtype}:{parsed.matrix.shape}".encode())
    digest.update(b"\n")
    digest.update(np.ascontiguousarray(parsed.matrix).tobytes())
    return digest.hexdigest()


def parse_invert(
    body: bytes, content_type: str | None, query: Sequence[tuple[str, str]], limits: Limits
) -> ParsedRequest:
    """Dispatch on the media type: JSON or `.npy`; anything else is 415."""
    kind = media_type(content_type)
    if kind == JSON or kind.endswith("+json"):
        if query:
            names = ", ".join(sorted({name for name, _ in query}))
            _bad(
                f"query parameters ({names}) are only for .npy bodies; "
                "put the options in the JSON body",
                ("query",),
            )
        return _fits_dtype(parse_json(body, limits))
    if kind == NPY:
        return _fits_dtype(parse_npy(body, query, limits))
    raise ProblemError(
        415,
        f"Content-Type must be {JSON} or {NPY}, not {kind or 'missing'!r}",
        title="Unsupported Media Type",
    )


def _fits_dtype(parsed: ParsedRequest) -> ParsedRequest:
    """Refuse an entry the requested dtype cannot hold, here rather than in the worker.

    A worker that found it would fail the job after a wait in the queue; in a batch, before
    per-job checks, it failed its neighbours too.
    """
    if parsed.options.dtype != "float32" or parsed.matrix.dtype == np.float32:
        return parsed
    with np.errstate(over="ignore"):  # the overflow is what is looked for
        fits = np.isfinite(parsed.matrix.astype(np.float32))
    if not fits.all():
        where = tuple(int(i) for i in np.argwhere(~fits)[0])
        index = "".join(f"[{i}]" for i in where)
        _bad(
            f"matrix{index} overflows float32 (|x| > 3.4e38); use dtype float64",
            ("body", "matrix", *where),
        )
    return parsed


# -- JSON -----------------------------------------------------------------------------------------


def _no_constants(name: str) -> NoReturn:
    raise _JsonConstant(name)


class _JsonConstant(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _load_json(body: bytes) -> Any:
    """The parsed body. orjson reads strict UTF-8 JSON 5-12x as fast as the json module (a
    16x16 matrix in 13 us, not 160; a 1000x1000 one in 0.14 s, not 0.7). Whatever it refuses
    is read again by json, which says what is wrong in the words the errors below use, and
    reads what orjson does not (UTF-16 and -32 bodies)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body, parse_constant=_no_constants)


def _options(raw: dict[str, Any], loc: tuple[str, ...]) -> SolveOptions:
    try:
        return SolveOptions.model_validate(raw)
    except ValidationError as exc:
        errors = validation_errors(exc.errors(include_url=False), prefix=loc)
        raise ProblemError(422, summarize(errors), errors=errors) from None


def parse_json(body: bytes, limits: Limits) -> ParsedRequest:
    """`{"matrix": [[...]], ...options}`: strict JSON (no NaN/Infinity), shape checked here."""
    try:
        doc = _load_json(body)
    except _JsonConstant as exc:
        _bad(f"{exc.name} is not a JSON number; every entry must be a finite number")
    except json.JSONDecodeError as exc:
        _bad(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")
    except RecursionError:
        _bad("JSON nesting too deep; a matrix is n x n, a batch b x n x n")
    except UnicodeDecodeError:
        _bad("the body is not UTF-8 text")
    except ValueError as exc:  # e.g. an integer literal with thousands of digits
        _bad(f"invalid JSON: {exc}")
    if not isinstance(doc, dict):
        _bad(f"the body must be a JSON object with a 'matrix' field, not {_kind(doc)}")
    if "matrix" not in doc:
        _bad("field 'matrix' is required", ("body", "matrix"))
    options = _options({k: v for k, v in doc.items() if k != "matrix"}, ("body",))
    matrix = matrix_from_json(doc["matrix"], limits)
    return ParsedRequest(options=options, matrix=matrix, input_dtype="float64")


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a number"


def matrix_from_json(value: object, limits: Limits) -> np.ndarray[Any, Any]:
    """A float64 (n, n) or (b, n, n) array from parsed JSON, or a ProblemError saying where."""
    loc: tuple[str | int, ...] = ("body", "matrix")
    if not isinstance(value, list):
        _bad(f"matrix must be an array of rows, not {_kind(value)}", loc)
    if not value:
        _bad("matrix is empty (0x0); it must be at least 1x1", loc)
    first = value[0]
    if not (isinstance(first, list) and first and isinstance(first[0], list)):
        return _square(value, loc, "matrix", limits)
    if len(value) > limits.max_batch:
        _too_large(f"the batch has {len(value)} matrices; the limit is {limits.max_batch}")
    mats: list[np.ndarray[Any, Any]] = []
    for k, item in enumerate(value):
        name = f"matrix[{k}]"
        if not isinstance(item, list):
            _bad(f"{name} is {_kind(item)}, expected an n x n matrix", (*loc, k))
        mats.append(_square(item, (*loc, k), name, limits))
        if mats[-1].shape != mats[0].shape:
            n0, nk = mats[0].shape[0], mats[-1].shape[0]
            _bad(f"{name} is {nk}x{nk} but matrix[0] is {n0}x{n0}; a batch has one size", (*loc, k))
    return np.stack(mats)


_NUMBER = frozenset({int, float})


def _square(
    rows: list[Any], loc: tuple[str | int, ...], name: str, limits: Limits
) -> np.ndarray[Any, Any]:
    n = len(rows)
    if n == 0:
        _bad(f"{name} is empty (0x0); it must be at least 1x1", loc)
    if n > limits.max_n:
        _too_large(f"{name} has {n} rows; the limit is n <= {limits.max_n}")
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            _bad(f"{name}[{i}] is {_kind(row)}, expected a row (an array of numbers)", (*loc, i))
    width = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != width:
            _bad(f"{name} is ragged: row {i} has {len(row)} entries, expected {width}", (*loc, i))
    if width != n:
        _bad(f"{name} is {n}x{width}; it must be square (n x n)", loc)
    for i, row in enumerate(rows):
        if not set(map(type, row)) <= _NUMBER:  # bool is its own type, so it is refused too
            j, item = next((j, x) for j, x in enumerate(row) if type(x) not in _NUMBER)
            nested = "; nesting too deep (a batch is b x n x n)" if isinstance(item, list) else ""
            _bad(f"{name}[{i}][{j}] is {_kind(item)}, expected a number{nested}", (*loc, i, j))
    try:
        arr = np.array(rows, dtype=np.float64)
    except OverflowError:
        arr = np.array([[_float_or_inf(x) for x in row] for row in rows], dtype=np.float64)
    _require_finite(arr, loc, name, "overflows float64 (|x| > 1.8e308)")
    return arr


def _float_or_inf(x: float) -> float:
    try:
        return float(x)
    except OverflowError:
        return math.inf


def _require_finite(
    arr: np.ndarray[Any, Any], loc: tuple[str | int, ...], name: str, why: str
) -> None:
    finite = np.isfinite(arr)
    if finite.all():
        return
    where = tuple(int(i) for i in np.argwhere(~finite)[0])
    index = "".join(f"[{i}]" for i in where)
    _bad(f"{name}{index} {why}", (*loc, *where))


# -- .npy -----------------------------------------------------------------------------------------


def _options_from_query(query: Sequence[tuple[str, str]]) -> SolveOptions:
    raw: dict[str, Any] = {}
    for name, value in query:
        if name not in OPTION_FIELDS:
            allowed = ", ".join(sorted(OPTION_FIELDS))
            _bad(f"unknown query parameter {name!r}; the options are {allowed}", ("query", name))
        if name in raw:
            _bad(f"query parameter {name!r} is given more than once", ("query", name))
        raw[name] = value
    if "lr_schedule" in raw:
        try:
            raw["lr_schedule"] = json.loads(raw["lr_schedule"], parse_constant=_no_constants)
        except ValueError:
            _bad(
                "lr_schedule must be a JSON array of [start_iteration, lr] pairs, "
                "e.g. [[0, 0.05], [10000, 0.025]]",
                ("query", "lr_schedule"),
            )
    for name in ("seed", "max_iter", "tol", "stall_window"):
        if raw.get(name) in ("", "null"):
            raw[name] = None
    return _options(raw, ("query",))


def parse_npy(body: bytes, query: Sequence[tuple[str, str]], limits: Limits) -> ParsedRequest:
    """A raw `.npy` body with the options as query parameters."""
    options = _options_from_query(query)
    matrix, input_dtype = load_npy(body, limits)
    return ParsedRequest(options=options, matrix=matrix, input_dtype=input_dtype)


_FLOATS = {2: np.float32, 4: np.float32, 8: np.float64}


def load_npy(body: bytes, limits: Limits) -> tuple[np.ndarray[Any, Any], str]:
    """The matrix from `.npy` bytes, never unpickling, and checking the header before the data.

    Floats keep their precision (float16 widens to float32), integers become float64; bool,
    complex, object, string and structured dtypes are refused.
    """
    loc = ("body",)
    if not body.startswith(b"\x93NUMPY"):
        _bad(
            "not a valid .npy file: it does not start as the files np.save writes; "
            f"to send JSON, use Content-Type {JSON}"
        )
    try:
        header = read_header(body)
    except ValueError as exc:
        _bad(str(exc))
    shape, dtype = header.shape, header.dtype
    input_dtype = str(dtype)
    if dtype.hasobject:
        _bad("object-dtype .npy is refused: it would need pickle; send a float array")
    if dtype.fields is not None or dtype.kind not in "fiu":
        what = {"b": "boolean", "c": "complex", "U": "string", "S": "bytes"}.get(dtype.kind)
        _bad(f".npy dtype {input_dtype} is not a real number type{f' ({what})' if what else ''}")
    if dtype.kind == "f" and dtype.itemsize not in _FLOATS:
        _bad(f".npy dtype {input_dtype} is not supported; use float32 or float64")
    _check_shape(shape, limits)
    expected = header.nbytes
    got = len(body) - header.offset
    if got != expected:
        what = "truncated" if got < expected else "longer than its header says"
        _bad(f".npy data is {what}: the header needs {expected} bytes, the body has {got}")
    arr = header.array(body)
    target = _FLOATS[dtype.itemsize] if dtype.kind == "f" else np.float64
    arr = np.ascontiguousarray(arr, dtype=target)
    _require_finite(arr, loc, "matrix", "is not finite (NaN or infinity)")
    return arr, input_dtype


def _check_shape(shape: tuple[int, ...], limits: Limits) -> None:
    dims = "x".join(map(str, shape)) or "a scalar"
    if len(shape) not in (2, 3):
        _bad(f"the .npy array is {dims}; it must be n x n or b x n x n")
    n, width = shape[-2:]
    if n == 0 or width == 0:
        _bad(f"the .npy array is {dims}; it is empty")
    if n != width:
        _bad(f"the .npy array is {dims}; its matrices must be square")
    if n > limits.max_n:
        _too_large(f"the matrix is {n}x{n}; the limit is n <= {limits.max_n}")
    if len(shape) == 3:
        if shape[0] == 0:
            _bad("the .npy batch is empty (0 matrices)")
        if shape[0] > limits.max_batch:
            _too_large(f"the batch has {shape[0]} matrices; the limit is {limits.max_batch}")
