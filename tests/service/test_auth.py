"""Bearer keys: who may call, and that a key sees and touches only its own jobs."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

from ninv.settings import Settings
from ninv.store import JobStore
from service.auth import ANONYMOUS, KeyRing, owner_id
from service.errors import ProblemError

pytestmark = pytest.mark.anyio

ALICE = "alice-secret-key-0123456789"
BOB = "bob-secret-key-9876543210"
MATRIX = {"matrix": [[1.0, 2.0], [3.0, 5.0]]}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(api_keys=f"{ALICE}, {BOB}")


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "missing API key"),
        ({"Authorization": "Bearer"}, "missing API key"),
        ({"Authorization": f"Basic {ALICE}"}, "missing API key"),
        (bearer("not-a-key"), "invalid API key"),
        (bearer(ALICE[:-1]), "invalid API key"),
        (bearer(ALICE + "x"), "invalid API key"),
    ],
    ids=["none", "empty", "basic", "wrong", "prefix", "longer"],
)
async def test_missing_or_wrong_key_is_401(
    client: httpx.AsyncClient, headers: dict[str, str], detail: str
) -> None:
    for method, path in [("POST", "/invert"), ("GET", "/jobs"), ("GET", "/jobs/" + "0" * 32)]:
        response = await client.request(method, path, json=MATRIX, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.headers["content-type"] == "application/problem+json"
        assert detail in response.json()["detail"]


async def test_keys_see_only_their_own_jobs(client: httpx.AsyncClient, store: JobStore) -> None:
    created = await client.post("/invert", json=MATRIX, headers=bearer(ALICE))
    assert created.status_code == 202
    job_id = created.json()["id"]
    record = store.get(job_id)
    assert record is not None
    assert record.owner == owner_id(ALICE)
    assert ALICE not in record.model_dump_json()

    assert (await client.get(f"/jobs/{job_id}", headers=bearer(ALICE))).status_code == 200
    for method, path in [
        ("GET", f"/jobs/{job_id}"),
        ("GET", f"/jobs/{job_id}/result"),
        ("GET", f"/jobs/{job_id}/history"),
        ("GET", f"/jobs/{job_id}/events"),
        ("POST", f"/jobs/{job_id}/cancel"),
        ("DELETE", f"/jobs/{job_id}"),
    ]:
        response = await client.request(method, path, headers=bearer(BOB))
        assert response.status_code == 404, (method, path)
        assert response.json()["detail"] == f"no job {job_id}"
    assert (await client.get("/jobs", headers=bearer(BOB))).json()["jobs"] == []
    mine = (await client.get("/jobs", headers=bearer(ALICE))).json()["jobs"]
    assert [job["id"] for job in mine] == [job_id]
    assert store.get(job_id) is not None  # bob's cancel and delete touched nothing


async def test_idempotency_keys_are_per_owner(client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "same"}
    a = await client.post("/invert", json=MATRIX, headers={**headers, **bearer(ALICE)})
    b = await client.post("/invert", json=MATRIX, headers={**headers, **bearer(BOB)})
    assert a.status_code == b.status_code == 202
    assert a.json()["id"] != b.json()["id"]


async def test_keys_are_never_logged(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        await client.post("/invert", json=MATRIX, headers=bearer(ALICE))
        await client.get("/jobs", headers=bearer("wrong-key-value"))
    assert caplog.records  # the access log did write
    assert ALICE not in caplog.text and "wrong-key-value" not in caplog.text


async def test_health_needs_no_key(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/readyz")).status_code == 200
    assert (await client.get("/metrics")).status_code == 200


async def test_no_keys_means_anonymous(
    make_app: Callable[[Settings], FastAPI], make_settings: Callable[..., Settings]
) -> None:
    app = make_app(make_settings(api_keys=""))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.post("/invert", json=MATRIX, headers=bearer("anything"))
    assert response.status_code == 202
    record = app.state.resources.store.get(response.json()["id"])
    assert record.owner == ANONYMOUS


def test_keyring() -> None:
    ring = KeyRing([ALICE, BOB])
    assert ring.owner(ALICE) == owner_id(ALICE) != owner_id(BOB) == ring.owner(BOB)
    assert owner_id(ALICE) == owner_id(ALICE) and ALICE not in owner_id(ALICE)
    with pytest.raises(ProblemError):
        ring.owner(None)
    assert KeyRing([]).owner(None) == ANONYMOUS
