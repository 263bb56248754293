"""`Prefer: wait` and change notices: a held request or an event stream wakes on the store's
notice of the worker's write, on Redis and on SQLite, with the polling fallback a minute away."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from ninv.settings import Settings
from ninv.store import open_store
from service.prefer import parse_wait
from tests.fake_worker import FakeWorker

#: The polling fallback of these apps: anything that answers sooner was woken by a notice.
FALLBACK_S = 60.0
#: Generous for a loaded two-core machine, and far below the fallback (a notice takes ms).
WOKEN_WITHIN_S = 2.0
MATRIX = {"matrix": [[1.0, 0.0], [0.0, 2.0]]}


@pytest.fixture(params=["redis", "sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def app(make_app: Callable[[Settings], FastAPI], make_settings: Callable[..., Settings]) -> FastAPI:
    app = make_app(make_settings(poll_s=FALLBACK_S, max_wait_s=30.0))
    app.state.sse.poll_s = FALLBACK_S
    app.state.sse.keepalive_s = FALLBACK_S
    return app


@pytest.fixture
def worker(settings: Settings) -> Iterator[FakeWorker]:
    """A worker's part with its own store connection, as a worker process has."""
    store = open_store(settings)
    yield FakeWorker(store)
    store.close()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("wait=5", 5.0),
        ("respond-async, wait=2.5", 2.5),
        ("WAIT = 7 ; foo=bar", 7.0),
        ('wait="3"', 3.0),
        ("wait=1000", 30.0),  # capped
        ("wait=0", None),
        ("wait=-1", None),
        ("wait=soon", None),
        ("wait=nan", None),
        ("return=minimal", None),
    ],
)
def test_parse_wait(header: str | None, expected: float | None) -> None:
    assert parse_wait(header, 30.0) == expected


