"""Checkpoints and time slicing in the runner (in-process, real Redis store), and their rules."""

from __future__ import annotations

import numpy as np

from ninv.npy import from_npy
from ninv.schemas import JobStatus
from ninv.settings import Settings
from ninv.store import JobStore
from tests.helpers import submit
from worker.runner import JobRunner
from worker.slicing import SliceClock
from worker.solver import invert

#: A job of about a second on one core: n > NINV_BATCH_MAX_N would batch with nothing anyway,
#: but 48 keeps it on the solver's one-thread path, so that results compare bit for bit.
LONG = {"method": "adam", "dtype": "float64", "device": "cpu", "seed": 11, "max_iter": 12_000}


def _matrix() -> np.ndarray:
    return np.random.default_rng(5).standard_normal((48, 48)) + 8 * np.eye(48)


def test_slice_clock_rules() -> None:
    clock = SliceClock(100.0, slice_s=10.0, checkpoint_s=60.0)
    assert clock.directive(105.0) == "go" and not clock.slice_over(105.0)
    assert clock.slice_over(110.0) and clock.directive(110.0) == "go"  # nobody waits: go on
    clock.others_wait = True
    assert clock.directive(110.0) == "yield"
    clock.never_yield()
    assert clock.directive(150.0) == "go" and clock.directive(160.0) == "save"
    clock.last_save = 160.0
    assert clock.directive(170.0) == "go"
    off = SliceClock(0.0, slice_s=0.0, checkpoint_s=0.0)
    off.others_wait = True
    assert off.directive(1e9) == "go"


def _runner(store: JobStore, settings: Settings, sent: list[str], **update: object) -> JobRunner:
    tuned = settings.model_copy(update={"progress_every_s": 0.05, **update})
    return JobRunner(store, tuned, worker_id="w", wake=lambda: sent.append("wake"))


def test_a_job_alone_is_never_preempted_but_checkpoints(
    settings: Settings, store: JobStore
) -> None:
    sent: list[str] = []
    job = submit(store, settings, _matrix(), send=False, **LONG)
    _runner(store, settings, sent, slice_s=0.05, checkpoint_s=0.05).run(job.id)
    done = store.get(job.id)
    assert done is not None and done.status is JobStatus.succeeded, done.error
    assert (done.preemptions, done.attempts, sent) == (0, 1, [])
    assert done.checkpoint_iteration is not None  # it saved on the way...
    assert store.load_checkpoint(job.id) is None  # ...and the checkpoint went at its end


def test_a_job_yields_to_a_waiting_one_and_resumes_to_the_same_result(
    settings: Settings, store: JobStore
) -> None:
    sent: list[str] = []
    runner = _runner(store, settings, sent, slice_s=0.1, checkpoint_s=0)
    long = submit(store, settings, _matrix(), send=False, **LONG)
    short = submit(store, settings, np.eye(2) * 2, send=False, method="exact")

    runner.run(long.id)  # it yields: the short job waits
    yielded = store.get(long.id)
    assert yielded is not None and yielded.status is JobStatus.queued
    assert yielded.preemptions == 1 and sent == ["wake"]
    assert yielded.checkpoint_iteration is not None and yielded.checkpoint_iteration > 0

    runner.run(short.id)
    assert store.get(short.id).status is JobStatus.succeeded  # type: ignore[union-attr]
    runner.run(long.id)  # alone now: runs to the end
    done = store.get(long.id)
    assert done is not None and done.status is JobStatus.succeeded, done.error
    assert (done.resumed_from, done.attempts, done.preemptions) == (
        yielded.checkpoint_iteration, 2, 1,
    )  # fmt: skip
    assert done.summary is not None and done.summary.iterations == LONG["max_iter"]
    opts = {k: v for k, v in LONG.items() if k != "method"}
    whole = invert(_matrix(), "adam", **opts)  # type: ignore[arg-type]
    _, blob = store.result(long.id)
    assert blob is not None
    np.testing.assert_array_equal(from_npy(blob), whole.inverse)
    points = [p.iteration for p in store.history(long.id)]
    assert points[0] == 0 and points[-1] == LONG["max_iter"] and points == sorted(set(points))


def test_a_checkpoint_over_the_size_limit_is_skipped_and_the_job_runs_on(
    settings: Settings, store: JobStore
) -> None:
    sent: list[str] = []
    runner = _runner(store, settings, sent, slice_s=0.1, checkpoint_s=0.05, checkpoint_max_bytes=0)
    long = submit(store, settings, _matrix(), send=False, **LONG)
    submit(store, settings, np.eye(2) * 2, send=False, method="exact")
    runner.run(long.id)
    done = store.get(long.id)
    assert done is not None and done.status is JobStatus.succeeded, done.error
    assert (done.preemptions, done.checkpoint_iteration, sent) == (0, None, [])
