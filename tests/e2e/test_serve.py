"""`ninv serve` as a new user meets it: what it prints, and when."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.helpers import ROOT, ServerProcess, console_script, redis_settings, settings_env

pytestmark = pytest.mark.e2e


def test_serving_on_is_said_once_the_port_answers(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(settings_env(redis_settings()))
    said = server.log_path.read_text()
    assert said.count(f"serving on {server.url}") == 1
    # How to use the client from another shell (tests run in the venv: its own ninv-client).
    assert "ninv-client" in said
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_serving_on_is_not_said_when_the_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = subprocess.run(
            [console_script("ninv"), "serve", "--port", str(port)],
            cwd=ROOT,
            env=settings_env(redis_settings()),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert run.returncode != 0
    assert "serving on" not in run.stdout + run.stderr
    assert "address already in use" in run.stderr.lower()
