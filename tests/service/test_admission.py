"""What POST /invert refuses before a job is queued: an entry the dtype cannot hold (422), and
a key over NINV_MAX_ACTIVE_PER_KEY (429); and that a burst sends one wake message, not one each."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from ninv.settings import Settings
from ninv.store import JobStore

pytestmark = pytest.mark.anyio

both_stores = pytest.mark.parametrize("backend", ["redis", "sqlite"], indirect=True)

ALICE = "alice-secret-key-0123456789"
BOB = "bob-secret-key-9876543210"
GOOD = {"matrix": [[2.0, 1.0], [1.0, 2.0]]}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(api_keys=f"{ALICE}, {BOB}", max_active_per_key=3)


@both_stores
@pytest.mark.parametrize("where", ["json", "npy"])
async def test_an_entry_that_overflows_float32_is_refused_with_the_fix(
    client: httpx.AsyncClient, store: JobStore, where: str
) -> None:
    matrix = [[1.0, 1.0], [3.0, 1e308]]
    if where == "json":
        response = await client.post("/invert", json={"matrix": matrix}, headers=bearer(BOB))
    else:
        import numpy as np

        from ninv.npy import to_npy

        response = await client.post(
            "/invert",
            content=to_npy(np.array(matrix)),
            headers={**bearer(BOB), "Content-Type": "application/x-npy"},
        )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["detail"] == "matrix[1][1] overflows float32 (|x| > 3.4e38); use dtype float64"
    assert problem["errors"][0]["loc"] == ["body", "matrix", 1, 1]
    assert store.queued_ids() == []

    fixed = await client.post(
        "/invert", json={"matrix": matrix, "dtype": "float64"}, headers=bearer(BOB)
    )
    assert fixed.status_code == 202


@both_stores
async def test_a_key_at_its_limit_gets_429_and_other_keys_do_not(
    client: httpx.AsyncClient, store: JobStore
) -> None:
    for _ in range(3):
        assert (await client.post("/invert", json=GOOD, headers=bearer(ALICE))).status_code == 202

    refused = await client.post("/invert", json=GOOD, headers=bearer(ALICE))

    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["retry-after"]) > 0
    assert "NINV_MAX_ACTIVE_PER_KEY" in refused.json()["detail"]
    assert len(store.queued_ids()) == 3
    assert (await client.post("/invert", json=GOOD, headers=bearer(BOB))).status_code == 202

    # once one of the key's jobs ends, it may submit again
    (first, *_) = store.queued_ids()
    store.request_cancel(first)
    assert (await client.post("/invert", json=GOOD, headers=bearer(ALICE))).status_code == 202


@both_stores
async def test_a_burst_marks_one_pending_wake(client: httpx.AsyncClient, store: JobStore) -> None:
    """The first job sends the wake message; the next ones find it pending and send none."""
    for key in (ALICE, BOB, ALICE):
        assert (await client.post("/invert", json=GOOD, headers=bearer(key))).status_code == 202
    assert not store.mark_wake(30)  # pending: set by the first submission
