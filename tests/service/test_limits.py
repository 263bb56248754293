"""Issue 16, in-process: the JSON body limit, who may read /metrics, and Idempotency-Key
comparing the parsed request."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from ninv.npy import to_npy
from ninv.settings import Settings

pytestmark = pytest.mark.anyio


def client_for(app: FastAPI, host: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(host, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_a_json_body_over_its_limit_is_a_413_that_points_to_npy(
    make_settings: Callable[..., Settings], make_app: Callable[[Settings], FastAPI]
) -> None:
    app = make_app(make_settings(max_json_bytes=4096))
    body = json.dumps({"matrix": np.eye(40).tolist()}).encode()
    assert len(body) > 4096
    async with client_for(app) as client:
        refused = await client.post(
            "/invert", content=body, headers={"Content-Type": "application/json"}
        )
        assert refused.status_code == 413
        assert refused.headers["content-type"] == "application/problem+json"
        assert ".npy" in refused.json()["detail"]
        taken = await client.post(
            "/invert", content=to_npy(np.eye(40)), headers={"Content-Type": "application/x-npy"}
        )
        assert taken.status_code == 202, taken.text


async def test_metrics_with_api_keys_answers_loopback_or_its_own_key(
    make_settings: Callable[..., Settings], make_app: Callable[[Settings], FastAPI]
) -> None:
    app = make_app(make_settings(api_keys="alice"))
    async with client_for(app, "203.0.113.7") as remote, client_for(app) as local:
        assert (await remote.get("/metrics")).status_code == 403
        api_key = {"Authorization": "Bearer alice"}
        assert (await remote.get("/metrics", headers=api_key)).status_code == 403
        assert (await local.get("/metrics")).status_code == 200
        assert (await remote.get("/openapi.json")).status_code == 200
        assert (await remote.get("/docs")).status_code == 200

    keyed = make_app(make_settings(api_keys="alice", metrics_key="scraper"))
    async with client_for(keyed, "203.0.113.7") as remote, client_for(keyed) as local:
        good = {"Authorization": "Bearer scraper"}
        assert (await remote.get("/metrics", headers=good)).status_code == 200
        wrong = await remote.get("/metrics", headers={"Authorization": "Bearer alice"})
        assert wrong.status_code == 401
        assert wrong.headers["content-type"] == "application/problem+json"
        assert (await local.get("/metrics")).status_code == 401  # the key is the rule


async def test_metrics_without_api_keys_is_open(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics")).status_code == 200


async def test_idempotency_key_compares_the_parsed_request(client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "same-json", "Content-Type": "application/json"}
    first = await client.post(
        "/invert", content=b'{"matrix": [[1, 2], [3, 5]], "method": "cg"}', headers=headers
    )
    again = await client.post(
        "/invert", content=b'{ "method" : "cg",\n  "matrix":[[1.0,2],[3,5.0]] }', headers=headers
    )
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    other = await client.post(
        "/invert", content=b'{"matrix": [[1, 2], [3, 6]], "method": "cg"}', headers=headers
    )
    assert other.status_code == 422
