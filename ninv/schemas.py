"""Wire schemas shared by the API, the worker and the client.

These pydantic models are the contract between ninv's parts: the API validates requests with
them and answers with them, the worker writes them to the store, and the client parses them.
This module imports only pydantic, so that the client installs without torch, FastAPI or Celery.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Protocol

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

__all__ = [
    "CURVE",
    "FINISHED",
    "MAX_ITER_LIMIT",
    "CurvePoint",
    "DType",
    "History",
    "HistoryPoint",
    "Job",
    "JobList",
    "JobStatus",
    "LrStage",
    "MatrixSummary",
    "Method",
    "Problem",
    "Progress",
    "Result",
    "SolveOptions",
    "StopReason",
    "Summary",
    "WorkerInfo",
    "WorkerList",
    "finite",
]

Method = Literal["adam", "gd", "cg", "newton-schulz", "exact"]
DType = Literal["float32", "float64"]
StopReason = Literal[
    "converged", "max_iter", "stalled", "diverged", "cancelled", "singular", "precision_floor"
]

#: The largest max_iter a job may ask for: past this a request is a mistake, not a plan.
MAX_ITER_LIMIT = 100_000_000
#: lr_schedule stages beyond this are a mistake too.
MAX_LR_STAGES = 64

LrStage = tuple[Annotated[int, Field(ge=0)], Annotated[float, Field(gt=0, le=10)]]

_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d{1,2})$")


def _device(value: str) -> str:
    """A device name, refused in words (a pattern constraint would quote its regex)."""
    if not _DEVICE.match(value):
        raise PydanticCustomError(
            "device",
            "device must be auto, cpu, cuda or cuda:N (N the GPU's number), not {given}",
            {"given": repr(value[:40])},
        )
    return value


Device = Annotated[
    str, AfterValidator(_device), Field(json_schema_extra={"pattern": _DEVICE.pattern})
]


def finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity: a singular matrix's cond or a diverged loss travels as null."""
    return value if value is not None and math.isfinite(value) else None


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


FINISHED = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})


class SolveOptions(BaseModel):
    """How to invert: every field is optional and defaults to the solver's own default.

    `max_iter` and `tol` left unset take the method's default (for `adam`, the original
    configuration: 100,000 steps and no tolerance stop). `lr_schedule` applies to `adam` and `gd`:
    (start_iteration, lr) stages, the first starting at 0. `stall_window` left unset takes the
    method's stall stop (adam and gd: stop as stalled when the best residual has not improved by
    0.1% in 20,000 steps); 0 turns it off, so that every step up to max_iter runs.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Method = "adam"
    max_iter: Annotated[int, Field(ge=1, le=MAX_ITER_LIMIT)] | None = None
    tol: Annotated[float, Field(gt=0, lt=1)] | None = None
    lr_schedule: list[LrStage] | None = Field(default=None, min_length=1, max_length=MAX_LR_STAGES)
    dtype: DType = "float32"
    device: Device = "auto"
    seed: Annotated[int, Field(ge=0, lt=2**63)] | None = None
    stall_window: Annotated[int, Field(ge=0, le=MAX_ITER_LIMIT)] | None = None
    aux: bool = True

    @model_validator(mode="before")
    @classmethod
    def _known_options(cls, data: Any) -> Any:
        """An unknown option (a typo such as `maxiter`) is named, with the options there are."""
        if not isinstance(data, dict):
            return data
        known = cls.model_fields  # once: a property on the class, read for every stored record
        for name in data:
            if name not in known:
                close = difflib.get_close_matches(str(name), known, n=1)
                problem = PydanticCustomError(
                    "unknown_option",
                    "not an option{hint}; the options are {options}",
                    {
                        "hint": f" (did you mean {close[0]!r}?)" if close else "",
                        "options": ", ".join(cls.model_fields),
                    },
                )
                # Raised as a ValidationError so that its location names the key.
                raise ValidationError.from_exception_data(
                    cls.__name__,
                    [InitErrorDetails(type=problem, loc=(str(name),), input=data[name])],
                )
        return data

    @field_validator("lr_schedule")
    @classmethod
    def _stages_ordered(cls, stages: list[LrStage] | None) -> list[LrStage] | None:
        if stages is None:
            return None
        if stages[0][0] != 0:
            raise ValueError("the first lr_schedule stage must start at iteration 0")
        starts = [start for start, _ in stages]
        if any(b <= a for a, b in itertools.pairwise(starts)):
            raise ValueError("lr_schedule stage starts must strictly increase")
        if not all(math.isfinite(lr) for _, lr in stages):
            raise ValueError("lr_schedule learning rates must be finite")
        return stages


class Progress(BaseModel):
    """The latest progress tick of a running job."""

    iteration: int
    max_iter: int
    loss: float | None
    residual: float | None
    aux_error: float | None = None
    lr: float | None = None
    rate: float | None = Field(default=None, description="iterations per second")
    eta_s: float | None = Field(default=None, description="seconds to max_iter at this rate")
    updated_at: datetime


class HistoryPoint(BaseModel):
    """One point of a job's loss curve."""

    iteration: int
    loss: float | None
    residual: float | None
    aux_error: float | None = None
    lr: float | None = None


