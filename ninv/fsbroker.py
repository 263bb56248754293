"""The embedded default's broker: kombu's filesystem transport, woken by a doorbell.

kombu's filesystem transport finds new messages by listing its folder every polling interval,
so a job waits half an interval on average before a worker sees it. Here the sender rings the
consumers' doorbells (ninv/doorbell.py) after it writes a message, and a consumer with nothing
to do waits on its bell instead of sleeping: a message is picked up within a millisecond or so,
and the polling interval is only the fallback. Message files are written under a name the
consumer ignores and renamed into place, so a consumer never reads a half-written message.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from queue import Empty
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

from ninv.doorbell import Bell, bell_folder, ring

__all__ = ["TRANSPORT", "DoorbellTransport", "broker_options"]

#: What Celery's broker_transport names to use this transport.
TRANSPORT = "ninv.fsbroker:DoorbellTransport"

#: How long an idle consumer waits on its bell before it lists the folder anyway.
FALLBACK_POLL_S = 1.0
#: A half-written message file older than this was left by a sender that died mid-write.
STALE_PART_S = 60.0
#: Longest one wait on the bell lasts: a warm shutdown is noticed within this.
SHUTDOWN_CHECK_S = 0.2


def broker_options(folder: Path) -> dict[str, object]:
    """The transport options for a broker in `folder` (created here, and rid of half-written
    messages that senders killed mid-write left behind)."""
    folder = folder.resolve()
    for sub in ("queue", "processed", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(folder / "queue")
    return {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),
        "store_processed": False,
        "polling_interval": FALLBACK_POLL_S,
        "bell_folder": str(bell_folder(folder / "bells")),
    }


def _remove_stale_parts(queue: Path) -> None:
    """Delete `.part` files older than STALE_PART_S: never a message (a message is renamed into
    place whole), and a younger one may be another process's write in progress."""
    cutoff = time.time() - STALE_PART_S
    for part in queue.glob(".*.part"):
        try:
            if part.stat().st_mtime < cutoff:
                part.unlink()
        except FileNotFoundError:  # another process removed it first
            pass


def _shutting_down() -> bool:
    """Whether this process's Celery worker has been asked to stop (warm or cold)."""
    from celery.worker import state  # the consumer's side only: a sender never asks

    return state.should_stop is not None or state.should_terminate is not None


class DoorbellChannel(filesystem.Channel):
    """Writes each message atomically, then rings the consumers' bells."""

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        # The name sorts by time as kombu's own does (its consumer takes the oldest first).
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        folder = self.data_folder_out
        temporary = os.path.join(folder, f".{name}.part")  # no ".<queue>.msg" tail: unseen
        try:
            with open(temporary, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(temporary, os.path.join(folder, name))
        except OSError as exc:
            raise ChannelError(f"Cannot add file {name!r} to directory") from exc
        ring(Path(self.transport_options["bell_folder"]), b"m")


class DoorbellTransport(filesystem.Transport):
    """The filesystem transport whose idle consumer waits on a doorbell, not a timer."""

    Channel = DoorbellChannel

    @property
    def default_connection_params(self) -> dict[str, object]:
        # A folder has no host: without this kombu warns "No hostname was supplied".
        return {"port": 0}

    def __init__(self, client: Any, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        self._bell: Bell | None = None

    def drain_events(self, connection: Any, timeout: float | None = None) -> None:  # type: ignore[override]
        if self._bell is None:  # bound before the first look, so no ring is missed after it
            client: Any = self.client
            self._bell = Bell(Path(client.transport_options["bell_folder"]))
        start = monotonic()
        cycle: Any = self.cycle
        while True:
            if _shutting_down():
                # Celery's blocking loop looks for a shutdown only between these calls (and
                # then makes one more): hand it back at once, and take no message to run.
                raise TimeoutError
            try:
                cycle.get(self._deliver, timeout=timeout)
                return
            except Empty:
                wait = self.polling_interval or FALLBACK_POLL_S
                if timeout is not None:
                    left = timeout - (monotonic() - start)
                    if left <= 0:
                        raise TimeoutError from None
                    wait = min(wait, left)
                self._wait_bell(wait)

    def _wait_bell(self, seconds: float) -> None:
        """Wait on the bell up to `seconds`, until it rings or the worker is asked to stop (a
        signal only sets Celery's flag: the wait goes on in slices to see it)."""
        assert self._bell is not None
        end = monotonic() + seconds
        while not _shutting_down():
            left = end - monotonic()
            if left <= 0 or self._bell.wait(min(left, SHUTDOWN_CHECK_S)):
                return

    def close_connection(self, connection: Any) -> None:
        if self._bell is not None:
            self._bell.close()
            self._bell = None
        super().close_connection(connection)
