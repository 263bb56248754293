"""The uvicorn server for `ninv serve`, with the connection limits a public port needs.

uvicorn bounds idle keep-alive connections (NINV_KEEPALIVE_S) and concurrency
(NINV_MAX_CONNECTIONS, answered 503 beyond), but has no deadline for a request's headers: a
client that opens connections and sends half a request would hold each one forever. The
protocol below closes a connection whose request headers have not all arrived within
NINV_HEADER_TIMEOUT_S. The body's deadline (NINV_BODY_TIMEOUT_S, answered 408) is the app's,
in service.parsing.read_body.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ninv.settings import Settings

__all__ = ["HeaderTimeoutProtocol", "uvicorn_config"]


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections that do not send their headers in time.

    httptools (llhttp, in C), not h11: the API spends about a tenth less CPU a request. The
    deadline is armed when the connection opens and when a keep-alive connection waits for its
    next request; it is disarmed as soon as a request's headers are complete. Bytes trickling in
    do not extend it (uvicorn's keep-alive timer, which they do reset, is no defence against a
    slow client).
    """

    header_timeout_s: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._awaiting_headers = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        # A pipelined request whose headers came in meanwhile starts now: no deadline for it.
        waiting = not self.pipeline
        super().on_response_complete()
        if waiting and not self.transport.is_closing():  # kept alive: the next request's too
            self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._awaiting_headers = True
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self._awaiting_headers and not self.transport.is_closing():
            self.transport.close()


def uvicorn_config(app: Any, settings: Settings, *, log_level: str = "info") -> uvicorn.Config:
    """The uvicorn config `ninv serve` runs `app` with, limits taken from the settings."""
    protocol = type(
        "NinvProtocol", (HeaderTimeoutProtocol,), {"header_timeout_s": settings.header_timeout_s}
    )
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=protocol,
        loop="auto",  # uvloop (a dependency except on Windows), else asyncio's own
        log_level=log_level,
        access_log=False,  # service.metrics writes one line per request, without query strings
        proxy_headers=False,
        timeout_keep_alive=settings.keepalive_s,
        limit_concurrency=settings.max_connections,
        timeout_graceful_shutdown=5,  # open event streams must not hold a shutdown forever
    )
