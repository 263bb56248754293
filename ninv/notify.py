"""Change notices: the store says "job X changed" when it writes a job's progress or its end, so
that whoever waits on the job (SSE, `Prefer: wait`) looks again at once instead of on a timer.

Two transports, one per deployment:

- Redis: the store PUBLISHes the job ids (space-separated: one message for a batch's write) on
  `{prefix}:changed` in the same MULTI as the write (so a notice never comes before the data);
  each API process holds one subscription.
- Embedded default: the SQLite store rings the doorbells (ninv/doorbell.py) in a folder beside
  its database after each commit; each API process binds one bell there.

A notice is a hint, never the data: a waiter always re-reads the store, and keeps polling at
NINV_POLL_S in case a notice is lost (Redis reconnecting, a full socket queue).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from ninv.doorbell import Bell, bell_folder, ring
from ninv.settings import Settings

__all__ = [
    "ChangeFeed",
    "Watch",
    "changes_channel",
    "changes_folder",
    "open_feed",
    "ring_changes",
]

log = logging.getLogger(__name__)

#: Job ids per datagram: each id is 32 characters, so a datagram stays a few KiB.
_IDS_PER_RING = 100


def changes_channel(prefix: str) -> str:
    """The Redis pub/sub channel the store publishes changed job ids on."""
    return f"{prefix}:changed"


def changes_folder(database: Path) -> Path:
    """Where the bells of the API processes that watch the SQLite store `database` live."""
    return bell_folder(database.parent / f"{database.name}.changes")


def ring_changes(folder: Path, job_ids: Sequence[str]) -> None:
    """Tell every watching process (SQLite store) that these jobs changed."""
    for start in range(0, len(job_ids), _IDS_PER_RING):
        ring(folder, "\n".join(job_ids[start : start + _IDS_PER_RING]).encode())


class Watch:
    """One waiter's interest in one job; made by `ChangeFeed.watch` on the event loop."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()

    def notify(self) -> None:  # from the feed's thread
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
            self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a notice; True if one came (since the last wait)."""
        try:
            await asyncio.wait_for(self._event.wait(), max(0.0, timeout))
        except TimeoutError:
            return False
        self._event.clear()
        return True


class ChangeFeed:
    """Delivers change notices to the watches of one process, from a background thread.

    The base class delivers nothing (waiters fall back to polling); subclasses listen.
    """

    def __init__(self) -> None:
        self._watches: dict[str, set[Watch]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._ready = threading.Event()

    @contextlib.contextmanager
    def watch(self, job_id: str) -> Iterator[Watch]:
        """Watch a job while the block runs; make it before reading the job, so that a change
        written after the read is never missed."""
        self._ensure_started()
        watch = Watch(job_id)
        with self._lock:
            self._watches.setdefault(job_id, set()).add(watch)
        try:
            yield watch
        finally:
            with self._lock:
                watches = self._watches.get(job_id)
                if watches is not None:
                    watches.discard(watch)
                    if not watches:
                        del self._watches[job_id]

    def deliver(self, job_ids: Iterable[str]) -> None:
        """Wake the watches of these jobs (called by the listening thread)."""
        with self._lock:
            woken = [w for job_id in job_ids for w in self._watches.get(job_id, ())]
        for watch in woken:
            watch.notify()

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="ninv-changes", daemon=True)
            self._thread.start()
        # A watch made before the subscription is live would rely on polling: wait briefly.
        self._ready.wait(1.0)

    def _run(self) -> None:
        self._ready.set()

    def close(self) -> None:
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)


class RedisFeed(ChangeFeed):
    """Subscribes to the store's channel; reconnects (and so misses notices) if Redis drops."""

    def __init__(self, url: str, channel: str) -> None:
        super().__init__()
        self._url = url
        self._channel = channel

    def _run(self) -> None:
        import redis

        while not self._stopping.is_set():
            client = redis.Redis.from_url(self._url, socket_connect_timeout=1)
            pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(self._channel)
                pubsub.get_message(timeout=1.0)  # the subscription's confirmation
                self._ready.set()
                while not self._stopping.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message is not None and message["type"] == "message":
                        self.deliver(message["data"].decode().split())
            except Exception as exc:  # Redis gone, or anything else: waiters poll meanwhile
                log.debug("change feed: %s; reconnecting", exc)
                self._stopping.wait(1.0)
            finally:
                with contextlib.suppress(Exception):
                    pubsub.close()
                    client.close()


class BellFeed(ChangeFeed):
    """Binds a bell in the SQLite store's changes folder and wakes the watches it names."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self._folder = folder

    def _run(self) -> None:
        bell = Bell(self._folder)
        self._ready.set()
        try:
            if not bell.working:
                return  # polling only
            while not self._stopping.is_set():
                payloads = bell.wait(0.5)
                if payloads:
                    text = (p.decode(errors="replace") for p in payloads)
                    self.deliver(i for t in text for i in t.split("\n") if i)
        finally:
            bell.close()


def open_feed(settings: Settings) -> ChangeFeed:
    """The change feed for the store these settings open (not started until a first watch)."""
    if settings.redis_url:
        return RedisFeed(settings.redis_url, changes_channel(settings.redis_prefix))
    return BellFeed(changes_folder(settings.data_dir / "jobs.sqlite3"))
