"""Doorbells (Unix datagram sockets in a folder) and the embedded broker that rings them."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery.worker import state as worker_state
from kombu import Queue

from ninv.doorbell import Bell, bell_folder, ring
from ninv.fsbroker import broker_options
from ninv.queue import enqueue, make_celery
from ninv.settings import Settings


@pytest.fixture
def folder() -> Iterator[Path]:
    """A short folder: pytest's tmp_path can be too long for a socket path (bell_folder's
    stand-in handles that, tested below)."""
    path = Path(tempfile.mkdtemp(prefix="bells-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_ring_reaches_every_bell_with_its_payload(folder: Path) -> None:
    first, second = Bell(folder), Bell(folder)
    try:
        assert first.working and second.working
        assert first.wait(0) == []
        assert ring(folder, b"job-1") == 2
        ring(folder, b"job-2")
        assert first.wait(5) == [b"job-1", b"job-2"]
        assert second.drain() == [b"job-1", b"job-2"]
    finally:
        first.close()
        second.close()
    assert not folder.exists()  # the last bell out removes the empty folder


def test_a_dead_processs_bell_is_removed_by_the_next_ring(folder: Path) -> None:
    dead = folder / "12345-dead.bell"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(dead))
    sock.close()  # the file stays, as after kill -9
    assert ring(folder) == 0
    assert not dead.exists()


def test_a_folder_too_deep_for_a_socket_gets_a_short_stand_in(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["deep-folder-name"] * 8)
    stand_in = bell_folder(deep)
    assert stand_in == bell_folder(deep)  # every process derives the same one
    assert len(str(stand_in)) < 60
    assert bell_folder(Path("/tmp/x")) == Path("/tmp/x").resolve()
    bell = Bell(stand_in)
    try:
        assert bell.working
        ring(stand_in, b"hello")
        assert bell.wait(5) == [b"hello"]
    finally:
        bell.close()
    assert not stand_in.exists()


def test_the_embedded_broker_writes_whole_messages_and_rings(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    options = broker_options(settings.data_dir / "broker")
    bell = Bell(Path(str(options["bell_folder"])))
    app = make_celery(settings)
    try:
        enqueue(app, "0123")
        assert bell.wait(5) == [b"m"]
    finally:
        bell.close()
        app.close()
    queue = Path(str(options["data_folder_in"]))
    messages = [p.name for p in queue.iterdir()]
    assert len(messages) == 1 and messages[0].endswith(".ninv.msg")  # no .part left behind


def test_half_written_messages_a_killed_sender_left_are_removed_at_start(tmp_path: Path) -> None:
    queue = tmp_path / "broker" / "queue"
    queue.mkdir(parents=True)
    stale, fresh = queue / ".1_a.celery.msg.part", queue / ".2_b.celery.msg.part"
    message = queue / "3_c.celery.msg"
    for path in (stale, fresh, message):
        path.write_bytes(b"{}")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    os.utime(message, (old, old))

    broker_options(tmp_path / "broker")

    assert not stale.exists()
    assert fresh.exists()  # may be another process's write in progress
    assert message.exists()  # a whole message is never touched


def test_a_worker_asked_to_stop_takes_no_more_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Celery's blocking loop sees a warm shutdown only between waits, then waits once more:
    # the embedded broker hands the loop back at once instead (it took 4 s, two full waits).
    settings = Settings(data_dir=tmp_path / "data")
    app = make_celery(settings)
    received: list[object] = []
    try:
        enqueue(app, "0123")
        with app.connection_for_read() as conn:
            queue = Queue(app.conf.task_default_queue)
            with conn.Consumer(queue, callbacks=[lambda body, message: received.append(body)]):
                monkeypatch.setattr(worker_state, "should_stop", 0)  # what SIGTERM sets
                with pytest.raises(TimeoutError):
                    conn.drain_events(timeout=30)
                assert received == []  # the message stays for the next worker

                monkeypatch.setattr(worker_state, "should_stop", None)
                conn.drain_events(timeout=30)
                assert len(received) == 1
    finally:
        app.close()
