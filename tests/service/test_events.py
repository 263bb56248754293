"""Server-Sent Events: progress events, then the end event; Last-Event-ID resumes."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from ninv.schemas import Job, Progress
from ninv.store import JobStore
from service.sse import format_event
from tests.fake_worker import FakeWorker

pytestmark = pytest.mark.anyio


def parse(stream: str) -> list[dict[str, str]]:
    """SSE messages as dicts of their fields (comments under ':')."""
    events = []
    for block in stream.split("\n\n"):
        if not block.strip():
            continue
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        events.append(fields)
    return events


async def new_job(client: httpx.AsyncClient) -> str:
    response = await client.post("/invert", json={"matrix": [[1.0, 0.0], [0.0, 2.0]]})
    job_id: str = response.json()["id"]
    return job_id


async def test_progress_then_end(client: httpx.AsyncClient, store: JobStore) -> None:
    job_id = await new_job(client)
    worker = FakeWorker(store)
    worker.claim(job_id)
    response: dict[str, Any] = {}

    async def listen() -> None:
        response["r"] = await client.get(f"/jobs/{job_id}/events")

    async with anyio.create_task_group() as group:
        group.start_soon(listen)
        for iteration in (10, 20, 30):
            await anyio.sleep(0.15)
            worker.tick(job_id, iteration)
        await anyio.sleep(0.15)
        worker.succeed(job_id, np.eye(2))

    r = response["r"]
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["cache-control"] == "no-cache"
    events = [e for e in parse(r.text) if "event" in e]
    progress = [e for e in events if e["event"] == "progress"]
    assert [e["id"] for e in progress] == ["10", "20", "30"]
    assert Progress.model_validate_json(progress[0]["data"]).iteration == 10
    assert events[-1]["event"] == "end"
    assert "id" not in events[-1]
    assert Job.model_validate_json(events[-1]["data"]).status == "succeeded"


async def test_last_event_id_resumes(client: httpx.AsyncClient, store: JobStore) -> None:
    job_id = await new_job(client)
    FakeWorker(store).run(job_id, np.eye(2))  # last progress: iteration 1000

    full = parse((await client.get(f"/jobs/{job_id}/events")).text)
    assert [e.get("event") for e in full if "event" in e] == ["progress", "end"]

    resumed = await client.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": "999"})
    assert [e.get("id") for e in parse(resumed.text) if e.get("event") == "progress"] == ["1000"]

    caught_up = await client.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": "1000"})
    events = [e for e in parse(caught_up.text) if "event" in e]
    assert [e["event"] for e in events] == ["end"]
    assert json.loads(events[0]["data"])["id"] == job_id


async def test_keepalive_while_quiet(
    client: httpx.AsyncClient, store: JobStore, app: FastAPI
) -> None:
    app.state.sse.keepalive_s = 0.05
    job_id = await new_job(client)
    response: dict[str, Any] = {}

    async def listen() -> None:
        response["r"] = await client.get(f"/jobs/{job_id}/events")

    async with anyio.create_task_group() as group:
        group.start_soon(listen)
        await anyio.sleep(0.3)
        await client.post(f"/jobs/{job_id}/cancel")  # a queued job: cancelled at once
    text = response["r"].text
    assert ": keepalive" in text
    events = [e for e in parse(text) if "event" in e]
    assert [e["event"] for e in events] == ["end"]
    assert json.loads(events[0]["data"])["status"] == "cancelled"


def test_format_event() -> None:
    assert format_event("progress", '{"a": 1}', "5") == 'event: progress\nid: 5\ndata: {"a": 1}\n\n'
    assert format_event("end", "{}") == "event: end\ndata: {}\n\n"
