"""The whole service as users run it: `ninv serve`, workers and `ninv-client`, as processes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ninv.schemas import JobStatus
from ninv.settings import Settings
from ninv.store import open_store
from tests.helpers import (
    ROOT,
    ServerProcess,
    WorkerProcess,
    console_script,
    settings_env,
    wait_finished,
    wait_for,
)

pytestmark = pytest.mark.e2e


def client(
    server: ServerProcess, *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [console_script("ninv-client"), "--url", server.url, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_matrix(path: Path, n: int = 10, seed: int = 0) -> np.ndarray:
    matrix = np.random.default_rng(seed).standard_normal((n, n)) + n * np.eye(n)
    np.save(path, matrix)
    return matrix


def submit_and_wait(server: ServerProcess, tmp_path: Path) -> None:
    matrix = write_matrix(tmp_path / "m.npy")
    out = tmp_path / "inv.npy"

    done = client(
        server,
        "submit",
        str(tmp_path / "m.npy"),
        "--method",
        "newton-schulz",
        "--dtype",
        "float64",
        "--wait",
        "-o",
        str(out),
    )

    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(np.load(out), np.linalg.inv(matrix), atol=1e-10)


def test_submit_and_wait_over_redis(
    settings: Settings,
    tmp_path: Path,
    start_server: Callable[..., ServerProcess],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    server = start_server(settings_env(settings))
    start_worker(settings)
    submit_and_wait(server, tmp_path)


def test_submit_and_wait_on_the_embedded_default(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    embedded = Settings(data_dir=tmp_path / "data", progress_every_s=0.1)
    server = start_server(settings_env(embedded))  # starts its own worker
    submit_and_wait(server, tmp_path)


def test_a_killed_worker_does_not_lose_the_job(
    settings: Settings,
    tmp_path: Path,
    start_server: Callable[..., ServerProcess],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    server = start_server(settings_env(settings))
    first = start_worker(settings)
    matrix = write_matrix(tmp_path / "m.npy", n=96, seed=5)  # about a second to converge
    submitted = client(
        server,
        "submit",
        str(tmp_path / "m.npy"),
        "--max-iter",
        "120000",
        "--dtype",
        "float64",
        "--json",
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)["id"]
    store = open_store(settings)
    wait_for(
        lambda: store.get(job_id).progress is not None,  # type: ignore[union-attr]
        what="progress",
    )

    first.kill()
    start_worker(settings)
    done = wait_finished(store, job_id, timeout=180)

    assert done.status is JobStatus.succeeded and done.attempts == 2
    fetched = client(server, "result", job_id, "-o", str(tmp_path / "inv.npy"))
    assert fetched.returncode == 0, fetched.stderr
    np.testing.assert_allclose(np.load(tmp_path / "inv.npy"), np.linalg.inv(matrix), atol=1e-4)
    store.close()


def test_restarting_the_api_loses_no_queued_job(
    settings: Settings,
    tmp_path: Path,
    start_server: Callable[..., ServerProcess],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    server = start_server(settings_env(settings))
    write_matrix(tmp_path / "m.npy", n=6)
    ids = []
    for _ in range(3):
        submitted = client(
            server, "submit", str(tmp_path / "m.npy"), "--method", "newton-schulz", "--json"
        )
        assert submitted.returncode == 0, submitted.stderr
        ids.append(json.loads(submitted.stdout)["id"])

    server.stop()
    server = start_server(settings_env(settings), port=server.port)
    start_worker(settings)

    for job_id in ids:
        status = client(server, "status", job_id, "--json")
        assert status.returncode == 0, status.stderr
    store = open_store(settings)
    assert all(wait_finished(store, job_id).status is JobStatus.succeeded for job_id in ids)
    store.close()
