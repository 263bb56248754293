"""The API's routers, one per resource."""

from __future__ import annotations

from service.routes import health, invert, jobs

__all__ = ["health", "invert", "jobs"]
