"""What a request for a path the API does not have is told: the paths there are.

A client configured with a base path (`http://host:8000/api`) asks for `/api/jobs`; the answer
says to drop `/api`, and lists the API's paths (those of its OpenAPI schema).
"""

from __future__ import annotations

import re

from fastapi import FastAPI
from starlette.requests import Request

__all__ = ["unknown_path"]


def _templates(app: FastAPI) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """The API's paths, each with a pattern that matches the paths it serves (404s are rare, and
    FastAPI keeps the schema it built)."""
    paths = sorted(app.openapi()["paths"])
    return tuple((path, re.compile(re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")) for path in paths)


def unknown_path(request: Request) -> str:
    """The 404 detail for a path no route has."""
    templates = _templates(request.app)
    requested = request.url.path
    detail = f"path {requested} not found"
    # The longest tail of the path that is one of the API's paths: what comes before is extra.
    for cut in (i for i, char in enumerate(requested) if char == "/" and i > 0):
        if any(pattern.match(requested[cut:]) for _, pattern in templates):
            detail += (
                f": the API's paths start at the server's root, so drop {requested[:cut]!r} "
                "from the server URL"
            )
            break
    listed = ", ".join(path for path, _ in templates)
    return f"{detail}; the paths are {listed} (and /docs)"