#: A whole curve at once: one validation or one JSON array for all its points, a fraction of
#: the cost of one call per point (a finished job has tens to thousands).
CURVE = TypeAdapter(list[HistoryPoint])


class CurvePoint(Protocol):
    """What a store writes of a curve point: a `HistoryPoint`, or the solver's own point (a
    named tuple with the same fields), which a finished job's curve is written from as it is,
    without a model per point. A non-finite figure is written as null."""

    @property
    def iteration(self) -> int: ...
    @property
    def loss(self) -> float | None: ...
    @property
    def residual(self) -> float | None: ...
    @property
    def aux_error(self) -> float | None: ...
    @property
    def lr(self) -> float | None: ...


class MatrixSummary(BaseModel):
    """One matrix's outcome within a (b, n, n) job."""

    iterations: int
    loss: float | None
    residual: float | None
    aux_error: float | None
    converged: bool = Field(description="the residual is within tol: the inverse is usable")
    reason: StopReason = Field(
        description="why it stopped: converged, max_iter, stalled, diverged or cancelled; a stop "
        "short of tol whose cause is known is singular (no inverse exists) or precision_floor "
        "(rounding in this dtype stopped it)"
    )
    tol: float | None = Field(
        default=None,
        description="the residual tolerance `converged` was judged against: the job's tol, or "
        "for a run without a tolerance stop (adam's default, exact) 1e-4 in float32, 1e-10 in "
        "float64",
    )
    cond: float | None
    warnings: list[str] = Field(
        default_factory=list,
        description="what the outcome means and what to do, judged after the run; empty when "
        "it converged",
    )


class Summary(MatrixSummary):
    """What a finished solve reports: whether its inverse is usable, how far it got, and why.

    `converged` is the one field a program needs: true when the final residual is within `tol`.
    A job that `succeeded` ran to a stop; only a converged one reached its tolerance.
    For a (b, n, n) job the top-level figures are the worst over its matrices (largest loss,
    residual, aux error, iterations and cond; converged only if all did; the warnings of each
    matrix, prefixed "matrix i: ") and `matrices` holds each one's own.
    """

    method: Method
    max_iter: int
    cond: float | None = Field(description="condition-number estimate of the input")
    device: str
    dtype: DType
    elapsed_s: float
    matrices: list[MatrixSummary] | None = None


class Job(BaseModel):
    """A job as the API shows it."""

    id: str
    status: JobStatus
    options: SolveOptions
    n: int
    batch: int | None = Field(default=None, description="b for a (b, n, n) input, else null")
    input_dtype: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = Field(default=0, description="times a worker took the job (runs and slices)")
    preemptions: int = Field(
        default=0, description="times the job yielded its worker to waiting jobs (time slicing)"
    )
    resumed_from: int | None = Field(
        default=None,
        description="the iteration its latest run resumed from (a checkpoint), null: from 0",
    )
    worker: str | None = None
    cancel_requested: bool = False
    progress: Progress | None = None
    summary: Summary | None = None
    error: str | None = None
    notice: str | None = Field(
        default=None,
        description="for a queued job that no live worker can run: why, and what to start",
    )
    inverse: list[list[float | None]] | list[list[list[float | None]]] | None = Field(
        default=None,
        description="the inverse (a non-finite entry as null), only in the answer to a "
        "`Prefer: wait` request whose job finished in time with a result of at most "
        "NINV_INLINE_MAX_ENTRIES entries; otherwise null (GET /jobs/{id}/result has it)",
    )


class WorkerInfo(BaseModel):
    """A worker as it announces itself every few seconds, and as GET /workers shows it."""

    id: str = Field(description="host:pid:device, as jobs name their worker")
    hostname: str
    pid: int
    device: str = Field(description="the device it solves on: cpu or cuda:N")
    cuda_devices: int = Field(description="CUDA devices its process sees (0: none)")
    version: str = Field(description="ninv's version")
    torch_version: str
    started_at: datetime
    last_seen: datetime


class WorkerList(BaseModel):
    """The workers that announced themselves within their announcement's lifetime."""

    workers: list[WorkerInfo]


class History(BaseModel):
    """A job's loss curve: a point per check and lr stage change, thinned in log-iteration."""

    points: list[HistoryPoint]


class JobList(BaseModel):
    """One page of the caller's jobs, newest first."""

    jobs: list[Job]
    next_cursor: str | None = None


class Result(BaseModel):
    """A finished job's inverse as JSON (a non-finite entry, from a diverged solve, is null)."""

    inverse: list[list[float | None]] | list[list[list[float | None]]]
    summary: Summary


class Problem(BaseModel):
    """An RFC 9457 problem detail, as every error answers."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
