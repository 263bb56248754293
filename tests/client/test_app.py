"""The blocking Client against the real app, served in-process, on the real Redis store."""

from __future__ import annotations

import io
from collections.abc import Callable

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from client import (
    Client,
    Conflict,
    InvalidInput,
    InverseResult,
    JobCancelled,
    JobFailed,
    NotConverged,
    NotFound,
    PayloadTooLarge,
    ServerUnavailable,
    Unauthorized,
    WaitTimeout,
)
from ninv.schemas import JobStatus, Progress
from ninv.store import JobStore
from tests.client.conftest import Relay, well_conditioned
from tests.fake_worker import FakeWorker


def test_submit_small_matrix_as_json_and_get(ninv: Client, store: JobStore) -> None:
    matrix = [[4.0, 1.0], [2.0, 3.0]]
    job = ninv.submit(matrix, method="cg", max_iter=500, tol=1e-9, seed=7)
    assert job.status == JobStatus.queued
    assert (job.n, job.batch) == (2, None)
    assert job.options.method == "cg" and job.options.max_iter == 500
    assert ninv.get(job.id) == job
    stored = np.load(io.BytesIO(store.load_matrices([job.id])[0] or b""), allow_pickle=False)
    np.testing.assert_array_equal(stored, matrix)


def test_submit_large_matrix_as_npy_keeps_every_bit(ninv: Client, store: JobStore) -> None:
    matrix = well_conditioned(12).astype(np.float32)
    job = ninv.submit(matrix, lr_schedule=[(0, 0.05), (100, 0.01)], dtype="float64", aux=False)
    assert job.options.lr_schedule == [(0, 0.05), (100, 0.01)]
    assert job.options.dtype == "float64" and job.options.aux is False
    assert job.input_dtype == "float32"
    stored = np.load(io.BytesIO(store.load_matrices([job.id])[0] or b""), allow_pickle=False)
    assert stored.dtype == np.float32
    np.testing.assert_array_equal(stored, matrix)


def test_batch_submit(ninv: Client) -> None:
    job = ninv.submit(np.stack([well_conditioned(3, seed) for seed in range(4)]))
    assert (job.batch, job.n) == (4, 3)


def test_idempotency_key(ninv: Client) -> None:
    first = ninv.submit(np.eye(3), idempotency_key="same-key")
    again = ninv.submit(np.eye(3), idempotency_key="same-key")
    assert again.id == first.id
    with pytest.raises(InvalidInput) as raised:
        ninv.submit(2 * np.eye(3), idempotency_key="same-key")
    assert raised.value.status == 422


def test_lost_answer_is_retried_with_the_same_key_and_makes_one_job(
    app: FastAPI, serve: Callable[[FastAPI], str]
) -> None:
    """The first POST reaches the app but its answer is lost; the retry must not make a job."""
    with httpx.Client(base_url=serve(app)) as http:
        relay = Relay(http, lambda r, n: "drop-answer" if r.method == "POST" and n == 1 else None)
        with Client(serve(app), transport=relay, backoff=0.01) as ninv:
            job = ninv.submit(well_conditioned(10))
            posts = [r for r in relay.requests if r.method == "POST"]
            assert len(posts) == 2
            keys = {r.headers["Idempotency-Key"] for r in posts}
            assert len(keys) == 1
            assert [j.id for j in ninv.list()] == [job.id]


def test_refused_connections_are_retried_then_reported(
    app: FastAPI, serve: Callable[[FastAPI], str]
) -> None:
    with httpx.Client(base_url=serve(app)) as http:
        relay = Relay(http, lambda r, n: "refuse" if n <= 2 else None)
        with Client(serve(app), transport=relay, backoff=0.01) as ninv:
            assert ninv.submit(np.eye(2)).status == JobStatus.queued
        down = Relay(http, lambda r, n: "refuse")
        with (
            Client(serve(app), transport=down, retries=2, backoff=0.01) as ninv,
            pytest.raises(ServerUnavailable, match="after 3 attempts"),
        ):
            ninv.get("anything")
        assert len(down.requests) == 3


def test_list_walks_every_page_newest_first(ninv: Client, worker: FakeWorker) -> None:
    ids = [ninv.submit(np.eye(2) * (k + 1)).id for k in range(5)]
    assert [job.id for job in ninv.list(page_size=2)] == ids[::-1]
    worker.run(ids[1])
    assert [job.id for job in ninv.list(JobStatus.succeeded, page_size=1)] == [ids[1]]
    assert [job.id for job in ninv.list("queued")] == [i for i in ids[::-1] if i != ids[1]]


