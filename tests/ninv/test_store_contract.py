"""The job store contract: every test runs against Redis and against SQLite."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from ninv.jobs import JobRecord, utcnow
from ninv.schemas import HistoryPoint, JobStatus, Progress, SolveOptions, Summary
from ninv.store import (
    Beat,
    Heartbeat,
    IdempotencyConflict,
    JobNotFound,
    JobStore,
    NotFinished,
    Outcome,
    StoreUnavailable,
)
from ninv.store._redis import RedisStore
from ninv.store._sqlite import SqliteStore
from tests.fake_worker import finish, heartbeat, load_result
from tests.ninv.conftest import REDIS_URL, RETENTION_S
from worker.solver import HistoryPoint as SolverPoint

MATRIX = b"\x93NUMPY matrix bytes \x00\x01\x02\xff"
RESULT = b"\x93NUMPY result bytes \xfe\x00"
LEASE = 30.0

_clock = [utcnow()]


def make_job(
    owner: str = "alice",
    *,
    batch_key: str | None = None,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    method: str = "adam",
) -> JobRecord:
    # strictly increasing creation times, so "newest first" is well defined
    _clock[0] = max(_clock[0] + timedelta(microseconds=1), utcnow())
    return JobRecord(
        id=uuid.uuid4().hex,
        status=JobStatus.queued,
        options=SolveOptions.model_validate({"method": method, "max_iter": 100}),
        n=4,
        input_dtype="float64",
        created_at=_clock[0],
        owner=owner,
        batch_key=batch_key,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
    )


def add(store: JobStore, **kwargs: object) -> JobRecord:
    job, created, _ = store.create(make_job(**kwargs), MATRIX)  # type: ignore[arg-type]
    assert created
    return job


def summary(method: str = "adam", elapsed_s: float = 1.5) -> Summary:
    return Summary.model_validate(
        {
            "method": method,
            "iterations": 100,
            "max_iter": 100,
            "loss": 1e-9,
            "residual": 1e-7,
            "aux_error": None,
            "converged": True,
            "reason": "converged",
            "cond": 12.5,
            "device": "cpu",
            "dtype": "float64",
            "elapsed_s": elapsed_s,
        }
    )


def point(i: int) -> HistoryPoint:
    return HistoryPoint(iteration=i, loss=1.0 / (i + 1), residual=0.5 / (i + 1))


def run_to_end(store: JobStore, job: JobRecord, status: JobStatus = JobStatus.succeeded) -> None:
    assert store.claim(job.id, "w1", LEASE) is not None
    assert finish(store, job.id, "w1", status=status, summary=summary(), result=RESULT)


# -- create, get, idempotency ---------------------------------------------------------------


def test_create_get_load(store: JobStore) -> None:
    job = make_job(batch_key="adam:float64:auto:4")
    stored, created, _ = store.create(job, MATRIX)
    assert created
    assert stored == job
    got = store.get(job.id)
    assert got == job
    assert got is not None
    assert got.model_dump_json() == job.model_dump_json()
    assert got.created_at.tzinfo is not None
    assert store.load_matrices([job.id])[0] == MATRIX
    assert load_result(store, job.id) is None
    assert store.history(job.id) == []
    assert store.get("nope") is None
    assert store.load_matrices(["nope"])[0] is None
    store.ping()


def test_idempotency(store: JobStore) -> None:
    first, created, _ = store.create(make_job(idempotency_key="k1", request_hash="h1"), MATRIX)
    assert created
    again, created, _ = store.create(make_job(idempotency_key="k1", request_hash="h1"), MATRIX)
    assert not created
    assert again.id == first.id
    with pytest.raises(IdempotencyConflict) as info:
        store.create(make_job(idempotency_key="k1", request_hash="h2"), MATRIX)
    assert info.value.job_id == first.id
    other, created, _ = store.create(
        make_job(owner="bob", idempotency_key="k1", request_hash="h1"), MATRIX
    )
    assert created
    assert other.id != first.id
    assert len(store.list("alice")[0]) == 1
    assert len(store.list("bob")[0]) == 1


def test_idempotency_key_freed_by_delete(store: JobStore) -> None:
    job, _, _ = store.create(make_job(idempotency_key="k", request_hash="h"), MATRIX)
    run_to_end(store, job)
    store.delete(job.id)
    again, created, _ = store.create(make_job(idempotency_key="k", request_hash="h2"), MATRIX)
    assert created
    assert again.id != job.id


# -- listing --------------------------------------------------------------------------------


def test_list_newest_first_filter_and_pages(store: JobStore) -> None:
    jobs = [add(store) for _ in range(7)]
    add(store, owner="bob")
    run_to_end(store, jobs[1])
    run_to_end(store, jobs[4])

    listed, cursor = store.list("alice")
    assert [j.id for j in listed] == [j.id for j in reversed(jobs)]
    assert cursor is None

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page, cursor = store.list("alice", cursor=cursor, limit=3)
        pages += 1
        assert len(page) <= 3
        seen += [j.id for j in page]
        if cursor is None:
            break
    assert seen == [j.id for j in reversed(jobs)]
    assert pages == 3

    done, cursor = store.list("alice", status=JobStatus.succeeded)
    assert [j.id for j in done] == [jobs[4].id, jobs[1].id]
    assert cursor is None
    first, cursor = store.list("alice", status=JobStatus.queued, limit=2)
    assert [j.id for j in first] == [jobs[6].id, jobs[5].id]
    assert cursor is not None
    rest, cursor2 = store.list("alice", status=JobStatus.queued, cursor=cursor, limit=10)
    assert [j.id for j in rest] == [jobs[3].id, jobs[2].id, jobs[0].id]
    assert cursor2 is None

    # exact page boundary: no cursor for an empty page
    page, cursor = store.list("alice", limit=7)
    assert len(page) == 7
    assert cursor is None

    assert [j.owner for j in store.list("bob")[0]] == ["bob"]
    assert store.list("carol") == ([], None)


def test_list_bad_cursor(store: JobStore) -> None:
    with pytest.raises(ValueError, match="cursor"):
        store.list("alice", cursor="garbage")


# -- claim ----------------------------------------------------------------------------------


def test_claim(store: JobStore) -> None:
    job = add(store)
    claimed = store.claim(job.id, "w1", LEASE)
    assert claimed is not None
    assert claimed.status == JobStatus.running
    assert claimed.attempts == 1
    assert claimed.worker == "w1"
    assert claimed.started_at is not None
    assert claimed.lease_until is not None
    assert claimed.lease_until > utcnow()
    assert store.get(job.id) == claimed
    assert store.claim(job.id, "w2", LEASE) is None
    assert store.claim("nope", "w2", LEASE) is None
    assert finish(store, job.id, "w1", status=JobStatus.succeeded)
    assert store.claim(job.id, "w2", LEASE) is None
    got = store.get(job.id)
    assert got is not None
    assert got.status == JobStatus.succeeded


def test_claim_compatible(store: JobStore) -> None:
    a = [add(store, batch_key="A") for _ in range(5)]
    b = add(store, batch_key="B")
    plain = add(store)
    store.request_cancel(a[0].id)  # no longer queued
    assert store.claim(a[1].id, "w0", LEASE) is not None

    got = store.claim_compatible("A", "w1", LEASE, limit=2)
    assert [j.id for j in got] == [a[2].id, a[3].id]
    assert all(j.status == JobStatus.running and j.worker == "w1" for j in got)
    assert all(j.attempts == 1 for j in got)
    got = store.claim_compatible("A", "w2", LEASE, limit=10)
    assert [j.id for j in got] == [a[4].id]
    assert store.claim_compatible("A", "w2", LEASE, limit=10) == []
    assert store.claim_compatible("C", "w2", LEASE, limit=10) == []
    assert store.queued_ids() == [b.id, plain.id]


def test_claim_race_threads(store: JobStore) -> None:
    for _ in range(5):
        job = add(store)
        wins: list[str] = []
        barrier = threading.Barrier(8)

        def racer(
            name: str,
            job_id: str = job.id,
            barrier: threading.Barrier = barrier,
            wins: list[str] = wins,
        ) -> None:
            barrier.wait()
            if store.claim(job_id, name, LEASE) is not None:
                wins.append(name)

        threads = [threading.Thread(target=racer, args=(f"w{i}",)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1
        got = store.get(job.id)
        assert got is not None
        assert got.worker == wins[0]
        assert got.attempts == 1


def test_claim_compatible_race_threads(store: JobStore) -> None:
    jobs = [add(store, batch_key="K") for _ in range(30)]
    claimed: list[list[str]] = []
    barrier = threading.Barrier(4)

    def racer(name: str) -> None:
        barrier.wait()
        mine: list[str] = []
        while batch := store.claim_compatible("K", name, LEASE, limit=4):
            mine += [j.id for j in batch]
        claimed.append(mine)

    threads = [threading.Thread(target=racer, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [job_id for mine in claimed for job_id in mine]
    assert sorted(everything) == sorted(j.id for j in jobs)


def test_claim_compatible_oldest_first_and_limit(store: JobStore) -> None:
    jobs = [add(store, batch_key="A") for _ in range(40)]
    others = [add(store, batch_key="B") for _ in range(3)]
    for job in jobs[5:10]:  # not queued any more: skipped
        store.request_cancel(job.id)
    assert store.claim(jobs[12].id, "w0", LEASE) is not None
    got = store.claim_compatible("A", "w1", LEASE, limit=20)
    expected = [j.id for j in jobs[:5] + jobs[10:12] + jobs[13:26]]
    assert [j.id for j in got] == expected
    assert all((j.status, j.worker, j.attempts) == (JobStatus.running, "w1", 1) for j in got)
    assert [store.get(j.id) for j in got] == got
    got = store.claim_compatible("A", "w2", LEASE, limit=100)
    assert [j.id for j in got] == [j.id for j in jobs[26:]]
    assert store.claim_compatible("A", "w2", LEASE, limit=100) == []
    assert store.claim_compatible("B", "w2", LEASE, limit=0) == []
    assert store.queued_ids() == [j.id for j in others]


def test_claim_compatible_race_many(store: JobStore) -> None:
    jobs = [add(store, batch_key="K") for _ in range(120)]
    claimed: list[list[str]] = []
    barrier = threading.Barrier(6)

    def racer(name: str, limit: int) -> None:
        barrier.wait()
        mine: list[str] = []
        while batch := store.claim_compatible("K", name, LEASE, limit=limit):
            assert len(batch) <= limit
            mine += [j.id for j in batch]
        claimed.append(mine)

    threads = [
        threading.Thread(target=racer, args=(f"w{i}", limit))
        for i, limit in enumerate((1, 3, 7, 16, 32, 64))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [job_id for mine in claimed for job_id in mine]
    assert Counter(everything).most_common(1)[0][1] == 1  # nobody claimed a job twice
    assert sorted(everything) == sorted(j.id for j in jobs)
    for job in jobs:
        got = store.get(job.id)
        assert got is not None
        assert (got.status, got.attempts) == (JobStatus.running, 1)
    assert store.queued_ids() == []


def test_claim_not_queued_is_none(store: JobStore) -> None:
    done, running, queued = add(store), add(store), add(store)
    run_to_end(store, done)
    assert store.claim(running.id, "w1", LEASE) is not None
    assert store.claim(done.id, "w2", LEASE) is None
    assert store.claim(running.id, "w2", LEASE) is None
    assert store.claim("nope", "w2", LEASE) is None
    got = store.get(running.id)
    assert got is not None
    assert (got.worker, got.attempts) == ("w1", 1)
    claimed = store.claim(queued.id, "w2", LEASE)
    assert claimed is not None
    assert (claimed.status, claimed.worker) == (JobStatus.running, "w2")


# -- heartbeat, finish ----------------------------------------------------------------------


def test_heartbeat(store: JobStore) -> None:
    job = add(store)
    claimed = store.claim(job.id, "w1", 5.0)
    assert claimed is not None
    assert claimed.lease_until is not None
    progress = Progress(
        iteration=10, max_iter=100, loss=0.5, residual=0.25, rate=100.0, updated_at=utcnow()
    )
    beat = heartbeat(store, job.id, "w1", 60.0, progress=progress, history=[point(0), point(1)])
    assert beat == Heartbeat(owned=True, cancel_requested=False)
    got = store.get(job.id)
    assert got is not None
    assert got.progress == progress
    assert got.lease_until is not None
    assert got.lease_until > claimed.lease_until
    assert store.history(job.id) == [point(0), point(1)]

    assert heartbeat(store, job.id, "w2", LEASE, history=[point(9)]) == Heartbeat(
        owned=False, cancel_requested=False
    )
    assert store.history(job.id) == [point(0), point(1)]
    assert heartbeat(store, "nope", "w1", LEASE).owned is False

    store.request_cancel(job.id)
    assert heartbeat(store, job.id, "w1", LEASE) == Heartbeat(owned=True, cancel_requested=True)
    assert finish(store, job.id, "w1", status=JobStatus.cancelled)
    beat = heartbeat(store, job.id, "w1", LEASE, progress=progress)
    assert beat.owned is False


def test_history_cap_keeps_first(store: JobStore) -> None:
    job = add(store)
    assert store.claim(job.id, "w1", LEASE) is not None
    heartbeat(
        store, job.id, "w1", LEASE, history=[point(i) for i in range(4)], history_max_points=5
    )
    assert [p.iteration for p in store.history(job.id)] == [0, 1, 2, 3]
    heartbeat(store, job.id, "w1", LEASE, history=[point(4), point(5)], history_max_points=5)
    assert [p.iteration for p in store.history(job.id)] == [0, 2, 3, 4, 5]
    for i in range(6, 20):
        heartbeat(store, job.id, "w1", LEASE, history=[point(i)], history_max_points=5)
    assert [p.iteration for p in store.history(job.id)] == [0, 16, 17, 18, 19]
    heartbeat(
        store, job.id, "w1", LEASE, history=[point(i) for i in range(20, 40)], history_max_points=5
    )
    assert [p.iteration for p in store.history(job.id)] == [0, 36, 37, 38, 39]

    other = add(store)
    assert store.claim(other.id, "w1", LEASE) is not None
    heartbeat(
        store, other.id, "w1", LEASE, history=[point(i) for i in range(10)], history_max_points=3
    )
    assert [p.iteration for p in store.history(other.id)] == [0, 8, 9]


def test_heartbeat_many(store: JobStore) -> None:
    mine = [add(store) for _ in range(4)]
    theirs, queued, done = add(store), add(store), add(store)
    for job in mine:
        assert store.claim(job.id, "w1", 5.0) is not None
    assert store.claim(theirs.id, "w2", 5.0) is not None
    assert store.claim(done.id, "w1", LEASE) is not None
    assert finish(store, done.id, "w1", status=JobStatus.succeeded)
    store.request_cancel(mine[2].id)
    store.request_cancel(theirs.id)
    before = {j.id: store.get(j.id) for j in (theirs, queued, done)}
    progress = Progress(
        iteration=3, max_iter=100, loss=0.5, residual=0.25, rate=10.0, updated_at=utcnow()
    )
    beats = [
        Beat(mine[0].id, progress=progress, history=[point(0), point(1)]),
        Beat(theirs.id, progress=progress, history=[point(0)]),
        Beat(mine[1].id),
        Beat(queued.id, history=[point(0)]),
        Beat(mine[2].id, history=[point(5)]),
        Beat("nope", progress=progress),
        Beat(done.id, history=[point(0)]),
        Beat(mine[3].id, progress=progress),
    ]
    answers = store.heartbeat_many("w1", 60.0, beats)
    assert answers == [
        Heartbeat(owned=True, cancel_requested=False),
        Heartbeat(owned=False, cancel_requested=True),
        Heartbeat(owned=True, cancel_requested=False),
        Heartbeat(owned=False, cancel_requested=False),
        Heartbeat(owned=True, cancel_requested=True),
        Heartbeat(owned=False, cancel_requested=False),
        Heartbeat(owned=False, cancel_requested=False),
        Heartbeat(owned=True, cancel_requested=False),
    ]
    soon = utcnow() + timedelta(seconds=30)
    for job, want_progress in ((mine[0], progress), (mine[1], None), (mine[3], progress)):
        got = store.get(job.id)
        assert got is not None
        assert got.progress == want_progress
        assert got.lease_until is not None
        assert got.lease_until > soon
    assert store.history(mine[0].id) == [point(0), point(1)]
    assert store.history(mine[1].id) == []
    assert store.history(mine[2].id) == [point(5)]
    for job_id, record in before.items():
        assert store.get(job_id) == record  # untouched
        assert store.history(job_id) == []
    assert store.heartbeat_many("w1", LEASE, []) == []

    # the leases were renewed: none of them expires now, the others' would
    assert store.recover_expired(utcnow() + timedelta(seconds=10), max_attempts=5) == (
        [],
        [theirs.id],
    )


def test_heartbeat_many_history_cap(store: JobStore) -> None:
    a, b = add(store), add(store)
    for job in (a, b):
        assert store.claim(job.id, "w1", LEASE) is not None
    store.heartbeat_many(
        "w1",
        LEASE,
        [Beat(a.id, history=[point(i) for i in range(4)]), Beat(b.id, history=[point(0)])],
        history_max_points=5,
    )
    assert [p.iteration for p in store.history(a.id)] == [0, 1, 2, 3]
    for i in range(4, 20, 2):
        answers = store.heartbeat_many(
            "w1",
            LEASE,
            [Beat(a.id, history=[point(i), point(i + 1)]), Beat(b.id, history=[point(i)])],
            history_max_points=5,
        )
        assert [x.owned for x in answers] == [True, True]
    assert [p.iteration for p in store.history(a.id)] == [0, 16, 17, 18, 19]
    assert [p.iteration for p in store.history(b.id)] == [0, 12, 14, 16, 18]
    store.heartbeat_many(
        "w1", LEASE, [Beat(b.id, history=[point(i) for i in range(20, 30)])], history_max_points=1
    )
    assert [p.iteration for p in store.history(b.id)] == [0]

    # the same job twice in one call: both beats apply, in order
    c = add(store)
    assert store.claim(c.id, "w1", LEASE) is not None
    answers = store.heartbeat_many(
        "w1",
        LEASE,
        [Beat(c.id, history=[point(0), point(1)]), Beat(c.id, history=[point(2), point(3)])],
        history_max_points=3,
    )
    assert answers == [Heartbeat(owned=True, cancel_requested=False)] * 2
    assert [p.iteration for p in store.history(c.id)] == [0, 2, 3]


def test_finish(store: JobStore) -> None:
    job = add(store)
    assert not finish(store, job.id, "w1", status=JobStatus.succeeded)  # not running
    assert store.claim(job.id, "w1", LEASE) is not None
    assert not finish(store, job.id, "w2", status=JobStatus.succeeded, result=b"bad")
    assert load_result(store, job.id) is None
    before = utcnow()
    assert finish(store, job.id, "w1", status=JobStatus.succeeded, summary=summary(), result=RESULT)
    got = store.get(job.id)
    assert got is not None
    assert got.status == JobStatus.succeeded
    assert got.summary == summary()
    assert got.finished_at is not None
    assert got.finished_at >= before
    assert got.lease_until is None
    assert got.error is None
    assert load_result(store, job.id) == RESULT
    assert not finish(store, job.id, "w1", status=JobStatus.failed, error="again")
    got2 = store.get(job.id)
    assert got2 == got

    failed = add(store)
    assert store.claim(failed.id, "w1", LEASE) is not None
    assert finish(store, failed.id, "w1", status=JobStatus.failed, error="singular matrix")
    got = store.get(failed.id)
    assert got is not None
    assert (got.status, got.error) == (JobStatus.failed, "singular matrix")

    with pytest.raises(ValueError):
        finish(store, failed.id, "w1", status=JobStatus.running)


def test_finish_with_history_replaces_the_curve(store: JobStore) -> None:
    job = add(store)
    assert store.claim(job.id, "w1", LEASE) is not None
    heartbeat(store, job.id, "w1", LEASE, history=[point(i) for i in range(3)])
    assert not finish(store, job.id, "w2", status=JobStatus.succeeded, history=[point(9)])
    assert store.history(job.id) == [point(0), point(1), point(2)]
    assert finish(
        store,
        job.id,
        "w1",
        status=JobStatus.succeeded,
        result=RESULT,
        history=[point(i) for i in range(7)],
        history_max_points=4,
    )
    # Thinned evenly by position, first and last kept: the curve stays log-spaced.
    assert [p.iteration for p in store.history(job.id)] == [0, 2, 4, 6]
    assert store.history(job.id, owner=job.owner) == store.history(job.id)
    got = store.get(job.id)
    assert got is not None
    assert got.status == JobStatus.succeeded
    kept = add(store)  # no history given: the live curve stays
    assert store.claim(kept.id, "w1", LEASE) is not None
    heartbeat(store, kept.id, "w1", LEASE, history=[point(5)])
    assert finish(store, kept.id, "w1", status=JobStatus.failed, error="x")
    assert store.history(kept.id) == [point(5)]


def test_a_curve_of_solver_points_reads_back_as_history_points(store: JobStore) -> None:
    # A finished job's curve is written from the solver's own named tuples, with no model per
    # point: it reads back as the models, a non-finite figure (a diverged solve's) as null.
    job = add(store)
    assert store.claim(job.id, "w1", LEASE) is not None
    inf, nan = float("inf"), float("nan")
    solver_points = [
        SolverPoint(0, 0.25, 0.5, 1e-3, 0.05),
        SolverPoint(64, inf, nan, None, 0.025),
        SolverPoint(128, 1e-320, -0.0, nan, None),
    ]
    assert finish(store, job.id, "w1", status=JobStatus.failed, error="x", history=solver_points)
    assert store.history(job.id) == [
        HistoryPoint(iteration=0, loss=0.25, residual=0.5, aux_error=1e-3, lr=0.05),
        HistoryPoint(iteration=64, loss=None, residual=None, aux_error=None, lr=0.025),
        HistoryPoint(iteration=128, loss=1e-320, residual=-0.0, aux_error=None, lr=None),
    ]


def test_a_long_curve_reported_and_finished(store: JobStore) -> None:
    # A heartbeat of more points than one command of Redis's batched-writes script takes:
    # written the plain way. The finished curve is one value.
    job = add(store)
    assert store.claim(job.id, "w1", LEASE) is not None
    curve = [point(i) for i in range(5000)]
    heartbeat(store, job.id, "w1", LEASE, history=curve, history_max_points=6000)
    assert store.history(job.id) == curve
    assert finish(
        store,
        job.id,
        "w1",
        status=JobStatus.succeeded,
        result=RESULT,
        history=curve,
        history_max_points=6000,
    )
    assert store.history(job.id) == curve
    assert store.result(job.id)[1] == RESULT


def test_finish_many(store: JobStore) -> None:
    assert store.solve_time_totals() == {}
    a, b, c = add(store), add(store), add(store)
    theirs, queued, done = add(store), add(store), add(store)
    for job in (a, b, c, done):
        assert store.claim(job.id, "w1", LEASE) is not None
    assert store.claim(theirs.id, "w2", LEASE) is not None
    assert finish(store, done.id, "w1", status=JobStatus.failed, error="earlier")
    heartbeat(store, a.id, "w1", LEASE, history=[point(0), point(1)])
    before = {j.id: store.get(j.id) for j in (theirs, queued, done)}
    start = utcnow()
    outcomes = [
        Outcome(
            a.id,
            status=JobStatus.succeeded,
            summary=summary("adam", 1.5),
            result=RESULT,
            history=[point(2), point(3), point(4)],
        ),
        Outcome(theirs.id, status=JobStatus.succeeded, summary=summary(), result=b"bad"),
        Outcome(b.id, status=JobStatus.failed, summary=summary("cg", 0.5), error="singular"),
        Outcome(queued.id, status=JobStatus.cancelled, history=[point(0)]),
        Outcome("nope", status=JobStatus.succeeded),
        Outcome(done.id, status=JobStatus.succeeded, summary=summary(), result=b"bad"),
        Outcome(c.id, status=JobStatus.cancelled, summary=summary("adam", 2.25)),
        Outcome(c.id, status=JobStatus.failed, error="twice"),  # already finished just above
    ]
    assert store.finish_many("w1", outcomes, history_max_points=4) == [
        True,
        False,
        True,
        False,
        False,
        False,
        True,
        False,
    ]
    got_a, got_b, got_c = store.get(a.id), store.get(b.id), store.get(c.id)
    assert got_a is not None and got_b is not None and got_c is not None
    assert (got_a.status, got_a.summary, got_a.error) == (
        JobStatus.succeeded,
        summary("adam", 1.5),
        None,
    )
    assert (got_b.status, got_b.error) == (JobStatus.failed, "singular")
    assert (got_c.status, got_c.error) == (JobStatus.cancelled, None)
    for got in (got_a, got_b, got_c):
        assert got.finished_at is not None
        assert got.finished_at >= start
        assert got.lease_until is None
    assert load_result(store, a.id) == RESULT
    assert load_result(store, b.id) is None
    assert [p.iteration for p in store.history(a.id)] == [2, 3, 4]  # replaced
    for job_id, record in before.items():
        assert store.get(job_id) == record  # untouched
        assert load_result(store, job_id) is None
        assert store.history(job_id) == []
    totals = store.solve_time_totals()
    assert totals.keys() == {"adam", "cg"}
    assert totals["adam"][0] == 2
    assert totals["adam"][1] == pytest.approx(3.75)
    assert totals["cg"][0] == 1
    assert totals["cg"][1] == pytest.approx(0.5)
    counts = store.count_by_status()
    assert counts[JobStatus.running] == 1
    assert counts[JobStatus.queued] == 1
    assert store.finish_many("w1", []) == []

    # a status that is not final: ValueError, and nothing changes
    d = add(store)
    assert store.claim(d.id, "w1", LEASE) is not None
    with pytest.raises(ValueError):
        store.finish_many(
            "w1",
            [
                Outcome(d.id, status=JobStatus.succeeded),
                Outcome(theirs.id, status=JobStatus.running),
            ],
        )
    got_d = store.get(d.id)
    assert got_d is not None
    assert got_d.status == JobStatus.running


# -- cancel, delete -------------------------------------------------------------------------


def test_request_cancel(store: JobStore) -> None:
    queued = add(store, batch_key="A")
    cancelled = store.request_cancel(queued.id)
    assert cancelled.status == JobStatus.cancelled
    assert cancelled.finished_at is not None
    assert store.get(queued.id) == cancelled
    assert store.queued_ids() == []
    assert store.claim(queued.id, "w1", LEASE) is None
    assert store.claim_compatible("A", "w1", LEASE, 5) == []

    running = add(store)
    assert store.claim(running.id, "w1", LEASE) is not None
    flagged = store.request_cancel(running.id)
    assert flagged.status == JobStatus.running
    assert flagged.cancel_requested
    assert store.request_cancel(running.id).cancel_requested  # idempotent
    assert heartbeat(store, running.id, "w1", LEASE).cancel_requested

    with pytest.raises(NotFinished) as info:
        store.request_cancel(queued.id)
    assert info.value.status == JobStatus.cancelled
    with pytest.raises(JobNotFound):
        store.request_cancel("nope")


def test_delete(store: JobStore) -> None:
    job = add(store)
    with pytest.raises(NotFinished) as info:
        store.delete(job.id)
    assert info.value.status == JobStatus.queued
    assert store.claim(job.id, "w1", LEASE) is not None
    heartbeat(store, job.id, "w1", LEASE, history=[point(0)])
    with pytest.raises(NotFinished):
        store.delete(job.id)
    assert finish(store, job.id, "w1", status=JobStatus.succeeded, result=RESULT)
    store.delete(job.id)
    assert store.get(job.id) is None
    assert store.load_matrices([job.id])[0] is None
    assert load_result(store, job.id) is None
    assert store.history(job.id) == []
    assert store.list("alice") == ([], None)
    with pytest.raises(JobNotFound):
        store.delete(job.id)


def test_owner_scoped_calls_see_only_the_owners_jobs(store: JobStore) -> None:
    """Another owner's job is as unknown as a missing one, and nothing changes."""
    job = add(store, owner="alice")
    assert store.get(job.id, owner="bob") is None
    assert store.get(job.id, owner="alice") == job
    for call in (store.result, store.history, store.request_cancel, store.delete):
        for job_id, owner in ((job.id, "bob"), ("nope", "alice")):
            with pytest.raises(JobNotFound) as info:
                call(job_id, owner=owner)  # type: ignore[operator]
            assert str(info.value) == f"no job {job_id}"
    assert store.get(job.id) == job

    assert store.request_cancel(job.id, owner="alice").status == JobStatus.cancelled
    assert store.result(job.id, owner="alice")[1] is None
    assert store.history(job.id, owner="alice") == []
    store.delete(job.id, owner="alice")
    assert store.get(job.id) is None


