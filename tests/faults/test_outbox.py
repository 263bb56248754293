"""Item 1 of issue 16: a job stored without a broker message (the API killed between storing
it and sending it) still runs: the store is the record, the sweeper re-sends it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ninv.schemas import JobStatus
from ninv.settings import Settings
from ninv.store import open_store
from tests.faults.conftest import OwnRedis
from tests.helpers import WorkerProcess, submit, wait_finished


@pytest.mark.parametrize("mode", ["redis", "embedded"])
def test_a_job_stored_without_a_message_runs(
    mode: str,
    own_redis: OwnRedis,
    tmp_path: Path,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    if mode == "redis":
        settings = own_redis.settings(requeue_after_s=1.0)
    else:
        settings = Settings(
            data_dir=tmp_path / "state", lease_s=5.0, progress_every_s=0.1, requeue_after_s=1.0
        )
    store = open_store(settings)
    try:
        # The worker is up first, so its start-up re-send is not what saves the job.
        start_worker(settings)
        job = submit(store, settings, np.eye(3) * 2.0, send=False, method="exact")
        done = wait_finished(store, job.id, timeout=45)
        assert done.status == JobStatus.succeeded
        assert done.attempts == 1
    finally:
        store.close()
