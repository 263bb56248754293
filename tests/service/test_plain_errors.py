"""Error answers in plain words: no regex, the options there are, the paths there are."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests.helpers import npy_bytes

pytestmark = pytest.mark.anyio

NPY = {"Content-Type": "application/x-npy"}
OPTIONS = "method, max_iter, tol, lr_schedule, dtype, device, seed, stall_window, aux"


def no_jargon(detail: str) -> None:
    for jargon in ("pattern", "^", "{32}", "Extra inputs", "pickle", "magic"):
        assert jargon not in detail, detail


async def test_a_job_id_in_capitals_is_explained(client: httpx.AsyncClient) -> None:
    answer = await client.get("/jobs/" + "AB" * 16)
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert "is not a job id: a job id is 32 lowercase hex digits" in detail
    no_jargon(detail)


@pytest.mark.parametrize("as_npy", [False, True])
async def test_a_bad_device_is_explained(client: httpx.AsyncClient, as_npy: bool) -> None:
    if as_npy:
        answer = await client.post(
            "/invert", params={"device": "gpu"}, content=npy_bytes(np.eye(2)), headers=NPY
        )
    else:
        answer = await client.post("/invert", json={"matrix": [[1.0]], "device": "gpu"})
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert "device must be auto, cpu, cuda or cuda:N (N the GPU's number), not 'gpu'" in detail
    no_jargon(detail)


async def test_a_json_key_typo_lists_the_options(client: httpx.AsyncClient) -> None:
    answer = await client.post("/invert", json={"matrix": [[1.0]], "maxiter": 10})
    assert answer.status_code == 422
    problem = answer.json()
    assert problem["errors"][0]["loc"] == ["body", "maxiter"]
    assert problem["detail"] == (
        f"body.maxiter: not an option (did you mean 'max_iter'?); the options are {OPTIONS}"
    )
    # The query-string form said it already; both list the same options.
    query = await client.post(
        "/invert", params={"maxiter": "10"}, content=npy_bytes(np.eye(2)), headers=NPY
    )
    assert ", ".join(sorted(OPTIONS.split(", "))) in query.json()["detail"]


async def test_a_text_body_sent_as_npy_is_called_what_it_is(client: httpx.AsyncClient) -> None:
    answer = await client.post("/invert", content=b"1,2\n3,4\n", headers=NPY)
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert "not a valid .npy file" in detail and "Content-Type application/json" in detail
    no_jargon(detail)


async def test_a_wrong_base_path_is_told_the_paths(client: httpx.AsyncClient) -> None:
    answer = await client.get("/api/v1/jobs/" + "a" * 32)
    assert answer.status_code == 404
    detail = answer.json()["detail"]
    assert detail.startswith(
        f"path /api/v1/jobs/{'a' * 32} not found: the API's paths start at the server's root, "
        "so drop '/api/v1' from the server URL; the paths are "
    )
    for path in ("/invert", "/jobs", "/jobs/{job_id}/result", "/workers", "/readyz"):
        assert path in detail
    nowhere = (await client.get("/nothing/here")).json()["detail"]
    assert nowhere.startswith("path /nothing/here not found; the paths are /healthz")
