"""Fixtures for the fault tests: a Redis of their own (its own port, its own folder), which a
test may fill to its maxmemory, and the API and workers as real processes on it."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from ninv.settings import Settings
from tests.helpers import ServerProcess, free_port, settings_env, wait_for


class OwnRedis:
    """A redis-server on a free port in a temporary folder, with noeviction: when memory runs
    out it refuses writes (OOM) rather than drop jobs, as compose.yaml configures it."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        folder.mkdir(parents=True, exist_ok=True)
        self._log = (folder / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(folder),
                "--save", "",
                "--appendonly", "no",
                "--maxmemory-policy", "noeviction",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.client = redis.Redis.from_url(self.url)

        def answers() -> bool:
            try:
                return bool(self.client.ping())
            except redis.ConnectionError:
                return False

        wait_for(answers, timeout=10, what="the test's own redis-server")

    def fill(self) -> None:
        """Make Redis full: its maxmemory just under what it uses, so every write is refused."""
        used = int(self.client.info("memory")["used_memory"])
        self.client.config_set("maxmemory", max(1, used - 1024 * 1024))
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            self.client.set("probe", b"x")

    def free(self) -> None:
        """Give Redis room again (as an operator, or expiring jobs, would)."""
        self.client.config_set("maxmemory", 0)

    def settings(self, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "redis_url": self.url,
            "redis_prefix": f"faults-{uuid.uuid4().hex[:8]}",
            "lease_s": 5.0,
            "progress_every_s": 0.1,
        }
        return Settings(**{**values, **overrides})  # type: ignore[arg-type]

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture
def start_api(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start `ninv serve` processes for these settings (no embedded worker); stopped after."""
    started: list[ServerProcess] = []

    def start(settings: Settings, *, ready: bool = True) -> ServerProcess:
        server = ServerProcess(
            settings_env(settings), tmp_path / f"api-{len(started)}.log", args=["--no-worker"]
        )
        started.append(server)
        if ready:
            server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()
