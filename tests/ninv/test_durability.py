"""The start-up line on how durable accepted jobs are (ninv.durability)."""

from __future__ import annotations

import pytest

from ninv.durability import describe_persistence, log_persistence
from tests.helpers import REDIS_URL


def test_describe_persistence() -> None:
    assert describe_persistence("yes", "")[0]
    durable, line = describe_persistence("no", "3600 1")
    assert not durable
    assert "snapshots only" in line
    durable, line = describe_persistence("no", "")
    assert not durable
    assert "loses every accepted job" in line


def test_log_persistence_says_what_it_found(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="ninv.durability")
    assert log_persistence(REDIS_URL) is not None
    assert log_persistence("redis://127.0.0.1:1/0", timeout_s=0.2) is None
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0].startswith("Redis persistence: ")
    assert lines[1].startswith("Redis persistence: could not check")