def test_cancel_and_delete(ninv: Client, worker: FakeWorker) -> None:
    queued = ninv.submit(np.eye(2))
    with pytest.raises(Conflict, match="conflict"):
        ninv.delete(queued.id)
    assert ninv.cancel(queued.id).status == JobStatus.cancelled
    with pytest.raises(Conflict):
        ninv.cancel(queued.id)
    running = ninv.submit(np.eye(3))
    worker.claim(running.id)
    flagged = ninv.cancel(running.id)
    assert flagged.status == JobStatus.running and flagged.cancel_requested
    assert worker.tick(running.id, 20) is True
    worker.cancelled(running.id)
    assert ninv.wait(running.id).status == JobStatus.cancelled
    with pytest.raises(JobCancelled):
        ninv.result(running.id)
    ninv.delete(queued.id)
    with pytest.raises(NotFound) as raised:
        ninv.get(queued.id)
    assert raised.value.status == 404 and raised.value.detail


def test_result_history_and_summary_from_a_finished_job(ninv: Client, worker: FakeWorker) -> None:
    matrix = well_conditioned(9, seed=3)
    job = ninv.submit(matrix)
    with pytest.raises(Conflict, match="queued"):
        ninv.result(job.id)
    worker.run(job.id)
    inverse, summary = ninv.result(job.id)
    np.testing.assert_allclose(inverse, np.linalg.inv(matrix), rtol=0, atol=1e-12)
    assert summary == FakeWorker.summary()
    assert [p.iteration for p in ninv.history(job.id)] == [10, 100, 1000]
    done = ninv.get(job.id)
    assert done.status == JobStatus.succeeded and done.summary == summary


def test_failed_job(ninv: Client, worker: FakeWorker) -> None:
    job = ninv.submit(np.eye(2))
    worker.claim(job.id)
    worker.fail(job.id, "diverged: loss is nan")
    assert ninv.wait(job.id).status == JobStatus.failed
    with pytest.raises(JobFailed, match="diverged: loss is nan") as raised:
        ninv.result(job.id)
    assert raised.value.status == 409


def test_wait_follows_events_and_reports_progress(ninv: Client, worker: FakeWorker) -> None:
    thread, out = worker.run_next_in_thread()
    seen: list[Progress] = []
    job = ninv.submit(well_conditioned(4))
    done = ninv.wait(job.id, timeout=30, on_progress=seen.append)
    thread.join(5)
    assert done.status == JobStatus.succeeded and done.id == out["job_id"]
    assert [p.iteration for p in seen] == [10, 100, 1000]


def test_wait_falls_back_to_polling_when_the_stream_fails(
    app: FastAPI, worker: FakeWorker, serve: Callable[[FastAPI], str]
) -> None:
    with httpx.Client(base_url=serve(app)) as http:
        relay = Relay(http, lambda r, n: "refuse" if r.url.path.endswith("/events") else None)
        with Client(serve(app), transport=relay, retries=0) as ninv:
            thread, _ = worker.run_next_in_thread(pause=0.3)
            seen: list[int] = []
            job = ninv.submit(well_conditioned(3))
            done = ninv.wait(job.id, timeout=30, on_progress=lambda p: seen.append(p.iteration))
            thread.join(5)
    assert done.status == JobStatus.succeeded
    assert seen and seen == sorted(seen)
    streams = [r for r in relay.requests if r.url.path.endswith("/events")]
    assert len(streams) == 3  # then it stopped trying the stream


def test_wait_timeout(app: FastAPI, serve: Callable[[FastAPI], str]) -> None:
    with httpx.Client(base_url=serve(app)) as http:
        relay = Relay(http, lambda r, n: "refuse" if r.url.path.endswith("/events") else None)
        with Client(serve(app), transport=relay, retries=0) as ninv:
            job = ninv.submit(np.eye(2))
            with pytest.raises(WaitTimeout, match=f"job {job.id} did not finish within 0.5 s"):
                ninv.wait(job.id, timeout=0.5)


def test_invert_timeout_names_the_whole_wait(ninv: Client) -> None:
    # No worker: the submission's hold and the wait after it share the one timeout.
    with pytest.raises(WaitTimeout, match=r"did not finish within 0\.5 s"):
        ninv.invert(np.eye(2), timeout=0.5)


