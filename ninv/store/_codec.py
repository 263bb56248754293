"""Helpers shared by the store implementations: time encoding, cursors, record JSON."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter

from ninv.jobs import JobRecord
from ninv.schemas import CURVE, CurvePoint, HistoryPoint, JobStatus

__all__ = [
    "ALL_STATUSES",
    "decode_cursor",
    "dump_curve",
    "dump_points",
    "dump_record",
    "encode_cursor",
    "from_us",
    "load_curve",
    "load_record",
    "to_us",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

ALL_STATUSES: tuple[JobStatus, ...] = tuple(JobStatus)


def to_us(when: datetime) -> int:
    """Microseconds since the epoch: exact, and exact as a Redis sorted-set score (< 2**53)."""
    if when.tzinfo is None:
        raise ValueError("naive datetime: the store keeps timezone-aware UTC times")
    return (when - _EPOCH) // _US


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def encode_cursor(created_us: int, job_id: str) -> str:
    """The position after which the next page starts (newest first: created time, then id)."""
    return f"{created_us}.{job_id}"


def decode_cursor(cursor: str) -> tuple[int, str]:
    """Raise ValueError for a cursor this store did not make."""
    head, sep, job_id = cursor.partition(".")
    if not sep or not job_id or not head.isdigit():
        raise ValueError(f"invalid cursor {cursor!r}")
    return int(head), job_id


def dump_record(job: JobRecord) -> str:
    # `inverse` belongs to a held answer (service/inverse.py), never to the stored record.
    return job.model_dump_json(exclude={"inverse"})


def load_record(raw: str | bytes) -> JobRecord:
    return JobRecord.model_validate_json(raw)


# A point's fields as a plain dict, serialized without a model: a finished job's curve comes
# from the solver's own points, and validating a model per point cost more than the rest of
# writing it (tens of points a job, for every job of a batch). What is written is what
# `HistoryPoint` would write: the same keys, and null for a non-finite figure (pydantic's
# default for NaN and infinity), so `load_curve` reads it back into models.
_POINT = TypeAdapter(dict[str, Any])
_POINTS = TypeAdapter(list[dict[str, Any]])


def _fields(point: CurvePoint) -> dict[str, Any]:
    return {
        "iteration": point.iteration,
        "loss": point.loss,
        "residual": point.residual,
        "aux_error": point.aux_error,
        "lr": point.lr,
    }


def dump_points(points: Iterable[CurvePoint]) -> list[str]:
    """Each point as JSON (a store keeps one per history entry: the points a running job
    reports, and SQLite's whole curve)."""
    return [_POINT.dump_json(_fields(point)).decode() for point in points]


def dump_curve(points: Iterable[CurvePoint]) -> bytes:
    """A whole curve as one JSON array (a finished job's, kept as one value)."""
    return _POINTS.dump_json([_fields(point) for point in points])


def load_curve(raw: str | bytes) -> list[HistoryPoint]:
    return CURVE.validate_json(raw)
