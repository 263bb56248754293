"""`ninv-client status` says how a job got where it is: runs, slices given up, resumed from."""

from __future__ import annotations

from datetime import UTC, datetime

from client._display import format_job
from ninv.schemas import Job, JobStatus, SolveOptions


def _job(**fields: object) -> Job:
    base: dict[str, object] = {
        "id": "a" * 32,
        "status": JobStatus.running,
        "options": SolveOptions(),
        "n": 4,
        "input_dtype": "float64",
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "worker": "host:1:cpu",
        "attempts": 1,
    }
    return Job.model_validate({**base, **fields})


def test_a_first_run_says_nothing_more() -> None:
    assert "runs" not in format_job(_job())


def test_slices_and_resumption_are_shown() -> None:
    text = format_job(_job(attempts=3, preemptions=2, resumed_from=4096))
    assert "3 runs, 2 time slices given up, resumed from iteration 4096" in text
    text = format_job(_job(attempts=2, resumed_from=640))
    assert "2 runs, resumed from iteration 640" in text
