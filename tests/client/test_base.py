"""The clients' I/O-free logic: requests, answers, errors, SSE parsing, retries, waiting."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import numpy as np
import pytest

from client._base import (
    JSON_MAX_ENTRIES,
    NPY_MEDIA_TYPE,
    BaseClient,
    RetryPolicy,
    build_options,
    error_from_response,
    inline_inverse,
    parse_result,
    parse_retry_after,
)
from client._wait import SSEParser, Waiter
from client.errors import (
    Conflict,
    InvalidInput,
    JobCancelled,
    JobFailed,
    NinvError,
    NotFound,
    PayloadTooLarge,
    ServerError,
    ServerUnavailable,
    Unauthorized,
    WaitTimeout,
)
from ninv.schemas import Job, Progress, SolveOptions, Summary

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def client(**kwargs: object) -> BaseClient:
    return BaseClient("http://ninv.test/", "k3y", **kwargs)  # type: ignore[arg-type]


# -- configuration ----------------------------------------------------------------------------


def test_config_from_arguments_env_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NINV_URL", raising=False)
    monkeypatch.delenv("NINV_API_KEY", raising=False)
    plain = BaseClient(None, None)
    assert (plain.base_url, plain.api_key) == ("http://127.0.0.1:8000", None)
    monkeypatch.setenv("NINV_URL", "http://env.test:9/")
    monkeypatch.setenv("NINV_API_KEY", "from-env")
    env = BaseClient(None, None)
    assert (env.base_url, env.api_key) == ("http://env.test:9", "from-env")
    explicit = BaseClient("http://arg.test", "from-arg")
    assert (explicit.base_url, explicit.api_key) == ("http://arg.test", "from-arg")
    injected = BaseClient(None, None, injected_base_url=httpx.URL("http://testserver"))
    assert injected.base_url == "http://testserver"


def test_job_ids_stay_one_path_segment() -> None:
    spec = client().job_request("../invert?x=1")
    assert spec.url == "http://ninv.test/jobs/..%2Finvert%3Fx%3D1"
    assert spec.headers["Authorization"] == "Bearer k3y"


# -- submit requests --------------------------------------------------------------------------


def test_small_matrix_travels_as_json_with_only_set_options() -> None:
    options = build_options(None, {"method": "cg", "tol": 1e-9, "lr_schedule": [[0, 0.05]]})
    spec = client().submit_request(np.eye(8), options)
    assert spec.headers["Content-Type"] == "application/json"
    body = json.loads(spec.content or b"")
    assert body == {
        "matrix": np.eye(8).tolist(),
        "method": "cg",
        "tol": 1e-9,
        "lr_schedule": [[0, 0.05]],
    }
    assert spec.params == {}
    assert len(spec.headers["Idempotency-Key"]) >= 16


def test_large_matrix_travels_as_npy_with_query_options() -> None:
    assert JSON_MAX_ENTRIES == 64
    matrix = np.arange(81, dtype=np.float32).reshape(9, 9)
    options = build_options(
        SolveOptions(max_iter=10, aux=False), {"lr_schedule": [(0, 0.05), (10_000, 0.025)]}
    )
    spec = client().submit_request(matrix, options, idempotency_key="key-1")
    assert spec.headers["Content-Type"] == NPY_MEDIA_TYPE
    assert spec.headers["Idempotency-Key"] == "key-1"
    sent = np.load(io.BytesIO(spec.content or b""), allow_pickle=False)
    assert sent.dtype == np.float32
    np.testing.assert_array_equal(sent, matrix)
    assert spec.params == {
        "max_iter": "10",
        "aux": "false",
        "lr_schedule": "[[0,0.05],[10000,0.025]]",
    }


def test_non_finite_small_matrix_goes_as_npy() -> None:
    spec = client().submit_request([[1.0, float("nan")], [0.0, 1.0]], SolveOptions())
    assert spec.headers["Content-Type"] == NPY_MEDIA_TYPE


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        ([[1, 2], [3]], r"the matrix is ragged: matrix\[1\] has 1 entry, matrix\[0\] has 2"),
        ([[[1.0]], [[1.0], [2.0]]], r"ragged: matrix\[1\] has 2 entries, matrix\[0\] has 1"),
        ([[1, 2], 3], r"ragged: matrix\[1\] is a number, matrix\[0\] is a list"),
        ([["a", "b"], ["c", "d"]], "real numbers, not text"),
        ([1.0, 2.0], "2-D"),
    ],
)
def test_bad_matrix_is_refused_before_sending(matrix: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        client().submit_request(matrix, SolveOptions())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "where"),
    [
        ({"method": "magic"}, "method"),
        ({"max_iter": 0}, "max_iter"),
        ({"lr_schedule": [(5, 0.1)]}, "lr_schedule"),
        ({"colour": "red"}, "colour"),
        ({"device": "gpu"}, "device"),
    ],
)
def test_bad_options_are_refused_before_sending(kwargs: dict[str, object], where: str) -> None:
    with pytest.raises(InvalidInput, match=f"invalid option {where}") as raised:
        build_options(None, kwargs)
    assert "pattern" not in str(raised.value) and "^" not in str(raised.value)


def test_option_errors_are_in_plain_words() -> None:
    with pytest.raises(InvalidInput) as typo:
        build_options(None, {"maxiter": 5})
    assert str(typo.value) == (
        "invalid option maxiter: not an option (did you mean 'max_iter'?); the options are "
        "method, max_iter, tol, lr_schedule, dtype, device, seed, stall_window, aux"
    )
    with pytest.raises(InvalidInput) as device:
        build_options(None, {"device": "gpu"})
    assert str(device.value) == (
        "invalid option device: device must be auto, cpu, cuda or cuda:N (N the GPU's number), "
        "not 'gpu'"
    )


def test_list_request_pages_and_status() -> None:
    spec = client().list_request("running", "c2", 10)
    assert spec.params == {"status": "running", "cursor": "c2", "limit": "10"}
    with pytest.raises(InvalidInput, match="unknown status 'sleeping'"):
        client().list_request("sleeping", None, None)


# -- answers and errors -----------------------------------------------------------------------


def answer(status: int, body: object = None, **headers: str) -> httpx.Response:
    request = httpx.Request("GET", "http://ninv.test/jobs/j1")
    if isinstance(body, bytes):
        return httpx.Response(status, content=body, headers=headers, request=request)
    return httpx.Response(
        status,
        json=body,
        headers={"content-type": "application/problem+json", **headers},
        request=request,
    )


def problem(status: int, detail: str, **extra: object) -> dict[str, object]:
    return {"type": "about:blank", "title": "T", "status": status, "detail": detail, **extra}


@pytest.mark.parametrize(
    ("status", "extra", "kind"),
    [
        (401, {}, Unauthorized),
        (403, {}, Unauthorized),
        (404, {}, NotFound),
        (409, {}, Conflict),
        (409, {"job_status": "running"}, Conflict),
        (409, {"job_status": "failed"}, JobFailed),
        (409, {"job_status": "cancelled"}, JobCancelled),
        (413, {}, PayloadTooLarge),
        (422, {"errors": [{"loc": ["matrix", 2], "msg": "ragged"}]}, InvalidInput),
        (400, {}, InvalidInput),
        (500, {}, ServerError),
        (503, {}, ServerUnavailable),
        (418, {}, NinvError),
    ],
)
def test_problem_maps_to_typed_error(
    status: int, extra: dict[str, object], kind: type[NinvError]
) -> None:
    error = error_from_response(
        answer(status, problem(status, "what went wrong", **extra)), result=True
    )
    assert type(error) is kind
    assert error.status == status
    assert error.detail == "what went wrong"
    assert error.problem is not None and error.problem.status == status
    assert "what went wrong" in str(error)


def test_job_status_409_is_a_conflict_outside_result() -> None:
    body = problem(409, "job j1 is cancelled", job_status="cancelled")
    assert type(error_from_response(answer(409, body))) is Conflict


def test_error_without_problem_body_still_reads_well() -> None:
    error = error_from_response(answer(502, b"<html>\nBad gateway\n</html>"))
    assert isinstance(error, ServerUnavailable)
    assert "\n" not in str(error)
    field_error = error_from_response(
        answer(422, {"title": "Invalid", "errors": [{"loc": ["matrix", 1], "msg": "ragged"}]})
    )
    assert str(field_error) == "invalid input: Invalid: matrix.1: ragged"


SUMMARY = Summary(
    method="adam",
    iterations=10,
    max_iter=10,
    loss=1e-3,
    residual=1e-2,
    aux_error=None,
    converged=False,
    reason="max_iter",
    cond=3.0,
    device="cpu",
    dtype="float64",
    elapsed_s=0.1,
)


def test_result_npy_and_json_forms() -> None:
    inverse = np.linalg.inv(np.array([[2.0, 1.0], [1.0, 3.0]]))
    buffer = io.BytesIO()
    np.save(buffer, inverse)
    npy = httpx.Response(
        200,
        content=buffer.getvalue(),
        headers={"content-type": NPY_MEDIA_TYPE},
        request=httpx.Request("GET", "http://ninv.test/jobs/a/result"),
    )
    got, summary = parse_result(npy)
    np.testing.assert_array_equal(got, inverse)
    assert summary is None
    as_json = httpx.Response(
        200,
        json={"inverse": inverse.tolist(), "summary": SUMMARY.model_dump(mode="json")},
        request=httpx.Request("GET", "http://ninv.test/jobs/a/result"),
    )
    got, summary = parse_result(as_json)
    np.testing.assert_array_equal(got, inverse)
    assert summary == SUMMARY
    garbage = httpx.Response(
        200,
        content=b"xx",
        headers={"content-type": NPY_MEDIA_TYPE},
        request=httpx.Request("GET", "http://ninv.test/jobs/a/result"),
    )
    with pytest.raises(ServerError, match="unreadable"):
        parse_result(garbage)


def test_an_inline_inverse_is_the_npy_result_bit_for_bit() -> None:
    """A held answer's inverse comes back in the solve's dtype, as `.npy` would bring it."""
    inverse = np.random.default_rng(0).standard_normal((2, 2)).astype(np.float32)
    inverse[0, 1] = np.nan  # a diverged entry travels as null
    cells = [[None if np.isnan(x) else x for x in row] for row in inverse.tolist()]
    wire = json.loads(json.dumps(cells))
    summary = SUMMARY.model_copy(update={"dtype": "float32"})
    got = inline_inverse(job("succeeded", summary=summary, inverse=wire))
    assert got is not None and got.dtype == np.float32
    np.testing.assert_array_equal(got, inverse)  # NaN where NaN, every other bit the same
    assert inline_inverse(job("succeeded", summary=summary)) is None  # not inline: fetch it


# -- retries ----------------------------------------------------------------------------------


def test_retry_policy_backs_off_and_honours_retry_after() -> None:
    policy = RetryPolicy(retries=3, backoff=0.5, max_backoff=1.5, max_retry_after=30)
    assert [policy.delay(a) for a in range(4)] == [0.5, 1.0, 1.5, None]
    assert policy.delay(0, retry_after=7.0) == 7.0
    assert policy.delay(1, retry_after=3600.0) == 30
    assert policy.delay(3, retry_after=1.0) is None


def test_parse_retry_after() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after("soon") is None
    later = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(later, now=NOW) == 90.0


# -- server-sent events -----------------------------------------------------------------------


def test_sse_parser_follows_the_spec() -> None:
    parser = SSEParser()
    lines = [
        "retry: 1000",
        "",
        ": keepalive",
        "",
        "event: progress",
        "id: 10",
        'data: {"a":',
        "data: 1}",
        "",
        "event:end",
        "data:x",
        "",
        "data: plain",
        "",
    ]
    events = [e for e in (parser.feed(line) for line in lines) if e is not None]
    assert [(e.event, e.data, e.id) for e in events] == [
        ("progress", '{"a":\n1}', "10"),
        ("end", "x", "10"),
        ("message", "plain", "10"),
    ]
    assert parser.last_event_id == "10"


def progress(iteration: int) -> Progress:
    return Progress(
        iteration=iteration,
        max_iter=100,
        loss=1.0 / (iteration + 1),
        residual=None,
        updated_at=NOW + timedelta(seconds=iteration),
    )


def job(status: str, **fields: object) -> Job:
    return Job(
        id="j1",
        status=status,
        options=SolveOptions(),
        n=2,
        input_dtype="float64",
        created_at=NOW,
        **fields,
    )


def test_waiter_reports_each_tick_once_and_returns_the_end() -> None:
    seen: list[int] = []
    waiter = Waiter("j1", None, lambda p: seen.append(p.iteration))
    for it in (1, 1, 2):
        event = f"event: progress\nid: {it}\ndata: {progress(it).model_dump_json()}\n"
        for line in [*event.splitlines(), ""]:
            assert waiter.feed_line(line) is None
    assert waiter.polled(job("running", progress=progress(2))) is None
    assert waiter.polled(job("running", progress=progress(3))) is None
    end = job("succeeded")
    assert waiter.feed_line("event: end") is None
    assert waiter.feed_line(f"data: {end.model_dump_json()}") is None
    assert waiter.feed_line("") == end
    assert seen == [1, 2, 3]
    assert waiter.stream_request(client()).headers["Last-Event-ID"] == "2"


def test_waiter_deadline_and_poll_backoff() -> None:
    now = [0.0]
    waiter = Waiter("j1", 10.0, None, clock=lambda: now[0])
    delays = [waiter.poll_delay() for _ in range(12)]
    assert delays[0] == Waiter.POLL_FIRST
    assert delays == sorted(delays) and delays[-1] == Waiter.POLL_MAX
    assert waiter.poll_delay(retry_after=2.0) == 2.0
    now[0] = 9.5
    assert waiter.poll_delay() == pytest.approx(0.5)  # never sleeps past the deadline
    assert waiter.stream_timeout().read == pytest.approx(0.5)
    now[0] = 10.0
    with pytest.raises(WaitTimeout, match="did not finish within 10 s"):
        waiter.remaining()


def test_waiter_gives_up_on_a_failing_stream() -> None:
    waiter = Waiter("j1", None, None)
    for _ in range(Waiter.MAX_STREAM_FAILURES):
        assert waiter.use_stream
        waiter.stream_failed()
    assert not waiter.use_stream
    other = Waiter("j1", None, None)
    ok = httpx.Response(
        200,
        headers={"content-type": "application/json"},
        request=httpx.Request("GET", "http://x/jobs/j1/events"),
    )
    assert other.stream_answer(ok) is False and not other.use_stream
    with pytest.raises(NotFound):
        other.stream_answer(answer(404, problem(404, "no such job")))