def test_result_reads_the_job_and_its_inverse_together(store: JobStore) -> None:
    job = add(store)
    run_to_end(store, job)
    record, blob = store.result(job.id, owner="alice")
    assert (record.status, blob) == (JobStatus.succeeded, RESULT)
    with pytest.raises(JobNotFound):
        store.result("nope")


# -- recovery -------------------------------------------------------------------------------


def test_recover_expired(store: JobStore) -> None:
    job = add(store, batch_key="A")
    live = add(store)
    assert store.claim(job.id, "w1", 0.01) is not None
    assert store.claim(live.id, "w1", LEASE) is not None
    heartbeat(store, job.id, "w1", 0.01, history=[point(0)])
    now = utcnow() + timedelta(seconds=1)

    assert store.recover_expired(now, max_attempts=2) == ([job.id], [])
    got = store.get(job.id)
    assert got is not None
    assert got.status == JobStatus.queued
    assert (got.worker, got.lease_until, got.attempts) == (None, None, 1)
    assert store.queued_ids() == [job.id]
    assert heartbeat(store, job.id, "w1", LEASE).owned is False  # the lease is lost
    assert not finish(store, job.id, "w1", status=JobStatus.succeeded)
    assert store.recover_expired(now, max_attempts=2) == ([], [])

    again = store.claim_compatible("A", "w2", 0.01, 5)
    assert [j.attempts for j in again] == [2]
    now = utcnow() + timedelta(seconds=1)
    assert store.recover_expired(now, max_attempts=2) == ([], [job.id])
    got = store.get(job.id)
    assert got is not None
    assert got.status == JobStatus.failed
    assert got.error == "worker lost after 2 attempts"
    assert got.finished_at is not None
    assert store.claim(job.id, "w3", LEASE) is None

    live_now = store.get(live.id)
    assert live_now is not None
    assert live_now.status == JobStatus.running  # its lease is still valid

    # a running job flagged for cancel whose worker died ends cancelled, not requeued
    doomed = add(store)
    assert store.claim(doomed.id, "w1", 0.01) is not None
    store.request_cancel(doomed.id)
    assert store.recover_expired(utcnow() + timedelta(seconds=1), max_attempts=5) == (
        [],
        [doomed.id],
    )
    got = store.get(doomed.id)
    assert got is not None
    assert got.status == JobStatus.cancelled


