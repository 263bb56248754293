"""A TCP proxy to the test Redis that can be cut and restored: Redis going away and back."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from typing import Any

UPSTREAM = ("127.0.0.1", 6379)


class _Pipe(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        try:
            upstream = socket.create_connection(UPSTREAM, timeout=5)
        except OSError:
            return
        self.server.track(self.request, upstream)
        pump = threading.Thread(target=_copy, args=(upstream, self.request), daemon=True)
        pump.start()
        _copy(self.request, upstream)
        pump.join(5)


def _copy(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Pipe)
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()

    def track(self, *socks: socket.socket) -> None:
        with self.lock:
            self.sockets.extend(socks)

    def cut(self) -> None:
        self.shutdown()
        self.server_close()
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self.sockets.clear()


class RedisProxy:
    """Listens on a free loopback port; `down()` drops it and every connection, `up()` restores."""

    def __init__(self) -> None:
        self._server: _Server | None = _Server(0)
        self.port = self._server.server_address[1]
        self._start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _start(self) -> None:
        assert self._server is not None
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.cut()
            self._server = None

    def up(self) -> None:
        if self._server is None:
            self._server = _Server(self.port)
            self._start()

    def __enter__(self) -> RedisProxy:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.down()
