"""AsyncClient against the real app in-process (httpx.ASGITransport) on the real Redis store."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from fastapi import FastAPI

from client import (
    AsyncClient,
    Conflict,
    InvalidInput,
    InverseResult,
    JobFailed,
    NotConverged,
    NotFound,
    ServerUnavailable,
    WaitTimeout,
)
from ninv.schemas import JobStatus, Progress
from tests.client.conftest import AsyncRelay, well_conditioned
from tests.fake_worker import FakeWorker

pytestmark = pytest.mark.anyio


def client(app: FastAPI, **kwargs: object) -> AsyncClient:
    transport = kwargs.pop("transport", None) or AsyncRelay(app)
    return AsyncClient("http://testserver", transport=transport, backoff=0.01, **kwargs)  # type: ignore[arg-type]


async def test_submit_get_list_cancel_delete(app: FastAPI, worker: FakeWorker) -> None:
    async with client(app) as ninv:
        small = await ninv.submit([[2.0, 0.0], [0.0, 2.0]], method="exact")
        large = await ninv.submit(well_conditioned(10), max_iter=50)
        assert (await ninv.get(small.id)).options.method == "exact"
        assert [job.id async for job in ninv.list(page_size=1)] == [large.id, small.id]
        cancelled = await ninv.cancel(small.id)
        assert cancelled.status == JobStatus.cancelled
        with pytest.raises(Conflict):
            await ninv.delete(large.id)
        await ninv.delete(small.id)
        with pytest.raises(NotFound):
            await ninv.get(small.id)
        with pytest.raises(InvalidInput, match="square"):
            await ninv.submit([[1.0, 2.0]])


async def test_result_and_history(app: FastAPI, worker: FakeWorker) -> None:
    matrix = well_conditioned(8, seed=4)
    async with client(app) as ninv:
        job = await ninv.submit(matrix)
        worker.run(job.id)
        inverse, summary = await ninv.result(job.id)
        np.testing.assert_allclose(inverse, np.linalg.inv(matrix), rtol=0, atol=1e-12)
        assert summary.iterations == 1000
        assert [p.loss for p in await ninv.history(job.id)] == [0.1, 0.01, 0.001]


async def test_wait_follows_events(app: FastAPI, worker: FakeWorker) -> None:
    thread, out = worker.run_next_in_thread()
    seen: list[Progress] = []
    async with client(app) as ninv:
        job = await ninv.submit(well_conditioned(3))
        done = await ninv.wait(job.id, timeout=30, on_progress=seen.append)
    thread.join(5)
    assert done.status == JobStatus.succeeded and done.id == out["job_id"]
    assert [p.iteration for p in seen] == [10, 100, 1000]


async def test_wait_polls_when_the_stream_fails_and_times_out(app: FastAPI) -> None:
    relay = AsyncRelay(app, lambda r, n: "refuse" if r.url.path.endswith("/events") else None)
    async with client(app, transport=relay, retries=0) as ninv:
        job = await ninv.submit(np.eye(2))
        with pytest.raises(WaitTimeout):
            await ninv.wait(job.id, timeout=1.5)
    assert sum(r.url.path.endswith("/events") for r in relay.requests) == 3
    assert sum(r.url.path == f"/jobs/{job.id}" for r in relay.requests) >= 5


async def test_invert_and_failure(app: FastAPI, worker: FakeWorker) -> None:
    matrix = well_conditioned(6, seed=2)
    async with client(app) as ninv:
        thread, _ = worker.run_next_in_thread(pause=0.02)
        inverse = await ninv.invert(matrix, timeout=30)
        thread.join(5)
        np.testing.assert_allclose(inverse, np.linalg.inv(matrix), rtol=0, atol=1e-12)
        thread, _ = worker.run_next_in_thread(pause=0.02, fail="diverged")
        with pytest.raises(JobFailed, match="diverged"):
            await ninv.invert(matrix, timeout=30)
        thread.join(5)


async def test_invert_raises_not_converged_unless_allowed(app: FastAPI, worker: FakeWorker) -> None:
    matrix = well_conditioned(5, seed=4)
    async with client(app) as ninv:
        thread, out = worker.run_next_in_thread(pause=0.02, converged=False)
        with pytest.raises(NotConverged) as raised:
            await ninv.invert(matrix, timeout=30)
        thread.join(5)
        np.testing.assert_array_equal(raised.value.inverse, out["inverse"])
        assert raised.value.summary.reason == "max_iter" and not raised.value.summary.converged
        thread, out = worker.run_next_in_thread(pause=0.02, converged=False)
        inverse = await ninv.invert(matrix, timeout=30, allow_unconverged=True)
        thread.join(5)
        np.testing.assert_array_equal(inverse, out["inverse"])
        result = await ninv.result(out["job_id"])
        assert isinstance(result, InverseResult) and not result.summary.converged


@pytest.mark.parametrize(("inline_max_entries", "sent"), [(16384, 1), (0, 2)])
async def test_invert_of_a_small_job_is_one_request(
    make_app: Callable[..., FastAPI], inline_max_entries: int, sent: int
) -> None:
    """The held answer carries the inverse; with inlining off, the result is fetched."""
    app = make_app(inline_max_entries=inline_max_entries)
    worker = FakeWorker(app.state.resources.store)
    matrix = well_conditioned(5, seed=5)
    relay = AsyncRelay(app)
    async with client(app, transport=relay) as ninv:
        thread, out = worker.run_next_in_thread(pause=0.02)
        inverse = await ninv.invert(matrix, timeout=30)
        thread.join(5)
        np.testing.assert_array_equal(inverse, out["inverse"])
        assert [r.method for r in relay.requests] == ["POST", "GET"][:sent]
        # Unconverged, it is still NotConverged, with the same inverse and summary.
        thread, out = worker.run_next_in_thread(pause=0.02, converged=False)
        with pytest.raises(NotConverged) as raised:
            await ninv.invert(matrix, timeout=30)
        thread.join(5)
    np.testing.assert_array_equal(raised.value.inverse, out["inverse"])
    assert raised.value.summary == FakeWorker.summary(converged=False)
    assert len(relay.requests) == 2 * sent


async def test_lost_answer_is_retried_with_the_same_key(app: FastAPI) -> None:
    relay = AsyncRelay(app, lambda r, n: "drop-answer" if r.method == "POST" and n == 1 else None)
    async with client(app, transport=relay) as ninv:
        job = await ninv.submit(well_conditioned(9))
        assert [j.id async for j in ninv.list()] == [job.id]
    posts = [r for r in relay.requests if r.method == "POST"]
    assert len(posts) == 2 and len({r.headers["Idempotency-Key"] for r in posts}) == 1


async def test_unreachable() -> None:
    async with AsyncClient("http://127.0.0.1:1", retries=1, backoff=0.01) as ninv:
        with pytest.raises(ServerUnavailable, match=r"cannot reach ninv at http://127\.0\.0\.1:1"):
            await ninv.get("x")
