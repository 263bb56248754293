"""The tutorial's Celery side: one task that inverts a matrix, its result in Redis.

As the FastAPI + Celery tutorials write it (broker and result backend on Redis, JSON), with
only what a benchmark needs added: the Redis URL and queue name come from the environment, so
that a run does not touch anyone else's keys.
"""

from __future__ import annotations

import os

import numpy as np
from celery import Celery

REDIS_URL = os.environ.get("PLAIN_REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("PLAIN_QUEUE", "plain")

celery = Celery("plain", broker=REDIS_URL, backend=REDIS_URL)
celery.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_default_queue=QUEUE,
    result_expires=600,
)


@celery.task(name="plain.invert")
def invert(matrix: list[list[float]]) -> list[list[float]]:
    result: list[list[float]] = np.linalg.inv(np.asarray(matrix, dtype=np.float64)).tolist()
    return result
