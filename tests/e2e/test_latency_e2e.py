"""Small jobs answered fast: `Prefer: wait` against a real worker, the client's one request,
and the embedded default's quick broker losing nothing when `ninv serve` is killed -9."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from fastapi import FastAPI

from client import Client
from client.cli import cli
from ninv.schemas import JobStatus
from ninv.settings import Settings
from ninv.store import open_store
from service import create_app
from tests.helpers import ServerProcess, WorkerProcess, settings_env, wait_for

pytestmark = pytest.mark.e2e

TINY = {"matrix": (np.eye(4) * 2).tolist(), "method": "exact"}
#: A Gaussian 256x256: adam needs seconds per stall window, so it surely runs until cancelled.
SLOW = {
    "matrix": np.random.default_rng(0).standard_normal((256, 256)).tolist(),
    "max_iter": 50_000_000,
}


@pytest.fixture
def api(
    settings: Settings,
    serve: Callable[[FastAPI], str],
    start_worker: Callable[..., WorkerProcess],
) -> Iterator[str]:
    """The API over Redis with one real worker; its polling fallback is a minute, so whatever
    answers sooner was woken by the store's change notice."""
    start_worker(settings)
    app = create_app(settings.model_copy(update={"poll_s": 60.0}))
    url = serve(app)
    yield url
    app.state.resources.close()


def test_prefer_wait_answers_200_for_a_fast_job_and_202_for_a_slow_one(api: str) -> None:
    with httpx.Client(base_url=api, timeout=30) as http:
        fast = http.post("/invert", json=TINY, headers={"Prefer": "wait=20"})
        assert fast.status_code == 200
        assert fast.headers["Preference-Applied"] == "wait=20"
        assert fast.json()["status"] == "succeeded"
        assert fast.json()["inverse"] == (np.eye(4) / 2).tolist()
        assert fast.headers["Location"] == f"/jobs/{fast.json()['id']}"

        slow = http.post("/invert", json=SLOW, headers={"Prefer": "wait=1"})
        assert slow.status_code == 202, slow.json()
        assert "Preference-Applied" not in slow.headers
        job_id = slow.json()["id"]
        held = http.get(f"/jobs/{job_id}", headers={"Prefer": "wait=1"})
        assert held.status_code == 200 and held.json()["status"] in ("queued", "running")
        assert "Preference-Applied" not in held.headers

        # The worker's end of the job wakes a held GET (the fallback poll is a minute away).
        def cancel_soon() -> None:
            http.post(f"/jobs/{job_id}/cancel")

        threading.Timer(0.5, cancel_soon).start()
        ended = http.get(f"/jobs/{job_id}", headers={"Prefer": "wait=30"})
        assert ended.json()["status"] == "cancelled"
        assert ended.headers["Preference-Applied"] == "wait=30"


def test_invert_takes_one_request_for_a_small_job(api: str) -> None:
    sent: list[str] = []
    hooks = {"request": [lambda request: sent.append(f"{request.method} {request.url.path}")]}
    with httpx.Client(base_url=api, event_hooks=hooks, timeout=30) as http:
        inverse = Client(http=http).invert(np.eye(3) * 4, method="exact", timeout=30)
    np.testing.assert_allclose(inverse, np.eye(3) / 4)
    assert sent == ["POST /invert"]  # the held answer carried the inverse inline


def test_cli_submit_wait_takes_one_request_for_a_small_job(api: str, tmp_path: Path) -> None:
    sent: list[str] = []
    hooks = {"request": [lambda request: sent.append(f"{request.method} {request.url.path}")]}
    np.save(tmp_path / "m.npy", np.eye(3) * 4)
    with httpx.Client(base_url=api, event_hooks=hooks, timeout=30) as http:
        args = ["submit", str(tmp_path / "m.npy"), "--method", "exact", "--wait", "--json"]
        result = CliRunner().invoke(cli, args, obj=Client(http=http))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "succeeded"
    assert sent == ["POST /invert"]  # held: it came back finished, nothing left to follow


def test_killing_serve_mid_burst_loses_no_accepted_job(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    embedded = Settings(data_dir=tmp_path / "data", lease_s=5.0)
    server = start_server(settings_env(embedded))
    accepted: list[str] = []
    refused = 0
    stop = threading.Event()

    def submitter(seed: int) -> None:
        nonlocal refused
        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=server.url, timeout=10) as http:
            while not stop.is_set():
                body = {"matrix": (rng.standard_normal((8, 8)) + 8 * np.eye(8)).tolist()}
                try:
                    response = http.post("/invert", json={**body, "method": "exact"})
                except httpx.HTTPError:
                    refused += 1  # the server died under this request: never accepted
                    continue
                if response.status_code == 202:
                    accepted.append(response.json()["id"])

    threads = [threading.Thread(target=submitter, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(accepted) >= 40, timeout=60, what="40 accepted jobs")
    server.stop(signal.SIGKILL)  # the API and its worker, mid-burst
    stop.set()
    for thread in threads:
        thread.join(30)

    restarted = start_server(settings_env(embedded))
    assert restarted.proc.poll() is None
    store = open_store(embedded)
    try:

        def all_done() -> bool:
            records = [store.get(job_id) for job_id in accepted]
            return all(r is not None and r.status is JobStatus.succeeded for r in records)

        wait_for(all_done, timeout=120, what=f"all {len(accepted)} accepted jobs to succeed")
    finally:
        store.close()
