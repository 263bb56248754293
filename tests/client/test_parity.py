"""Client and AsyncClient offer the same public methods with the same signatures."""

from __future__ import annotations

import inspect
from typing import Any

from client import AsyncClient, Client

# the async spelling of the same thing (httpx's convention)
ASYNC_NAMES = {"close": "aclose", "__enter__": "__aenter__", "__exit__": "__aexit__"}
ASYNC_TYPES = {
    "httpx.AsyncClient": "httpx.Client",
    "AsyncBaseTransport": "BaseTransport",
    "AsyncIterator": "Iterator",
}


def signature(method: Any) -> str:
    """The signature as text, with the async twins of httpx types read as the sync ones."""
    text = str(inspect.signature(method))
    for async_type, sync_type in ASYNC_TYPES.items():
        text = text.replace(async_type, sync_type)
    return text


def public_methods(cls: type) -> dict[str, Any]:
    """The class's own public methods (those it shares from BaseClient are the same anyway)."""
    return {
        name: member
        for name, member in vars(cls).items()
        if inspect.isfunction(member)
        and (not name.startswith("_") or name in ("__init__", *ASYNC_NAMES, *ASYNC_NAMES.values()))
    }


def test_same_methods_and_signatures() -> None:
    sync, asynchronous = public_methods(Client), public_methods(AsyncClient)
    assert {ASYNC_NAMES.get(name, name) for name in sync} == set(asynchronous)
    for name, method in sync.items():
        twin = asynchronous[ASYNC_NAMES.get(name, name)]
        assert signature(method) == signature(twin), name
        if name != "__init__":
            assert not inspect.iscoroutinefunction(method), name
            assert inspect.iscoroutinefunction(twin) or inspect.isasyncgenfunction(twin), name
