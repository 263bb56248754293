"""Redis mode as a new operator meets it: the API up, no worker yet, then one (all processes)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from ninv.settings import Settings
from tests.helpers import ROOT, ServerProcess, WorkerProcess, console_script, settings_env

pytestmark = pytest.mark.e2e


def ninv_client(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [console_script("ninv-client"), *args],
        cwd=ROOT,
        capture_output=True,
        input=stdin,
        timeout=120,
    )


def test_no_worker_is_reported_until_one_runs(
    settings: Settings,
    start_server: Callable[..., ServerProcess],
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    server = start_server(settings_env(settings))
    ready = httpx.get(server.url + "/readyz").json()
    assert (ready["status"], ready["workers"]) == ("no workers", 0)
    assert httpx.get(server.url + "/workers").json() == {"workers": []}

    np.save(tmp_path / "m.npy", np.eye(3) * 2)
    # The flags after the command; the wait times out, and says why.
    waited = ninv_client(
        "submit", str(tmp_path / "m.npy"), "--wait", "--timeout", "3", "--url", server.url
    )
    assert waited.returncode == 3
    said = waited.stderr.decode()
    assert "did not finish within 3 s" in said and "no worker is running" in said

    start_worker(settings)
    workers = httpx.get(server.url + "/workers").json()["workers"]
    assert [(w["device"], w["cuda_devices"]) for w in workers] == [("cpu", 0)]
    assert httpx.get(server.url + "/readyz").json()["status"] == "ready"

    # A CUDA job no live worker can run is refused at once (exit 2), not failed later.
    cuda = ninv_client("submit", str(tmp_path / "m.npy"), "--device", "cuda:0", "--url", server.url)
    assert cuda.returncode == 2
    assert "no live worker has CUDA device cuda:0" in cuda.stderr.decode()

    # The job that waited runs now; one from stdin too.
    piped = ninv_client(
        "submit", "-", "--format", "csv", "--method", "exact", "--wait", "--url", server.url,
        stdin=b"2,0\n0,4\n",
    )  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    jobs = json.loads(ninv_client("list", "--json", "--url", server.url).stdout)
    assert len(jobs) == 2
    for job in jobs:
        assert (
            ninv_client("watch", job["id"], "--timeout", "60", "--url", server.url).returncode == 0
        )
