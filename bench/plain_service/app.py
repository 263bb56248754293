"""The tutorial's API: POST /invert queues the task, GET /tasks/{id} reports it (and its result).

Run: uvicorn bench.plain_service.app:app, and celery -A bench.plain_service.tasks worker.
"""

from __future__ import annotations

from typing import Any

from celery.result import AsyncResult
from fastapi import FastAPI
from pydantic import BaseModel

from bench.plain_service.tasks import celery, invert

app = FastAPI()


class InvertRequest(BaseModel):
    matrix: list[list[float]]


@app.post("/invert", status_code=202)
def submit(body: InvertRequest) -> dict[str, str]:
    task = invert.delay(body.matrix)
    return {"id": task.id}


@app.get("/tasks/{task_id}")
def status(task_id: str) -> dict[str, Any]:
    result = AsyncResult(task_id, app=celery)
    return {"id": task_id, "status": result.status, "result": result.result}


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
