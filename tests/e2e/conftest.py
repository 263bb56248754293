"""Fixtures for end-to-end tests: the API (`ninv serve`) as a real process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import ServerProcess


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start `ninv serve` processes; every one is stopped at teardown."""
    started: list[ServerProcess] = []

    def start(env: dict[str, str], *, port: int | None = None) -> ServerProcess:
        server = ServerProcess(env, tmp_path / f"server-{len(started)}.log", port=port)
        started.append(server)
        server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()
