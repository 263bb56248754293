"""The FastAPI application: `create_app(settings)` wires settings, resources, routes and errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from celery import Celery
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from ninv.durability import log_persistence
from ninv.settings import Settings, get_settings
from ninv.store import JobStore
from service.errors import install_handlers
from service.metrics import Metrics, MetricsMiddleware
from service.routes import health, invert, jobs, workers
from service.state import Resources

__all__ = ["DOCS_STATIC_URL", "SseTiming", "create_app"]

#: Where the docs pages' own scripts and styles are served.
DOCS_STATIC_URL = "/docs-static"

DESCRIPTION = """\
Invert square matrices by gradient descent (Adam, as the original), or by stronger iterative
methods (conjugate gradient, Newton-Schulz) and an exact LU reference.

Submit with `POST /invert` (JSON or a raw `.npy` body), follow `GET /jobs/{id}/events`, fetch
`GET /jobs/{id}/result`. Errors are `application/problem+json` (RFC 9457). Send
`Authorization: Bearer <key>` when the server has API keys configured.
"""


@dataclass
class SseTiming:
    """How often the event stream re-reads the job with no change notice (NINV_POLL_S), and
    how often it sends a keepalive."""

    poll_s: float = 2.0
    keepalive_s: float = 15.0


def create_app(
    settings: Settings | None = None,
    *,
    store: JobStore | None = None,
    celery: Celery | None = None,
) -> FastAPI:
    """Build the API for these settings (default: the NINV_ environment).

    The store and the Celery app are opened lazily from the settings unless given; given ones
    stay the caller's to close, the app closes what it opened when its lifespan ends.
    """
    settings = settings or get_settings()
    resources = Resources(settings, store=store, celery=celery)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if settings.redis_url:  # say once whether a 202 survives a Redis restart
            log_persistence(settings.redis_url)
        try:
            yield
        finally:
            resources.close()

    # /docs with its scripts, styles and favicon served from the fastapi-offline package, not a
    # CDN: the docs work where the server has no internet access. No /redoc: its page fetches
    # its logo from a CDN whatever its script is served from.
    app = FastAPIOffline(
        title="ninv",
        version="0.1.0",
        summary="Matrix inversion by gradient descent, as a service",
        description=DESCRIPTION,
        lifespan=lifespan,
        static_url=DOCS_STATIC_URL,
        redoc_url=None,
        # Swagger UI would send the schema to an online validator for its badge.
        swagger_ui_parameters={"validatorUrl": None},
    )
    app.state.resources = resources
    app.state.sse = SseTiming(poll_s=settings.poll_s)
    app.state.metrics = Metrics(lambda: resources.store)
    install_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.include_router(invert.router)
    app.include_router(jobs.router)
    app.include_router(health.router)
    app.include_router(workers.router)
    return app