def test_recover_then_claim_attempts(store: JobStore) -> None:
    job = add(store)
    assert store.claim(job.id, "w1", 0.01) is not None
    requeued, failed = store.recover_expired(utcnow() + timedelta(seconds=1), max_attempts=3)
    assert (requeued, failed) == ([job.id], [])
    claimed = store.claim(job.id, "w2", LEASE)
    assert claimed is not None
    assert claimed.attempts == 2
    assert claimed.worker == "w2"


# -- stats ----------------------------------------------------------------------------------


def test_queued_ids_and_counts(store: JobStore) -> None:
    jobs = [add(store) for _ in range(6)]
    assert store.queued_ids() == [j.id for j in jobs]
    assert store.queued_ids(limit=2) == [jobs[0].id, jobs[1].id]
    assert store.claim(jobs[0].id, "w", LEASE) is not None
    assert store.claim(jobs[1].id, "w", LEASE) is not None
    assert finish(store, jobs[1].id, "w", status=JobStatus.failed, error="x")
    store.request_cancel(jobs[2].id)
    run_to_end(store, jobs[3])
    assert store.queued_ids() == [jobs[4].id, jobs[5].id]
    assert store.count_by_status() == {
        JobStatus.queued: 2,
        JobStatus.running: 1,
        JobStatus.succeeded: 1,
        JobStatus.failed: 1,
        JobStatus.cancelled: 1,
    }
    store.delete(jobs[3].id)
    assert store.count_by_status()[JobStatus.succeeded] == 0


