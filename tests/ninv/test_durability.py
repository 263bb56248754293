"""The start-up line on how durable accepted jobs are (ninv.durability)."""

from __future__ import annotations

import pytest
from redis.exceptions import ResponseError

from ninv.durability import describe_persistence, log_persistence, version_problem
from ninv.store import StoreUnavailable
from ninv.store._redis import _guard
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


def test_a_redis_older_than_7_is_named_at_start_up_and_on_every_call() -> None:
    assert version_problem("7.0.15") is None
    assert version_problem("8.2.1") is None
    assert version_problem("unknown") is None
    problem = version_problem("6.2.14")
    assert problem is not None and "Redis 7.0 or newer" in problem

    @_guard
    def script_on_redis_6() -> None:  # what Redis 6 answers to a script with flags
        raise ResponseError(
            "Error compiling script (new function): user_script:1: unexpected symbol near '#'"
        )

    with pytest.raises(StoreUnavailable, match=r"Redis 7\.0 or newer"):
        script_on_redis_6()  # a 503 with the reason, not a 500
