"""kill -9 a real worker mid-job: the next worker resumes from the job's last checkpoint, and the
result equals an uninterrupted run's bit for bit (Redis and the embedded default)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ninv.schemas import JobStatus
from ninv.settings import Settings
from ninv.store import open_store
from tests.fake_worker import load_result
from tests.helpers import (
    WorkerProcess,
    drop_redis_prefix,
    load_npy,
    redis_settings,
    submit,
    wait_finished,
    wait_for,
)
from worker.solver import invert

pytestmark = pytest.mark.e2e

#: n = 48 runs on the solver's one-thread path in both processes, so iterates compare exactly.
#: The stall stop is off, so the job runs all MAX_ITER steps (~1.6 s), long after its first
#: checkpoint (~0.3 s): with it on, the job stalled ~0.03 s after that checkpoint and could
#: finish before the kill.
N, MAX_ITER, SEED = 48, 150_000, 21
OPTIONS = {
    "method": "adam",
    "dtype": "float64",
    "seed": SEED,
    "max_iter": MAX_ITER,
    "stall_window": 0,
}


def _kill_and_resume(settings: Settings, start_worker: Callable[..., WorkerProcess]) -> None:
    store = open_store(settings)
    matrix = np.random.default_rng(SEED).standard_normal((N, N)) + N * np.eye(N)
    first = start_worker(settings)
    job = submit(store, settings, matrix, **OPTIONS)

    def checkpointed() -> bool:
        got = store.get(job.id)
        return got is not None and (got.checkpoint_iteration or 0) > 0 and got.attempts == 1

    wait_for(checkpointed, timeout=60, what="a checkpoint")
    first.kill()
    killed = store.get(job.id)
    assert killed is not None and killed.status is JobStatus.running
    saved_at = killed.checkpoint_iteration
    assert saved_at is not None and 0 < saved_at < MAX_ITER

    start_worker(settings)
    done = wait_finished(store, job.id, timeout=180)

    assert done.status is JobStatus.succeeded, done.error
    assert (done.attempts, done.resumed_from) == (2, saved_at)
    assert store.load_checkpoint(job.id) is None
    blob = load_result(store, job.id)
    assert blob is not None
    whole = invert(
        matrix, "adam", dtype="float64", device="cpu", seed=SEED, max_iter=MAX_ITER, stall_window=0
    )
    assert done.summary is not None
    assert (done.summary.iterations, done.summary.reason) == (whole.iterations, whole.reason)
    np.testing.assert_array_equal(load_npy(blob), whole.inverse)
    store.close()


def test_a_killed_workers_job_resumes_from_its_checkpoint_on_redis(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    settings = redis_settings(lease_s=5.0, progress_every_s=0.1, checkpoint_s=0.3)
    try:
        _kill_and_resume(settings, start_worker)
    finally:
        drop_redis_prefix(settings.redis_prefix)


def test_a_killed_workers_job_resumes_from_its_checkpoint_embedded(
    tmp_path: Path, start_worker: Callable[..., WorkerProcess]
) -> None:
    embedded = Settings(
        data_dir=tmp_path / "data", lease_s=5.0, progress_every_s=0.1, checkpoint_s=0.3
    )
    assert embedded.embedded
    _kill_and_resume(embedded, start_worker)


def test_a_long_job_yields_its_worker_to_short_ones_and_resumes(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    settings = redis_settings(lease_s=5.0, progress_every_s=0.1, slice_s=0.5)
    store = open_store(settings)
    try:
        start_worker(settings)
        gaussian = np.random.default_rng(0).standard_normal((128, 128))
        long = submit(store, settings, gaussian, max_iter=50_000_000)

        def running() -> bool:
            got = store.get(long.id)
            return got is not None and got.progress is not None

        wait_for(running, timeout=60, what="the long job to run")
        short = [submit(store, settings, np.eye(3) * (i + 2), method="exact") for i in range(3)]
        for job in short:
            assert wait_finished(store, job.id, timeout=60).status is JobStatus.succeeded

        def resumed() -> bool:
            got = store.get(long.id)
            return (
                got is not None and got.status is JobStatus.running and got.resumed_from is not None
            )

        wait_for(resumed, timeout=60, what="the long job to resume")
        back = store.get(long.id)
        assert back is not None and back.preemptions >= 1 and back.finished_at is None
        assert back.resumed_from is not None and back.resumed_from > 0
        store.request_cancel(long.id)
        assert wait_finished(store, long.id, timeout=30).status is JobStatus.cancelled
    finally:
        store.close()
        drop_redis_prefix(settings.redis_prefix)
