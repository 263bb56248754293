"""Shared test helpers: real Redis settings, worker processes, jobs created as the API does."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import redis

from ninv.jobs import JobRecord
from ninv.npy import from_npy, to_npy
from ninv.queue import make_celery, wake
from ninv.schemas import FINISHED, SolveOptions
from ninv.settings import Settings
from ninv.store import JobStore

REDIS_URL = "redis://127.0.0.1:6379/0"
ROOT = Path(__file__).resolve().parent.parent


def redis_settings(**overrides: object) -> Settings:
    """Settings on the real Redis under a fresh key prefix."""
    values: dict[str, object] = {
        "redis_url": REDIS_URL,
        "redis_prefix": f"ninv-test-{uuid.uuid4().hex[:12]}",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def drop_redis_prefix(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def settings_env(settings: Settings) -> dict[str, str]:
    """The NINV_* environment that reproduces these settings in a child process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NINV_")}
    for name, value in settings.model_dump(exclude_none=True).items():
        env[f"NINV_{name.upper()}"] = str(value)
    env["PYTHONUNBUFFERED"] = "1"
    return env


npy_bytes = to_npy
load_npy = from_npy


def submit(
    store: JobStore,
    settings: Settings,
    matrix: np.ndarray,
    *,
    owner: str = "tests",
    send: bool = True,
    **options: object,
) -> JobRecord:
    """Create a job and wake a worker for it, exactly as the API's POST /invert does."""
    job = JobRecord.queued(
        SolveOptions.model_validate(options),
        n=matrix.shape[-1],
        batch=matrix.shape[0] if matrix.ndim == 3 else None,
        input_dtype=str(matrix.dtype),
        owner=owner,
        batch_max_n=settings.batch_max_n,
    )
    stored, _, _ = store.create(job, npy_bytes(matrix))
    if send:
        wake(make_celery(settings), store, pending_s=settings.lease_s)
    return stored


def wait_for(
    predicate: Callable[[], bool], *, timeout: float = 60.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_finished(store: JobStore, job_id: str, *, timeout: float = 60.0) -> JobRecord:
    def finished() -> bool:
        job = store.get(job_id)
        return job is not None and job.status in FINISHED

    wait_for(finished, timeout=timeout, what=f"job {job_id} to finish")
    job = store.get(job_id)
    assert job is not None
    return job


class WorkerProcess:
    """A real `python -m worker` process; stopped (or killed) on exit."""

    def __init__(self, settings: Settings, log_path: Path, *, device: str = "cpu") -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "--device", device, "--loglevel", "INFO"],
            cwd=ROOT,
            env=settings_env(settings),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited early:\n{self.log_path.read_text()[-3000:]}")
            return b"ready." in self.log_path.read_bytes()

        wait_for(ready, timeout=timeout, what="the worker to be ready")

    def kill(self) -> None:
        """kill -9: the worker dies mid-job without a chance to clean up."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def console_script(name: str) -> str:
    """The venv's own console script, so tests run the commands users run."""
    return str(Path(sys.executable).parent / name)


class ServerProcess:
    """A real `ninv serve` process on a free loopback port."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        *,
        port: int | None = None,
        args: list[str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                console_script("ninv"),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                *(args or []),
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 90.0) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.log_path.read_text()[-3000:]}")
            try:
                return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=timeout, what=f"the API on {self.url} to be ready")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()