def test_solve_time_totals(store: JobStore) -> None:
    assert store.solve_time_totals() == {}
    for method, elapsed in (("adam", 1.5), ("adam", 2.25), ("cg", 0.5)):
        job = add(store, method=method)
        assert store.claim(job.id, "w", LEASE) is not None
        assert finish(
            store, job.id, "w", status=JobStatus.succeeded, summary=summary(method, elapsed)
        )
    job = add(store)
    assert store.claim(job.id, "w", LEASE) is not None
    assert finish(store, job.id, "w", status=JobStatus.failed, error="no summary")
    totals = store.solve_time_totals()
    assert totals.keys() == {"adam", "cg"}
    assert totals["adam"][0] == 2
    assert totals["adam"][1] == pytest.approx(3.75)
    assert totals["cg"][0] == 1
    assert totals["cg"][1] == pytest.approx(0.5)


# -- Redis specifics ------------------------------------------------------------------------


def test_redis_ttl_on_finished(redis_store: RedisStore, redis_prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        done = add(redis_store, idempotency_key="k", request_hash="h")
        assert redis_store.claim(done.id, "w", LEASE) is not None
        heartbeat(redis_store, done.id, "w", LEASE, history=[point(0)])
        assert client.ttl(f"{redis_prefix}:job:{done.id}") == -1  # live jobs never expire
        assert finish(redis_store, done.id, "w", status=JobStatus.succeeded, result=RESULT)
        cancelled = add(redis_store)
        redis_store.request_cancel(cancelled.id)
        lost = add(redis_store)
        assert redis_store.claim(lost.id, "w", 0.01) is not None
        redis_store.recover_expired(utcnow() + timedelta(seconds=1), max_attempts=1)
        keys = [
            f"{redis_prefix}:{kind}:{job.id}"
            for job in (done, cancelled, lost)
            for kind in ("job", "matrix")
        ]
        keys += [
            f"{redis_prefix}:result:{done.id}",
            f"{redis_prefix}:history:{done.id}",
            f"{redis_prefix}:idem:alice:k",
        ]
        for key in keys:
            ttl = int(client.ttl(key))
            assert 0 < ttl <= RETENTION_S, key
        # a job whose keys expired disappears from listings
        client.delete(f"{redis_prefix}:job:{cancelled.id}")
        assert cancelled.id not in [j.id for j in redis_store.list("alice")[0]]
        assert redis_store.purge_expired(utcnow()) == 0
    finally:
        client.close()


def test_redis_finish_many_ttl(redis_store: RedisStore, redis_prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        jobs = [add(redis_store, idempotency_key=f"k{i}", request_hash="h") for i in range(3)]
        for job in jobs:
            assert redis_store.claim(job.id, "w", LEASE) is not None
        redis_store.heartbeat_many("w", LEASE, [Beat(j.id, history=[point(0)]) for j in jobs])
        assert client.ttl(f"{redis_prefix}:history:{jobs[0].id}") == -1
        assert redis_store.finish_many(
            "w",
            [
                Outcome(jobs[0].id, status=JobStatus.succeeded, result=RESULT),
                Outcome(jobs[1].id, status=JobStatus.failed, error="x", history=[point(1)]),
            ],
        ) == [True, True]
        new_history = add(redis_store)  # history created by the finish itself
        assert redis_store.claim(new_history.id, "w", LEASE) is not None
        assert redis_store.finish_many(
            "w", [Outcome(new_history.id, status=JobStatus.cancelled, history=[point(0)])]
        ) == [True]
        keys = [
            f"{redis_prefix}:{kind}:{job.id}"
            for job in (*jobs[:2], new_history)
            for kind in ("job", "matrix")
        ]
        # The points reported expire with the job; a curve given at the finish is read instead.
        keys += [
            f"{redis_prefix}:history:{jobs[0].id}",
            f"{redis_prefix}:history:{jobs[1].id}",
            f"{redis_prefix}:curve:{jobs[1].id}",
            f"{redis_prefix}:curve:{new_history.id}",
            f"{redis_prefix}:result:{jobs[0].id}",
            f"{redis_prefix}:idem:alice:k0",
            f"{redis_prefix}:idem:alice:k1",
        ]
        for key in keys:
            ttl = int(client.ttl(key))
            assert 0 < ttl <= RETENTION_S, key
        for key in (f"{redis_prefix}:job:{jobs[2].id}", f"{redis_prefix}:history:{jobs[2].id}"):
            assert client.ttl(key) == -1, key  # still running: no TTL
        assert redis_store.count_by_status()[JobStatus.running] == 1
    finally:
        client.close()


class _CountingPipelines:
    """Wraps a redis client, counting the transactions (pipelines) opened on it."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.pipelines = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.client, name)

    def pipeline(self, *args: object, **kwargs: object) -> object:
        self.pipelines += 1
        return self.client.pipeline(*args, **kwargs)


def test_redis_batches_are_one_transaction(redis_store: RedisStore) -> None:
    jobs = [add(redis_store, batch_key="B") for _ in range(50)]
    counting = _CountingPipelines(redis_store._r)
    redis_store._r = counting  # type: ignore[assignment]
    try:
        claimed = redis_store.claim_compatible("B", "w", LEASE, limit=50)
        assert len(claimed) == 50
        assert counting.pipelines == 1
        answers = redis_store.heartbeat_many(
            "w", LEASE, [Beat(j.id, history=[point(0), point(1)]) for j in jobs]
        )
        assert all(a.owned for a in answers)
        assert counting.pipelines == 2
        results = redis_store.finish_many(
            "w", [Outcome(j.id, status=JobStatus.succeeded, history=[point(2)]) for j in jobs]
        )
        assert all(results)
        assert counting.pipelines == 3
        # claim fast path: a job that is not queued costs one GET, no transaction
        assert redis_store.claim(jobs[0].id, "w2", LEASE) is None
        assert redis_store.claim("nope", "w2", LEASE) is None
        assert counting.pipelines == 3
        fresh = add(redis_store)
        assert redis_store.claim(fresh.id, "w2", LEASE) is not None
    finally:
        redis_store._r = counting.client
    assert redis_store.history(jobs[7].id) == [point(2)]


def test_redis_unreachable() -> None:
    store = RedisStore.from_url("redis://127.0.0.1:1/0", prefix="nowhere", retention_s=60)
    try:
        for call in (store.ping, lambda: store.get("x"), lambda: store.create(make_job(), MATRIX)):
            start = time.monotonic()
            with pytest.raises(StoreUnavailable):
                call()
            assert time.monotonic() - start < 5
    finally:
        store.close()


def test_redis_silent_server_times_out() -> None:
    """A server that accepts connections but never answers: the socket timeout fires."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # never accepted: connect succeeds, reads never return
        port = silent.getsockname()[1]
        store = RedisStore.from_url(f"redis://127.0.0.1:{port}/0", prefix="x", retention_s=60)
        try:
            start = time.monotonic()
            with pytest.raises(StoreUnavailable):
                store.ping()
            assert time.monotonic() - start < 5
        finally:
            store.close()


def test_redis_recovers_after_connection_loss(redis_store: RedisStore) -> None:
    job = add(redis_store)
    # kill this store's (only) pooled connection from the server side
    client = redis.Redis.from_url(REDIS_URL)
    try:
        connection_id = redis_store._r.client_id()
        assert client.client_kill_filter(_id=str(connection_id)) == 1
    finally:
        client.close()
    # the dead pooled connection fails once at most, then a fresh one is used
    try:
        got = redis_store.get(job.id)
    except StoreUnavailable:
        got = redis_store.get(job.id)
    assert got is not None
    assert got.id == job.id


# -- SQLite specifics -----------------------------------------------------------------------


def test_sqlite_purge_expired(sqlite_store: SqliteStore) -> None:
    old = add(sqlite_store, idempotency_key="k", request_hash="h")
    run_to_end(sqlite_store, old)
    heartbeat(sqlite_store, old.id, "w1", LEASE, history=[point(0)])
    kept = add(sqlite_store)
    assert sqlite_store.purge_expired(utcnow()) == 0
    later = utcnow() + timedelta(seconds=RETENTION_S + 1)
    assert sqlite_store.purge_expired(later) == 1
    assert sqlite_store.get(old.id) is None
    assert sqlite_store.load_matrices([old.id])[0] is None
    assert load_result(sqlite_store, old.id) is None
    assert sqlite_store.get(kept.id) is not None
    assert sqlite_store.purge_expired(later) == 0
    # the idempotency key is free again
    _, created, _ = sqlite_store.create(make_job(idempotency_key="k", request_hash="x"), MATRIX)
    assert created


def test_sqlite_reopen_keeps_state(sqlite_path: Path) -> None:
    store = SqliteStore(sqlite_path, retention_s=RETENTION_S)
    job = add(store)
    store.close()
    reopened = SqliteStore(sqlite_path, retention_s=RETENTION_S)
    try:
        assert reopened.get(job.id) == job
        assert reopened.queued_ids() == [job.id]
    finally:
        reopened.close()


_CHILD = textwrap.dedent(
    """
    import sys, uuid
    from ninv.jobs import JobRecord, utcnow
    from ninv.schemas import HistoryPoint, JobStatus, Progress, SolveOptions
    from ninv.store._sqlite import SqliteStore
    from tests.fake_worker import finish, heartbeat

    path, name, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = SqliteStore(path, retention_s=3600, busy_timeout_s=5)
    for i in range(rounds):
        job = JobRecord(
            id=uuid.uuid4().hex, status=JobStatus.queued, options=SolveOptions(), n=2,
            input_dtype="float64", created_at=utcnow(), owner=name, batch_key="shared",
        )
        store.create(job, b"m" * 1000)
        for claimed in store.claim_compatible("shared", name, 30.0, 3):
            progress = Progress(iteration=i, max_iter=10, loss=1.0, residual=1.0,
                                updated_at=utcnow())
            point = HistoryPoint(iteration=i, loss=1.0, residual=1.0)
            assert heartbeat(store, claimed.id, name, 30.0, progress=progress,
                                   history=[point]).owned
            assert finish(store, claimed.id, name, status=JobStatus.succeeded, result=b"r")
        store.list(name, limit=5)
        store.count_by_status()
    store.close()
    """
)


def test_sqlite_two_processes(sqlite_store: SqliteStore, sqlite_path: Path) -> None:
    rounds = 60
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(sqlite_path), f"proc{i}", str(rounds)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=Path(__file__).resolve().parents[2],
        )
        for i in range(3)
    ]
    # this process uses the file at the same time
    for _ in range(rounds):
        job = add(sqlite_store, batch_key="shared")
        for claimed in sqlite_store.claim_compatible("shared", "parent", LEASE, 2):
            assert finish(sqlite_store, claimed.id, "parent", status=JobStatus.succeeded)
        del job
    for proc in procs:
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
        assert b"locked" not in err
    # every job was claimed exactly once and finished
    counts = sqlite_store.count_by_status()
    assert counts[JobStatus.succeeded] + counts[JobStatus.queued] == 4 * rounds
    assert counts[JobStatus.running] == 0
    leftover = sqlite_store.claim_compatible("shared", "parent", LEASE, 1000)
    for claimed in leftover:
        assert claimed.attempts == 1
        assert finish(sqlite_store, claimed.id, "parent", status=JobStatus.succeeded)
    assert sqlite_store.count_by_status()[JobStatus.succeeded] == 4 * rounds


def test_sqlite_locked_is_unavailable(sqlite_path: Path) -> None:
    store = SqliteStore(sqlite_path, retention_s=RETENTION_S, busy_timeout_s=0.2)
    import sqlite3

    blocker = sqlite3.connect(sqlite_path, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StoreUnavailable):
            store.create(make_job(), MATRIX)
        blocker.execute("ROLLBACK")
        add(store)  # and it works again once the lock is gone
    finally:
        blocker.close()
        store.close()