def test_invert_end_to_end_on_the_store(ninv: Client, worker: FakeWorker) -> None:
    matrix = well_conditioned(10, seed=1)
    thread, out = worker.run_next_in_thread(pause=0.02)
    inverse = ninv.invert(matrix, method="newton-schulz", timeout=30)
    thread.join(5)
    np.testing.assert_allclose(inverse, np.linalg.inv(matrix), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(inverse, out["inverse"])


def test_invert_raises_not_converged_with_the_inverse_and_summary(
    ninv: Client, worker: FakeWorker
) -> None:
    matrix = well_conditioned(5, seed=3)
    thread, out = worker.run_next_in_thread(pause=0.02, converged=False)
    with pytest.raises(NotConverged, match="without reaching its tolerance") as raised:
        ninv.invert(matrix, timeout=30)
    thread.join(5)
    error = raised.value
    np.testing.assert_array_equal(error.inverse, out["inverse"])
    assert not error.summary.converged and error.summary.warnings
    assert "residual 0.002 > tol 0.0001" in str(error)
    # Told to accept it, invert returns the inverse; result() carries the summary with it.
    thread, out = worker.run_next_in_thread(pause=0.02, converged=False)
    inverse = ninv.invert(matrix, timeout=30, allow_unconverged=True)
    thread.join(5)
    np.testing.assert_array_equal(inverse, out["inverse"])
    result = ninv.result(out["job_id"])
    assert isinstance(result, InverseResult) and result.summary.converged is False
    np.testing.assert_array_equal(result.inverse, inverse)


@pytest.mark.parametrize(("inline_max_entries", "sent"), [(16384, 1), (0, 2)])
def test_invert_of_a_small_job_is_one_request(
    make_app: Callable[..., FastAPI],
    serve: Callable[[FastAPI], str],
    inline_max_entries: int,
    sent: int,
) -> None:
    """The held answer carries the inverse; with inlining off, the result is fetched."""
    app = make_app(inline_max_entries=inline_max_entries)
    worker = FakeWorker(app.state.resources.store)
    matrix = well_conditioned(5, seed=5)
    url = serve(app)
    with httpx.Client(base_url=url) as http:
        relay = Relay(http)
        with Client(url, transport=relay) as ninv:
            thread, out = worker.run_next_in_thread(pause=0.02)
            inverse = ninv.invert(matrix, timeout=30)
            thread.join(5)
            np.testing.assert_array_equal(inverse, out["inverse"])
            assert [r.method for r in relay.requests] == ["POST", "GET"][:sent]
            # Unconverged, it is still NotConverged, with the same inverse and summary.
            thread, out = worker.run_next_in_thread(pause=0.02, converged=False)
            with pytest.raises(NotConverged) as raised:
                ninv.invert(matrix, timeout=30)
            thread.join(5)
    np.testing.assert_array_equal(raised.value.inverse, out["inverse"])
    assert raised.value.summary == FakeWorker.summary(converged=False)
    assert len(relay.requests) == 2 * sent


def test_invert_raises_job_failed(ninv: Client, worker: FakeWorker) -> None:
    thread, _ = worker.run_next_in_thread(pause=0.02, fail="worker lost after 3 attempts")
    with pytest.raises(JobFailed, match="worker lost after 3 attempts") as raised:
        ninv.invert(np.eye(3), timeout=30)
    thread.join(5)
    assert raised.value.job is not None and raised.value.job.status == JobStatus.failed


@pytest.mark.parametrize(
    ("matrix", "kind", "words"),
    [
        ([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], InvalidInput, "square"),
        ([[1.0, float("nan")], [0.0, 1.0]], InvalidInput, ""),
        (np.zeros((0, 0)), InvalidInput, ""),
    ],
    ids=["non-square", "nan", "empty"],
)
def test_server_rejections_are_typed(
    ninv: Client, matrix: object, kind: type[Exception], words: str
) -> None:
    with pytest.raises(kind) as raised:
        ninv.submit(matrix)  # type: ignore[arg-type]
    error = raised.value
    assert getattr(error, "status", None) in (400, 413, 422)
    assert getattr(error, "problem", None) is not None
    assert words in str(error)


def test_too_large(make_app: Callable[..., FastAPI], make_client: Callable[..., Client]) -> None:
    ninv = make_client(make_app(max_n=8))
    with pytest.raises(PayloadTooLarge, match="limit") as raised:
        ninv.submit(well_conditioned(9))
    assert raised.value.status == 413


def test_auth_and_isolation(
    make_app: Callable[..., FastAPI], make_client: Callable[..., Client]
) -> None:
    app = make_app(api_keys="key-one,key-two")
    one = make_client(app, api_key="key-one")
    two = make_client(app, api_key="key-two")
    job = one.submit(np.eye(2))
    with pytest.raises(NotFound):
        two.get(job.id)
    assert list(two.list()) == []
    with pytest.raises(Unauthorized) as raised:
        make_client(app, api_key="wrong").get(job.id)
    assert raised.value.status == 401
    with pytest.raises(Unauthorized):
        make_client(app).submit(np.eye(2))


def test_lost_answers_to_cancel_and_delete_are_not_errors(
    app: FastAPI, serve: Callable[[FastAPI], str]
) -> None:
    """A retried cancel or delete whose first attempt acted reports success, not 409/404."""

    def drop_first(method: str) -> Callable[[httpx.Request, int], str | None]:
        seen: list[httpx.Request] = []

        def hook(request: httpx.Request, count: int) -> str | None:
            if request.method == method:
                seen.append(request)
                return "drop-answer" if len(seen) == 1 else None
            return None

        return hook

    with httpx.Client(base_url=serve(app)) as http:
        plain = Client(serve(app))
        job = plain.submit(np.eye(2))
        with Client(serve(app), transport=Relay(http, drop_first("POST")), backoff=0.01) as ninv:
            assert ninv.cancel(job.id).status == JobStatus.cancelled
        with Client(serve(app), transport=Relay(http, drop_first("DELETE")), backoff=0.01) as ninv:
            ninv.delete(job.id)
        with pytest.raises(NotFound):
            plain.get(job.id)
        plain.close()
