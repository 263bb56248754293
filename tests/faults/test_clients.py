"""Items 4 and 5 of issue 16, over real sockets against `ninv serve`: a client that leaves
mid-upload is no server error, and slow or idle clients cannot hold connections for ever."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import httpx
import pytest

from ninv.settings import Settings
from tests.faults.conftest import OwnRedis
from tests.helpers import ServerProcess, wait_for

UPLOAD = b"POST /invert HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture
def make_api(
    own_redis: OwnRedis, start_api: Callable[..., ServerProcess]
) -> Callable[..., ServerProcess]:
    def make(**overrides: object) -> ServerProcess:
        values: dict[str, object] = {"body_timeout_s": 1.0, "header_timeout_s": 1.0}
        settings: Settings = own_redis.settings(**{**values, **overrides})
        return start_api(settings)

    return make


@pytest.fixture
def api(make_api: Callable[..., ServerProcess]) -> ServerProcess:
    return make_api()


def test_uploads_dropped_midway_are_499_without_tracebacks(api: ServerProcess) -> None:
    for _ in range(20):
        sock = connect(api.url)
        sock.sendall(UPLOAD + b"Content-Length: 100000\r\n\r\n" + b'{"matrix": [[1.0, ' * 50)
        sock.close()
    metrics = ""

    def counted() -> bool:
        nonlocal metrics
        metrics = httpx.get(f"{api.url}/metrics", timeout=10).text
        return 'route="/invert",status="499"} 20.0' in metrics

    wait_for(counted, timeout=20, what="20 dropped uploads in the metrics")
    assert 'status="500"' not in metrics
    log = api.log_path.read_text()
    assert "Traceback" not in log
    assert log.count("POST /invert 499") == 20  # one line each


def test_a_body_shorter_than_its_length_is_a_408(api: ServerProcess) -> None:
    with connect(api.url) as sock:  # two pipelined requests: both answered
        sock.sendall(UPLOAD + b"Content-Length: 1000\r\n\r\n" + b'{"matrix": ')
        answer = read_all(sock)  # the server answers, then closes
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"application/problem+json" in answer


def test_a_trickling_body_is_cut_off(api: ServerProcess) -> None:
    """A byte at a time does not extend the body's deadline."""
    with connect(api.url) as sock:  # two pipelined requests: both answered
        sock.sendall(UPLOAD + b"Content-Length: 1000\r\n\r\n")
        sock.settimeout(0.2)
        answer = b""
        for _ in range(200):  # at most 40 s; the deadline is 1 s
            try:
                sock.sendall(b" ")
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:  # closed under our feet
                break
            break
    assert answer.startswith(b"HTTP/1.1 408 "), answer


def test_idle_and_slow_headers_are_closed(api: ServerProcess) -> None:
    idle = connect(api.url)
    slow = connect(api.url)
    slow.sendall(b"POST /invert HTTP/1.1\r\n")
    slow.settimeout(0.2)
    closed = False
    for _ in range(200):  # a header byte every 0.2 s does not extend the deadline
        try:
            slow.sendall(b"X")
            closed = slow.recv(1) == b""
        except TimeoutError:
            continue
        except OSError:
            closed = True
        break
    assert closed
    assert read_all(idle) == b""  # sent nothing: closed too
    idle.close()
    slow.close()


def test_the_header_deadline_spares_requests_whose_headers_are_in(api: ServerProcess) -> None:
    matrix = {"matrix": [[2.0, 0.0], [0.0, 2.0]]}
    with httpx.Client(base_url=api.url, timeout=30) as client:
        # No worker: held 2 s, twice the header deadline, then answered as queued.
        held = client.post("/invert", json=matrix, headers={"Prefer": "wait=2"})
        assert held.status_code == 202
        # The same kept-alive connection serves the next request.
        assert client.get(f"/jobs/{held.json()['id']}").status_code == 200
    with connect(api.url) as sock:  # two pipelined requests: both answered
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n" * 2)
        time.sleep(1.5)  # past the deadline: the second request's headers were in
        answers = read_all(sock)  # then idle: closed
    assert answers.count(b"HTTP/1.1 200 ") == 2


def test_connections_beyond_the_limit_are_503(make_api: Callable[..., ServerProcess]) -> None:
    api = make_api(max_connections=4, body_timeout_s=3.0)
    held = [connect(api.url) for _ in range(3)]  # the fourth is the one that gets the 503
    try:
        for sock in held:  # headers in, body pending: each holds its connection for 3 s
            sock.sendall(UPLOAD + b"Content-Length: 1000\r\n\r\n")
        # Let the server take those requests before the next connection counts against them.
        time.sleep(0.3)
        with connect(api.url) as extra:
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            assert extra.recv(65536).startswith(b"HTTP/1.1 503 ")
        for sock in held:
            assert read_all(sock).startswith(b"HTTP/1.1 408 ")
    finally:
        for sock in held:
            sock.close()
    assert httpx.get(f"{api.url}/healthz", timeout=10).status_code == 200