def test_prefer_is_a_documented_header(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    for path, method in (("/invert", "post"), ("/jobs/{job_id}", "get")):
        headers = [p["name"] for p in paths[path][method]["parameters"] if p["in"] == "header"]
        assert "prefer" in headers, path


def test_held_get_wakes_when_the_worker_ends_the_job(
    app: FastAPI, serve: Callable[[FastAPI], str], worker: FakeWorker
) -> None:
    url = serve(app)
    job_id = httpx.post(f"{url}/invert", json=MATRIX).json()["id"]
    worker.claim(job_id)
    ended: dict[str, float] = {}

    def end_soon() -> None:
        time.sleep(0.3)
        ended["at"] = time.monotonic()
        worker.succeed(job_id, np.eye(2))

    threading.Thread(target=end_soon).start()
    held = httpx.get(f"{url}/jobs/{job_id}", headers={"Prefer": "wait=30"}, timeout=40)
    answered = time.monotonic()

    assert held.status_code == 200 and held.json()["status"] == "succeeded"
    assert held.headers["Preference-Applied"] == "wait=30"
    assert answered - ended["at"] < WOKEN_WITHIN_S


def test_prefer_wait_answers_as_without_it_when_the_job_does_not_end(
    app: FastAPI, serve: Callable[[FastAPI], str]
) -> None:
    url = serve(app)
    submitted = httpx.post(f"{url}/invert", json=MATRIX, headers={"Prefer": "wait=0.3"})
    assert submitted.status_code == 202 and submitted.json()["status"] == "queued"
    assert "Preference-Applied" not in submitted.headers
    job_id = submitted.json()["id"]
    held = httpx.get(f"{url}/jobs/{job_id}", headers={"Prefer": "wait=0.3"})
    assert held.status_code == 200 and held.json()["status"] == "queued"
    assert "Preference-Applied" not in held.headers
    # An Idempotency-Key replay is held on the first request's job.
    headers = {"Prefer": "wait=0.3", "Idempotency-Key": "k1"}
    first = httpx.post(f"{url}/invert", json=MATRIX, headers=headers)
    replay = httpx.post(f"{url}/invert", json=MATRIX, headers=headers)
    assert (first.status_code, replay.status_code) == (202, 200)
    assert replay.json()["id"] == first.json()["id"] and replay.json()["status"] == "queued"
    assert "Preference-Applied" not in replay.headers
    # A malformed preference is ignored (RFC 7240), not an error.
    assert httpx.post(f"{url}/invert", json=MATRIX, headers={"Prefer": "wait=x"}).status_code == 202


def test_a_replay_of_a_finished_job_is_answered_at_once(
    app: FastAPI, serve: Callable[[FastAPI], str], worker: FakeWorker
) -> None:
    url = serve(app)
    headers = {"Prefer": "wait=30", "Idempotency-Key": "k2"}
    first = httpx.post(f"{url}/invert", json=MATRIX, headers={"Idempotency-Key": "k2"})
    worker.run(first.json()["id"])
    replay = httpx.post(f"{url}/invert", json=MATRIX, headers=headers, timeout=40)
    assert replay.status_code == 200 and replay.json()["status"] == "succeeded"
    assert replay.headers["Preference-Applied"] == "wait=30"
    assert replay.json()["inverse"] == [[1.0, 0.0], [0.0, 0.5]]


def test_a_held_answer_carries_a_small_inverse_and_a_plain_one_does_not(
    app: FastAPI, serve: Callable[[FastAPI], str], worker: FakeWorker
) -> None:
    url = serve(app)
    thread, out = worker.run_next_in_thread(pause=0.02)
    held = httpx.post(f"{url}/invert", json=MATRIX, headers={"Prefer": "wait=30"}, timeout=40)
    thread.join(5)
    assert held.status_code == 200 and held.json()["status"] == "succeeded"
    job_id = held.json()["id"]
    result = httpx.get(f"{url}/jobs/{job_id}/result").json()
    assert held.json()["inverse"] == result["inverse"] == out["inverse"].tolist()
    assert held.json()["summary"] == result["summary"]
    # A held GET of the finished job carries it too; an unheld one never does.
    again = httpx.get(f"{url}/jobs/{job_id}", headers={"Prefer": "wait=30"}, timeout=40)
    assert again.json()["inverse"] == result["inverse"]
    assert httpx.get(f"{url}/jobs/{job_id}").json()["inverse"] is None
    assert httpx.get(f"{url}/jobs").json()["jobs"][0]["inverse"] is None


def test_an_inline_inverse_shows_non_finite_entries_as_null_like_result(
    app: FastAPI, serve: Callable[[FastAPI], str], worker: FakeWorker
) -> None:
    url = serve(app)
    job_id = httpx.post(f"{url}/invert", json=MATRIX).json()["id"]
    worker.run(job_id, np.array([[np.nan, 0.0], [np.inf, 0.5]]))
    held = httpx.get(f"{url}/jobs/{job_id}", headers={"Prefer": "wait=30"}, timeout=40)
    result = httpx.get(f"{url}/jobs/{job_id}/result").json()
    assert held.json()["inverse"] == result["inverse"] == [[None, 0.0], [None, 0.5]]


@pytest.mark.parametrize(("limit", "carried"), [(0, False), (7, False), (8, True)])
def test_an_inverse_over_the_inline_limit_is_left_to_result(
    make_app: Callable[[Settings], FastAPI],
    make_settings: Callable[..., Settings],
    serve: Callable[[FastAPI], str],
    worker: FakeWorker,
    limit: int,
    carried: bool,
) -> None:
    """A (2, 2, 2) batch has 8 entries: inline up to NINV_INLINE_MAX_ENTRIES, else null."""
    url = serve(make_app(make_settings(poll_s=FALLBACK_S, inline_max_entries=limit)))
    batch = {"matrix": [[[1.0, 0.0], [0.0, 2.0]], [[4.0, 0.0], [0.0, 8.0]]]}
    job_id = httpx.post(f"{url}/invert", json=batch).json()["id"]
    worker.run(job_id)
    held = httpx.get(f"{url}/jobs/{job_id}", headers={"Prefer": "wait=30"}, timeout=40)
    assert held.status_code == 200 and held.headers["Preference-Applied"] == "wait=30"
    inverse = httpx.get(f"{url}/jobs/{job_id}/result").json()["inverse"]
    assert held.json()["inverse"] == (inverse if carried else None)


def test_held_post_is_refused_like_any_other(app: FastAPI, serve: Callable[[FastAPI], str]) -> None:
    url = serve(app)
    bad = httpx.post(f"{url}/invert", json={"matrix": [[1, 2]]}, headers={"Prefer": "wait=5"})
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")


def test_events_wake_on_the_workers_writes(
    app: FastAPI, serve: Callable[[FastAPI], str], worker: FakeWorker
) -> None:
    url = serve(app)
    job_id = httpx.post(f"{url}/invert", json=MATRIX).json()["id"]
    worker.claim(job_id)
    arrivals: dict[str, float] = {}
    opened = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", f"{url}/jobs/{job_id}/events", timeout=FALLBACK_S) as stream:
            for line in stream.iter_lines():
                opened.set()  # the stream watches the job before its first line
                if line.startswith("event: "):
                    arrivals.setdefault(line.removeprefix("event: "), time.monotonic())
                    if line == "event: end":
                        return

    listener = threading.Thread(target=listen)
    listener.start()
    assert opened.wait(10)
    time.sleep(0.2)  # let the stream settle into its wait
    ticked = time.monotonic()
    worker.tick(job_id, 10)
    while "progress" not in arrivals and time.monotonic() - ticked < WOKEN_WITHIN_S:
        time.sleep(0.01)
    ended = time.monotonic()
    worker.succeed(job_id, np.eye(2))
    listener.join(FALLBACK_S)

    assert arrivals["progress"] - ticked < WOKEN_WITHIN_S
    assert arrivals["end"] - ended < WOKEN_WITHIN_S
