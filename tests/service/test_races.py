"""Requests that race on one job, over real HTTP (uvicorn) on both real stores."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from ninv.store import JobStore
from tests.fake_worker import FakeWorker

RACERS = 8


def race_deletes(http: httpx.Client, job_id: str) -> list[int]:
    """RACERS threads DELETE the job at once; their status codes."""
    start = threading.Barrier(RACERS)
    statuses: list[int] = []

    def delete() -> None:
        start.wait()
        statuses.append(http.delete(f"/jobs/{job_id}").status_code)

    threads = [threading.Thread(target=delete) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return statuses


@pytest.mark.parametrize("backend", ["redis", "sqlite"], indirect=True)
def test_concurrent_deletes_one_succeeds_the_rest_are_404(
    app: FastAPI, store: JobStore, serve: Callable[[FastAPI], str]
) -> None:
    url = serve(app)
    with httpx.Client(base_url=url, timeout=30) as http:
        for _ in range(5):
            job_id = http.post("/invert", json={"matrix": [[2.0, 0.0], [0.0, 4.0]]}).json()["id"]
            FakeWorker(store).run(job_id, np.eye(2))
            assert Counter(race_deletes(http, job_id)) == {204: 1, 404: RACERS - 1}
            assert store.get(job_id) is None
