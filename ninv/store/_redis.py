"""The job store on Redis: the production store, shared by the API and every worker.

Key layout (P is the prefix, e.g. "ninv"; times are integer microseconds since the epoch):

    P:job:{id}              string  the JobRecord as JSON (the source of truth)
    P:matrix:{id}           string  the input matrix, .npy bytes
    P:result:{id}           string  the inverse, .npy bytes
    P:history:{id}          list    HistoryPoint JSON, oldest first, capped (first point kept)
    P:owner:{owner}         zset    job ids by created time: listing, newest first
    P:idem:{owner}:{key}    string  Idempotency-Key -> job id
    P:queued                zset    queued job ids by created time
    P:batch:{batch_key}     zset    queued job ids of that batch key by created time
    P:running               zset    running job ids by lease expiry: recover_expired is a range
    P:finished:{status}     zset    finished job ids by expiry time: count_by_status
    P:solve:count           hash    method -> finished solves with a summary
    P:solve:seconds         hash    method -> their total elapsed_s

Every transition is an optimistic WATCH/MULTI transaction on the job's key, retried on
conflict, so the API and any number of workers can race on the same job safely. Finished
jobs' keys (record, blobs, history, idempotency key) get a TTL of retention_s; listing drops
index entries whose record has expired.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar, cast

import redis
from redis.backoff import NoBackoff
from redis.client import Pipeline
from redis.exceptions import BusyLoadingError, InvalidResponse, ReadOnlyError, WatchError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from ninv.jobs import JobRecord, utcnow
from ninv.schemas import FINISHED, HistoryPoint, JobStatus, Progress, Summary
from ninv.store._base import (
    Heartbeat,
    IdempotencyConflict,
    JobStore,
    NotFinished,
    StoreUnavailable,
)
from ninv.store._codec import (
    ALL_STATUSES,
    decode_cursor,
    dump_record,
    encode_cursor,
    load_record,
    lost_error,
    to_us,
)

__all__ = ["RedisStore"]

_P = ParamSpec("_P")
_R = TypeVar("_R")
_T = TypeVar("_T")

_UNAVAILABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
    ReadOnlyError,
    InvalidResponse,  # something that is not Redis answers at the address
)


def _guard(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Turn "Redis does not answer" into StoreUnavailable."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return fn(*args, **kwargs)
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    return wrapper


class RedisStore:
    """JobStore on Redis (see the module docstring for the key layout)."""

    def __init__(self, client: redis.Redis, *, prefix: str, retention_s: int) -> None:
        self._r = client
        self._p = prefix
        self.retention_s = retention_s

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str,
        retention_s: int,
        connect_timeout_s: float = 1.0,
        timeout_s: float = 2.0,
    ) -> RedisStore:
        """A store whose calls fail fast (StoreUnavailable) while Redis is down.

        redis-py opens a fresh connection on the next call after a failure, so the store
        recovers by itself once Redis is back.
        """
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=connect_timeout_s,
            socket_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            health_check_interval=0,
        )
        return cls(client, prefix=prefix, retention_s=retention_s)

    # -- keys ----------------------------------------------------------------------------

    def _k_job(self, job_id: str) -> str:
        return f"{self._p}:job:{job_id}"

    def _k_matrix(self, job_id: str) -> str:
        return f"{self._p}:matrix:{job_id}"

    def _k_result(self, job_id: str) -> str:
        return f"{self._p}:result:{job_id}"

    def _k_history(self, job_id: str) -> str:
        return f"{self._p}:history:{job_id}"

    def _k_owner(self, owner: str) -> str:
        return f"{self._p}:owner:{owner}"

    def _k_idem(self, owner: str, key: str) -> str:
        return f"{self._p}:idem:{owner}:{key}"

    def _k_batch(self, batch_key: str) -> str:
        return f"{self._p}:batch:{batch_key}"

    def _k_finished(self, status: JobStatus) -> str:
        return f"{self._p}:finished:{status.value}"

    @property
    def _k_queued(self) -> str:
        return f"{self._p}:queued"

    @property
    def _k_running(self) -> str:
        return f"{self._p}:running"

    # -- helpers -------------------------------------------------------------------------

    def _txn(self, keys: Iterable[str], body: Callable[[Pipeline], _T]) -> _T:
        """Run body under WATCH of keys; body reads, then calls pipe.multi() to write.

        Retried from the start when a watched key changed before EXEC.
        """
        keys = list(keys)
        while True:
            with self._r.pipeline() as pipe:
                try:
                    if keys:
                        pipe.watch(*keys)  # type: ignore[no-untyped-call]
                    result = body(pipe)
                    if pipe.explicit_transaction:
                        pipe.execute()
                    return result
                except WatchError:
                    continue

    @staticmethod
    def _read(pipe: Pipeline, key: str) -> JobRecord | None:
        raw = cast("bytes | None", pipe.get(key))
        return None if raw is None else load_record(raw)

    def _unqueue(self, pipe: Pipeline, job: JobRecord) -> None:
        pipe.zrem(self._k_queued, job.id)
        if job.batch_key is not None:
            pipe.zrem(self._k_batch(job.batch_key), job.id)

    def _enqueue(self, pipe: Pipeline, job: JobRecord) -> None:
        score = to_us(job.created_at)
        pipe.zadd(self._k_queued, {job.id: score})
        if job.batch_key is not None:
            pipe.zadd(self._k_batch(job.batch_key), {job.id: score})

    def _end(self, pipe: Pipeline, job: JobRecord) -> None:
        """Queue the writes of a job that just finished (job already updated): TTLs, indexes."""
        now = utcnow()
        ttl = self.retention_s
        pipe.set(self._k_job(job.id), dump_record(job), ex=ttl)
        for key in (self._k_matrix(job.id), self._k_result(job.id), self._k_history(job.id)):
            pipe.expire(key, ttl)
        if job.idempotency_key is not None:
            pipe.expire(self._k_idem(job.owner, job.idempotency_key), ttl)
        self._unqueue(pipe, job)
        pipe.zrem(self._k_running, job.id)
        expires = to_us(now + timedelta(seconds=ttl))
        pipe.zadd(self._k_finished(job.status), {job.id: expires})

    # -- reads ---------------------------------------------------------------------------

    @_guard
    def ping(self) -> None:
        self._r.ping()

    @_guard
    def get(self, job_id: str) -> JobRecord | None:
        raw = cast("bytes | None", self._r.get(self._k_job(job_id)))
        return None if raw is None else load_record(raw)

    @_guard
    def load_matrix(self, job_id: str) -> bytes | None:
        return cast("bytes | None", self._r.get(self._k_matrix(job_id)))

    @_guard
    def load_result(self, job_id: str) -> bytes | None:
        return cast("bytes | None", self._r.get(self._k_result(job_id)))

    @_guard
    def history(self, job_id: str) -> builtins.list[HistoryPoint]:
        raw = cast("list[bytes]", self._r.lrange(self._k_history(job_id), 0, -1))
        return [HistoryPoint.model_validate_json(item) for item in raw]

    @_guard
    def list(
        self,
        owner: str,
        *,
        status: JobStatus | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[builtins.list[JobRecord], str | None]:
        limit = max(1, limit)
        key = self._k_owner(owner)
        max_score: str | int = "+inf"
        after: tuple[int, str] | None = None
        if cursor is not None:
            after = decode_cursor(cursor)
            max_score = after[0]
        found: list[tuple[JobRecord, int]] = []
        stale: list[str] = []
        offset = 0
        chunk = limit + 1 if status is None else max(4 * (limit + 1), 100)
        while len(found) <= limit:
            entries = cast(
                "list[tuple[bytes, float]]",
                self._r.zrevrangebyscore(
                    key, max_score, "-inf", start=offset, num=chunk, withscores=True
                ),
            )
            if not entries:
                break
            offset += len(entries)
            page: list[tuple[str, int]] = []
            for member, score in entries:
                job_id, created = member.decode(), int(score)
                if after is not None and created == after[0] and job_id >= after[1]:
                    continue
                page.append((job_id, created))
            if not page:
                continue
            raws = cast("list[bytes | None]", self._r.mget([self._k_job(j) for j, _ in page]))
            for (job_id, created), raw in zip(page, raws, strict=True):
                if raw is None:
                    stale.append(job_id)
                    continue
                job = load_record(raw)
                if status is None or job.status == status:
                    found.append((job, created))
                    if len(found) > limit:
                        break
        if stale:
            self._r.zrem(key, *stale)
        jobs = [job for job, _ in found[:limit]]
        next_cursor = None
        if len(found) > limit:
            last, created = found[limit - 1]
            next_cursor = encode_cursor(created, last.id)
        return jobs, next_cursor

    @_guard
    def queued_ids(self, limit: int = 1000) -> builtins.list[str]:
        if limit <= 0:
            return []
        raw = cast("list[bytes]", self._r.zrange(self._k_queued, 0, limit - 1))
        return [member.decode() for member in raw]

    @_guard
    def count_by_status(self) -> dict[JobStatus, int]:
        now = to_us(utcnow())
        with self._r.pipeline(transaction=False) as pipe:
            pipe.zcard(self._k_queued)
            pipe.zcard(self._k_running)
            finished = [s for s in ALL_STATUSES if s in FINISHED]
            for status in finished:
                pipe.zremrangebyscore(self._k_finished(status), "-inf", now)
                pipe.zcard(self._k_finished(status))
            replies = cast("list[int]", pipe.execute())
        counts = dict.fromkeys(ALL_STATUSES, 0)
        counts[JobStatus.queued] = replies[0]
        counts[JobStatus.running] = replies[1]
        for i, status in enumerate(finished):
            counts[status] = replies[3 + 2 * i]
        return counts

    @_guard
    def solve_time_totals(self) -> dict[str, tuple[int, float]]:
        with self._r.pipeline(transaction=False) as pipe:
            pipe.hgetall(f"{self._p}:solve:count")
            pipe.hgetall(f"{self._p}:solve:seconds")
            counts, seconds = cast("list[dict[bytes, bytes]]", pipe.execute())
        return {
            method.decode(): (int(count), float(seconds.get(method, b"0")))
            for method, count in counts.items()
        }

    def purge_expired(self, now: datetime) -> int:
        """Redis expires finished jobs by TTL: nothing to do."""
        return 0

    def close(self) -> None:
        self._r.close()

    # -- transitions ---------------------------------------------------------------------

    @_guard
    def create(self, job: JobRecord, matrix: bytes) -> tuple[JobRecord, bool]:
        if job.status != JobStatus.queued:
            raise ValueError(f"a new job must be queued, not {job.status}")
        idem = None if job.idempotency_key is None else self._k_idem(job.owner, job.idempotency_key)

        def body(pipe: Pipeline) -> tuple[JobRecord, bool]:
            if idem is not None:
                existing_id = cast("bytes | None", pipe.get(idem))
                existing = None
                if existing_id is not None:
                    existing = self._read(pipe, self._k_job(existing_id.decode()))
                if existing is not None:
                    if existing.owner != job.owner or existing.request_hash != job.request_hash:
                        raise IdempotencyConflict(existing.id)
                    return existing, False
            pipe.multi()
            pipe.set(self._k_job(job.id), dump_record(job))
            pipe.set(self._k_matrix(job.id), matrix)
            pipe.zadd(self._k_owner(job.owner), {job.id: to_us(job.created_at)})
            self._enqueue(pipe, job)
            if idem is not None:
                pipe.set(idem, job.id)
            return job, True

        return self._txn([] if idem is None else [idem], body)

    def _claim_one(self, job_id: str, worker: str, lease_s: float) -> JobRecord | None:
        key = self._k_job(job_id)

        def body(pipe: Pipeline) -> JobRecord | None:
            job = self._read(pipe, key)
            if job is None or job.status != JobStatus.queued:
                pipe.multi()  # heal the queued indexes of a job that is not queued
                pipe.zrem(self._k_queued, job_id)
                if job is not None and job.batch_key is not None:
                    pipe.zrem(self._k_batch(job.batch_key), job_id)
                return None
            now = utcnow()
            job = job.model_copy(
                update={
                    "status": JobStatus.running,
                    "attempts": job.attempts + 1,
                    "worker": worker,
                    "started_at": now,
                    "lease_until": now + timedelta(seconds=lease_s),
                }
            )
            assert job.lease_until is not None
            pipe.multi()
            pipe.set(key, dump_record(job))
            self._unqueue(pipe, job)
            pipe.zadd(self._k_running, {job_id: to_us(job.lease_until)})
            return job

        return self._txn([key], body)

    @_guard
    def claim(self, job_id: str, worker: str, lease_s: float) -> JobRecord | None:
        return self._claim_one(job_id, worker, lease_s)

    @_guard
    def claim_compatible(
        self, batch_key: str, worker: str, lease_s: float, limit: int
    ) -> builtins.list[JobRecord]:
        claimed: list[JobRecord] = []
        seen: set[str] = set()
        while len(claimed) < limit:
            want = limit - len(claimed)
            raw = cast(
                "list[bytes]",
                self._r.zrange(self._k_batch(batch_key), 0, len(seen) + 2 * want + 8),
            )
            candidates = [m.decode() for m in raw if m.decode() not in seen]
            if not candidates:
                break
            for job_id in candidates:
                seen.add(job_id)
                job = self._claim_one(job_id, worker, lease_s)
                if job is not None:
                    claimed.append(job)
                    if len(claimed) >= limit:
                        break
        return claimed

    @_guard
    def heartbeat(
        self,
        job_id: str,
        worker: str,
        lease_s: float,
        *,
        progress: Progress | None = None,
        history: builtins.list[HistoryPoint] | None = None,
        history_max_points: int = 500,
    ) -> Heartbeat:
        key, hkey = self._k_job(job_id), self._k_history(job_id)
        points = [p.model_dump_json() for p in history or []]
        cap = max(1, history_max_points)

        def body(pipe: Pipeline) -> Heartbeat:
            job = self._read(pipe, key)
            if job is None or job.status != JobStatus.running or job.worker != worker:
                return Heartbeat(owned=False, cancel_requested=bool(job and job.cancel_requested))
            update: dict[str, Any] = {"lease_until": utcnow() + timedelta(seconds=lease_s)}
            if progress is not None:
                update["progress"] = progress
            job = job.model_copy(update=update)
            assert job.lease_until is not None
            first: bytes | str | None = None
            if points:
                length = pipe.llen(hkey)
                if length + len(points) > cap:
                    first = points[0] if length == 0 else cast("bytes", pipe.lindex(hkey, 0))
            pipe.multi()
            pipe.set(key, dump_record(job))
            pipe.zadd(self._k_running, {job_id: to_us(job.lease_until)})
            if points:
                pipe.rpush(hkey, *points)
                if first is not None:
                    if cap == 1:
                        pipe.ltrim(hkey, 0, 0)
                    else:
                        pipe.ltrim(hkey, -(cap - 1), -1)
                        pipe.lpush(hkey, first)
            return Heartbeat(owned=True, cancel_requested=job.cancel_requested)

        return self._txn([key, hkey], body)

    @_guard
    def finish(
        self,
        job_id: str,
        worker: str,
        *,
        status: JobStatus,
        summary: Summary | None = None,
        result: bytes | None = None,
        error: str | None = None,
    ) -> bool:
        if status not in FINISHED:
            raise ValueError(f"finish needs a final status, not {status}")
        key = self._k_job(job_id)

        def body(pipe: Pipeline) -> bool:
            job = self._read(pipe, key)
            if job is None or job.status != JobStatus.running or job.worker != worker:
                return False
            job = job.model_copy(
                update={
                    "status": status,
                    "summary": summary,
                    "error": error,
                    "finished_at": utcnow(),
                    "lease_until": None,
                }
            )
            pipe.multi()
            if result is not None:
                pipe.set(self._k_result(job_id), result)
            self._end(pipe, job)
            if summary is not None:
                pipe.hincrby(f"{self._p}:solve:count", summary.method, 1)
                pipe.hincrbyfloat(f"{self._p}:solve:seconds", summary.method, summary.elapsed_s)
            return True

        return self._txn([key], body)

    @_guard
    def request_cancel(self, job_id: str) -> JobRecord:
        key = self._k_job(job_id)

        def body(pipe: Pipeline) -> JobRecord:
            job = self._read(pipe, key)
            if job is None:
                raise KeyError(job_id)
            if job.status in FINISHED:
                raise NotFinished(job_id, job.status)
            if job.status == JobStatus.queued:
                job = job.model_copy(
                    update={
                        "status": JobStatus.cancelled,
                        "cancel_requested": True,
                        "finished_at": utcnow(),
                    }
                )
                pipe.multi()
                self._end(pipe, job)
                return job
            if job.cancel_requested:
                return job
            job = job.model_copy(update={"cancel_requested": True})
            pipe.multi()
            pipe.set(key, dump_record(job))
            return job

        return self._txn([key], body)

    @_guard
    def delete(self, job_id: str) -> None:
        """Forget a finished job. Raise KeyError if unknown, NotFinished if not finished."""
        key = self._k_job(job_id)
        job = self.get(job_id)
        if job is None:
            raise KeyError(job_id)
        idem = None if job.idempotency_key is None else self._k_idem(job.owner, job.idempotency_key)

        def body(pipe: Pipeline) -> None:
            current = self._read(pipe, key)
            if current is None:
                raise KeyError(job_id)
            if current.status not in FINISHED:
                raise NotFinished(job_id, current.status)
            mapped = None if idem is None else cast("bytes | None", pipe.get(idem))
            pipe.multi()
            pipe.delete(
                key, self._k_matrix(job_id), self._k_result(job_id), self._k_history(job_id)
            )
            if idem is not None and mapped == job_id.encode():
                pipe.delete(idem)
            pipe.zrem(self._k_owner(current.owner), job_id)
            pipe.zrem(self._k_finished(current.status), job_id)
            self._unqueue(pipe, current)
            pipe.zrem(self._k_running, job_id)

        self._txn([key] if idem is None else [key, idem], body)

    @_guard
    def recover_expired(
        self, now: datetime, max_attempts: int
    ) -> tuple[builtins.list[str], builtins.list[str]]:
        """Requeue or fail the running jobs whose lease expired before `now`.

        A job whose cancel was requested ends as cancelled instead of being requeued; it is
        reported with the failed ones (the second list: jobs that ended here). A requeued job
        starts afresh: its progress and history are cleared.
        """
        now_us = to_us(now)
        raw = cast("list[bytes]", self._r.zrangebyscore(self._k_running, "-inf", f"({now_us}"))
        requeued: list[str] = []
        ended: list[str] = []
        for job_id in (m.decode() for m in raw):
            key = self._k_job(job_id)

            def body(pipe: Pipeline, job_id: str = job_id, key: str = key) -> str | None:
                job = self._read(pipe, key)
                if job is None or job.status != JobStatus.running:
                    pipe.multi()
                    pipe.zrem(self._k_running, job_id)
                    return None
                if job.lease_until is None or to_us(job.lease_until) >= now_us:
                    return None  # renewed meanwhile
                if job.cancel_requested or job.attempts >= max_attempts:
                    done = job.model_copy(
                        update={
                            "status": (
                                JobStatus.cancelled if job.cancel_requested else JobStatus.failed
                            ),
                            "error": None if job.cancel_requested else lost_error(job.attempts),
                            "finished_at": utcnow(),
                            "lease_until": None,
                        }
                    )
                    pipe.multi()
                    self._end(pipe, done)
                    return "ended"
                back = job.model_copy(
                    update={
                        "status": JobStatus.queued,
                        "worker": None,
                        "lease_until": None,
                        "progress": None,
                    }
                )
                pipe.multi()
                pipe.set(key, dump_record(back))
                pipe.delete(self._k_history(job_id))
                pipe.zrem(self._k_running, job_id)
                self._enqueue(pipe, back)
                return "requeued"

            outcome = self._txn([key], body)
            if outcome == "requeued":
                requeued.append(job_id)
            elif outcome == "ended":
                ended.append(job_id)
        return requeued, ended


def _implements_protocol(store: RedisStore) -> JobStore:  # checked by mypy only
    return store
