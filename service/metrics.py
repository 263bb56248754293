"""Prometheus metrics: request counts and latency (a small ASGI middleware, which also writes the
one access-log line per request) and the store-derived gauges (a custom collector).

Each app has its own CollectorRegistry, so that tests can build several apps in one process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ninv.schemas import JobStatus
from ninv.store import JobStore, StoreError

__all__ = ["Metrics", "MetricsMiddleware", "StoreCollector"]

access_log = logging.getLogger("ninv.service.access")

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class StoreCollector(Collector):
    """Jobs by status, queue depth and solve durations, read from the store at scrape time."""

    def __init__(self, store: Callable[[], JobStore]) -> None:
        self._store = store

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("ninv_store_up", "1 when the job store answered this scrape")
        try:
            store = self._store()
            counts = store.count_by_status()
            totals = store.solve_time_totals()
        except StoreError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        jobs = GaugeMetricFamily("ninv_jobs", "jobs in the store by status", labels=["status"])
        for status in JobStatus:
            jobs.add_metric([status.value], counts.get(status, 0))
        yield jobs
        yield GaugeMetricFamily(
            "ninv_queue_depth", "jobs waiting for a worker", value=counts.get(JobStatus.queued, 0)
        )
        solves = SummaryMetricFamily(
            "ninv_solve_duration_seconds", "solver time of finished jobs", labels=["method"]
        )
        for method, (count, seconds) in sorted(totals.items()):
            solves.add_metric([method], count_value=count, sum_value=seconds)
        yield solves


class Metrics:
    """The app's registry and its request metrics."""

    def __init__(self, store: Callable[[], JobStore]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        labels = ["method", "route", "status"]
        self.requests = Counter(
            "ninv_http_requests", "HTTP requests answered", labels, registry=self.registry
        )
        self.latency = Histogram(
            "ninv_http_request_duration_seconds",
            "time to answer an HTTP request (to the end of its body)",
            labels,
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(StoreCollector(store))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route, str(status)).observe(seconds)


class MetricsMiddleware:
    """Counts and times every HTTP request by route template (never the raw path) and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            seconds = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = str(scope.get("method", ""))
            self.metrics.observe(method, route, status, seconds)
            access_log.info("%s %s %d %.1fms", method, route, status, seconds * 1000)
