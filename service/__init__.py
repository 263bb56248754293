"""The ninv REST API (FastAPI): routes, request parsing, auth, errors, SSE and metrics."""

from __future__ import annotations

from service.app import create_app

__all__ = ["create_app"]
