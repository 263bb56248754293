"""Doorbells between local processes: Unix datagram sockets in one folder, no server.

A process that wants to be woken binds a `Bell` (a socket file named after its pid in the
folder); a process with news calls `ring(folder, payload)`, which sends one datagram to every
bell there. A datagram is queued in the receiver's socket until read, so a bell bound before the
receiver checks its state cannot miss a ring that comes after. A socket whose process died
refuses datagrams and is removed by the next ring. Where Unix sockets are missing (Windows) or
the folder cannot hold them, rings do nothing and bells never ring: callers keep a timed
fallback (polling), so this only makes them faster.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import select
import socket
import tempfile
import time
import uuid
from pathlib import Path

__all__ = ["Bell", "bell_folder", "ring"]

#: A Unix socket path must fit in sun_path (108 bytes on Linux, 104 on macOS).
_MAX_PATH = 100
_SUFFIX = ".bell"


def bell_folder(folder: Path) -> Path:
    """The folder the bells of `folder` live in: itself, or a short stand-in under the temp
    folder when its paths would be too long for a socket (both sides derive the same one)."""
    folder = folder.resolve()
    if len(str(folder)) + 48 <= _MAX_PATH:
        return folder
    digest = hashlib.sha256(str(folder).encode()).hexdigest()[:16]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"ninv-{uid}-{digest}"


def ring(folder: Path, payload: bytes = b"!") -> int:
    """Send `payload` (one datagram, < 2 KiB) to every bell in `folder`; how many got it."""
    if not hasattr(socket, "AF_UNIX"):
        return 0
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    sent = 0
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    except OSError:  # no datagram sockets here (Windows)
        return 0
    with sock:
        sock.setblocking(False)
        for name in names:
            if not name.endswith(_SUFFIX):
                continue
            path = os.path.join(folder, name)
            try:
                sock.sendto(payload, path)
                sent += 1
            except OSError as exc:
                if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):  # its process is gone
                    with contextlib.suppress(OSError):
                        os.unlink(path)
                # EAGAIN: its queue is full, so it has unread rings and will wake anyway.
    return sent


def _bind(sock: socket.socket, folder: Path, path: Path) -> bool:
    """Bind `sock` at `path`, making `folder` (twice: the last bell of another process may
    remove the empty folder between our mkdir and bind)."""
    for _ in range(2):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            sock.bind(str(path))
        except FileNotFoundError:
            continue
        except OSError:
            return False
        return True
    return False


class Bell:
    """One process's bell in `folder`: `wait` returns the payloads rung since the last wait."""

    def __init__(self, folder: Path) -> None:
        self.path: Path | None = None
        self._sock: socket.socket | None = None
        if not hasattr(socket, "AF_UNIX"):
            return
        path = folder / f"{os.getpid()}-{uuid.uuid4().hex[:8]}{_SUFFIX}"
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        except OSError:
            return  # no datagram sockets here (Windows): the caller's fallback does the work
        if not _bind(sock, folder, path):
            sock.close()
            return  # no bell: the caller's timed fallback does the work
        sock.setblocking(False)
        with contextlib.suppress(OSError):  # room for a burst of rings
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.path, self._sock = path, sock

    @property
    def working(self) -> bool:
        return self._sock is not None

    def fileno(self) -> int:
        return -1 if self._sock is None else self._sock.fileno()

    def wait(self, timeout: float) -> list[bytes]:
        """Block up to `timeout` seconds for a ring; the payloads of every ring pending."""
        sock = self._sock
        if sock is None:
            time.sleep(max(0.0, timeout))
            return []
        try:
            ready, _, _ = select.select([sock], [], [], max(0.0, timeout))
        except (OSError, ValueError):  # closed under us
            return []
        return self.drain() if ready else []

    def drain(self) -> list[bytes]:
        """The payloads already rung, without blocking."""
        payloads: list[bytes] = []
        sock = self._sock
        while sock is not None:
            try:
                payloads.append(sock.recv(4096))
            except OSError:  # BlockingIOError: nothing more; other errors: closed
                break
        return payloads

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            with contextlib.suppress(OSError):  # the last bell out leaves no empty folder
                self.path.parent.rmdir()
