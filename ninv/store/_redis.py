"""The job store on Redis: the production store, shared by the API and every worker.

Key layout (P is the prefix, e.g. "ninv"; times are integer microseconds since the epoch):

    P:job:{id}              string  the JobRecord as JSON (the source of truth)
    P:matrix:{id}           string  the input matrix, .npy bytes
    P:result:{id}           string  the inverse, .npy bytes
    P:history:{id}          list    HistoryPoint JSON, oldest first, capped (first point kept):
                                    the points a running job reports
    P:curve:{id}            string  a finished job's whole curve, one JSON array of HistoryPoint,
                                    read in place of the list (one value to write and to read,
                                    where the list would take a word per point)
    P:checkpoint:{id}       string  a running job's last solver snapshot (.npz); gone at its end
    P:owner:{owner}         zset    job ids by created time: listing, newest first
    P:idem:{owner}:{key}    string  Idempotency-Key -> job id
    P:queued                zset    queued job ids by created time
    P:batch:{batch_key}     zset    queued job ids of that batch key by created time
    P:oq:{owner}            zset    the owner's queued job ids by created time: its queue
    P:owners                zset    owners that may have queued jobs (score 0, by name; an
                                    owner whose queue emptied is dropped by claim_next)
    P:turn                  string  the owner claim_next served last (round-robin, next_owner)
    P:active:{owner}        set     the owner's queued and running job ids (max_active)
    P:wake                  string  set while a wake message is pending (expires: mark_wake)
    P:running               zset    running job ids by lease expiry: recover_expired is a range
    P:finished:{status}     zset    finished job ids by expiry time: count_by_status
    P:solve:count           hash    method -> finished solves with a summary
    P:solve:seconds         hash    method -> their total elapsed_s
    P:worker:{id}           string  a worker's WorkerInfo JSON, expiring with its announcement
    P:workers               set     ids of workers that announced themselves (pruned on read)
    P:changed               pub/sub channel: job ids (space-separated), published in the MULTI
                            that writes their progress or their end (ninv/notify.py)

Every transition is an optimistic WATCH/MULTI transaction on the job's key, retried on
conflict: read the record, ask it for its next state (`JobRecord`'s rules, ninv/jobs.py), write
that and the indexes its status implies (`_put`). So the API and any number of workers can race
on the same job safely. The batch transitions (claim_compatible, heartbeat_many, finish_many)
are one such transaction over all their jobs' keys: WATCH, one read (a read-only Lua script),
MULTI ... EXEC. A transaction's writes travel as one script call inside its MULTI
(`_write_all`): one command for Redis to run instead of about twenty for a finished job.
Finished jobs' keys (record, blobs, history, idempotency key) get a TTL of retention_s; listing
drops index entries whose record has expired.

Two transitions skip WATCH, because what they would watch changes all the time: `create` is one
script that checks the Idempotency-Key and the owner's active count, writes the job and sets
the wake mark; `claim_next` reads what to take in one read-only script (`_PEEK_NEXT`: the turn,
the owner whose turn it is, its oldest job, the batch mates), applies `JobRecord.claim` here,
and writes with a compare-and-set script (`_WRITE_IF`) that runs only if P:turn and every
record read are unchanged, so two workers never take the same job or the same turn.
Upgrading from a version without owner queues: jobs it queued are only in P:queued; claim_next
adopts them into their owners' queues when it finds the ring empty and P:queued not (and such a
version's per-job messages still run them).
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar, cast

import redis
from redis.backoff import NoBackoff
from redis.client import Pipeline
from redis.exceptions import (
    BusyLoadingError,
    InvalidResponse,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    WatchError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from ninv.jobs import JobRecord, utcnow
from ninv.notify import changes_channel
from ninv.schemas import FINISHED, HistoryPoint, JobStatus, WorkerInfo
from ninv.store._base import (
    Beat,
    Created,
    Heartbeat,
    IdempotencyConflict,
    JobStore,
    Outcome,
    StoreFull,
    StoreUnavailable,
    TooManyActive,
    capped,
    visible,
)
from ninv.store._codec import (
    ALL_STATUSES,
    decode_cursor,
    dump_curve,
    dump_points,
    dump_record,
    encode_cursor,
    load_curve,
    load_record,
    to_us,
)

__all__ = ["RedisStore"]

# How many owners claim_next reads, each way round the ring, looking for one with a due job.
DUE_SCAN = 64

_P = ParamSpec("_P")
_R = TypeVar("_R")
_T = TypeVar("_T")

_UNAVAILABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
    InvalidResponse,  # something that is not Redis answers at the address
)


# Reads, in one round trip, the records under KEYS[1..n] (n = ARGV[1]) and, for each further
# key (a history list), its length and first item: what a batched transition needs to decide,
# after WATCH and before MULTI. Read-only.
_READ_BATCH = """
local n = tonumber(ARGV[1])
local out = {}
for i = 1, n do
    out[#out + 1] = redis.call('GET', KEYS[i])
end
for i = n + 1, #KEYS do
    out[#out + 1] = redis.call('LLEN', KEYS[i])
    out[#out + 1] = redis.call('LINDEX', KEYS[i], 0)
end
return out
"""


# Runs the writes encoded in ARGV from index `from` on (each command's length, then its
# words): one script call in place of one command per write, so Redis parses and answers one
# command and redis-py packs and parses one (a finished job writes about twenty: most of a
# batch's CPU on the worker). `#!lua` makes Redis refuse a script up front when it refuses
# writes (maxmemory), never halfway.
_RUN_WORDS = """#!lua
local function run(from)
    local i = from
    while i <= #ARGV do
        local n = tonumber(ARGV[i])
        redis.call(unpack(ARGV, i + 1, i + n))
        i = i + n + 1
    end
end
"""

# A transaction's queued writes, run inside its MULTI/EXEC (whose EXEC still fails if a
# WATCHed key changed).
_WRITE_ALL = _RUN_WORDS + "run(1)\n"

# A new job, checked and written in one step without WATCH (the owner's active set changes with
# every submission and finish of the key's jobs, so a WATCH on it kept failing under load).
# ARGV: Idempotency-Key key or "", the job key prefix, the owner's active set, the most active
# jobs (-1: no limit), the wake mark's key or "" and its milliseconds, then the writes. Returns
# {1, record} for the key's existing job (nothing written; the caller compares it), {2} when the
# owner has the most active jobs, else {0, 1 if it set the wake mark else 0}.
_CREATE = (
    _RUN_WORDS
    + """
if ARGV[1] ~= "" then
    local existing = redis.call('GET', ARGV[1])
    if existing then
        local record = redis.call('GET', ARGV[2] .. existing)
        if record then
            return {1, record}
        end
    end
end
local most = tonumber(ARGV[4])
if most >= 0 and redis.call('SCARD', ARGV[3]) >= most then
    return {2}
end
run(7)
if ARGV[5] ~= "" and redis.call('SET', ARGV[5], 1, 'NX', 'PX', ARGV[6]) then
    return {0, 1}
end
return {0, 0}
"""
)

# The jobs claim_next would take, read in one step (it writes nothing): the turn (who was
# served last), the owner whose turn it is among those whose oldest job is due (the ring walked
# from after the last, wrapping round, at most ARGV[8] owners each way), else the next owner
# after the last in name order (`ninv.jobs.next_owner`), that owner's oldest job and up to
# ARGV[7] - 1 queued jobs that batch with it. ARGV: the turn key, the owner ring, the owner
# queue, batch and job key prefixes, now (us), the most jobs, the scan. Returns {last, owner,
# head id, head record, then id and record of each batch mate}, cut short where nothing is
# (no owner waits; the owner's queue is empty); a missing value is false.
_PEEK_NEXT = """#!lua flags=no-writes
local turn, ring, queues, batches, jobs = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local now, most, scan = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local last = redis.call('GET', turn)
local function due_in(low, high)
    for _, owner in ipairs(redis.call('ZRANGEBYLEX', ring, low, high, 'LIMIT', 0, scan)) do
        local head = redis.call('ZRANGE', queues .. owner, 0, 0, 'WITHSCORES')
        if head[2] and tonumber(head[2]) <= now then
            return owner
        end
    end
    return nil
end
local owner
if last then
    owner = due_in('(' .. last, '+') or due_in('-', '[' .. last)
    if not owner then  -- no job is due: the turn goes on as if all were
        owner = redis.call('ZRANGEBYLEX', ring, '(' .. last, '+', 'LIMIT', 0, 1)[1]
    end
else
    owner = due_in('-', '+')
end
owner = owner or redis.call('ZRANGE', ring, 0, 0)[1]
if not owner then
    return {last}
end
local head = redis.call('ZRANGE', queues .. owner, 0, 0)[1]
if not head then
    return {last, owner}
end
local record = redis.call('GET', jobs .. head)
local out = {last, owner, head, record}
if record and most > 1 then
    local batch = cjson.decode(record)['batch_key']
    if type(batch) == 'string' then
        for _, id in ipairs(redis.call('ZRANGE', batches .. batch, 0, most - 1)) do
            if id ~= head and #out < 4 + 2 * (most - 1) then
                out[#out + 1] = id
                out[#out + 1] = redis.call('GET', jobs .. id)
            end
        end
    end
end
return out
"""

# Writes made only if some keys still hold what was read (compare-and-set by value, for reads
# made without WATCH): ARGV[1] = n, then n pairs of key and value ("" for no value), then the
# writes. Returns 1 if written, 0 if a value had changed (nothing written).
_WRITE_IF = (
    _RUN_WORDS
    + """
local n = tonumber(ARGV[1])
for i = 0, n - 1 do
    if (redis.call('GET', ARGV[2 + 2 * i]) or '') ~= ARGV[3 + 2 * i] then
        return 0
    end
end
run(2 + 2 * n)
return 1
"""
)

#: Most words one command may have in a script's writes (Lua's unpack takes about 8,000).
_MAX_WORDS = 4000


def _take_words(pipe: Pipeline) -> builtins.list[Any] | None:
    """The commands queued on `pipe` as `_RUN_WORDS` words, taken off it; None (and left
    queued) if a command is too long for a script (a long history)."""
    stack = pipe.command_stack
    if any(len(args) > _MAX_WORDS for args, _ in stack):
        return None
    words: list[Any] = []
    for args, _ in stack:
        words.append(len(args))
        words.extend(args)
    pipe.command_stack = []
    return words


def _set(pipe: Pipeline, key: str, value: bytes | str, ex: int | None = None) -> None:
    """Queue a SET (with a TTL of `ex` seconds): the command itself, without redis-py's
    `set()`, whose checks of options these writes never use cost as much again as the rest
    (a batch's claim or finish queues hundreds)."""
    if ex is None:
        pipe.execute_command("SET", key, value)  # type: ignore[no-untyped-call]
    else:
        pipe.execute_command("SET", key, value, "EX", ex)  # type: ignore[no-untyped-call]


def _pending_ms(pending_s: float) -> int:
    """A wake mark's life in milliseconds (at least 1: PX takes no 0)."""
    return max(1, int(pending_s * 1000))


def _write_all(pipe: Pipeline) -> None:
    """Execute the transaction `pipe` has queued (after `pipe.multi()`), its writes as one
    `_WRITE_ALL` call when they fit one."""
    words = _take_words(pipe) if pipe.command_stack else None
    if words is not None:
        pipe.eval(_WRITE_ALL, 0, *words)
    pipe.execute()


@dataclass
class _History:
    """A history list as a batched transition sees it: its length and first point."""

    length: int
    first: bytes | str | None


#: What this store's scripts need: script flags (`#!lua`) came with Redis 7.0.
NEEDS_REDIS = "ninv needs Redis 7.0 or newer (its scripts use Redis 7's script flags)"


def _guard(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Turn "Redis does not answer" into StoreUnavailable, "Redis refuses writes" into StoreFull,
    and a server too old for the scripts into StoreUnavailable that says so."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return fn(*args, **kwargs)
        except (OutOfMemoryError, ReadOnlyError) as exc:  # maxmemory reached, or a replica
            raise StoreFull(f"redis refuses writes: {exc}") from exc
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        except ResponseError as exc:
            # The scripts are tested: one that does not compile means a server before 7.0.
            if "Error compiling script" in str(exc):
                raise StoreUnavailable(f"{NEEDS_REDIS}: {exc}") from exc
            raise

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

    def _k_curve(self, job_id: str) -> str:
        return f"{self._p}:curve:{job_id}"

    def _k_checkpoint(self, job_id: str) -> str:
        return f"{self._p}:checkpoint:{job_id}"

    def _k_owner(self, owner: str) -> str:
        return f"{self._p}:owner:{owner}"

    def _k_idem(self, owner: str, key: str) -> str:
        return f"{self._p}:idem:{owner}:{key}"

    def _k_batch(self, batch_key: str) -> str:
        return f"{self._p}:batch:{batch_key}"

    def _k_finished(self, status: JobStatus) -> str:
        return f"{self._p}:finished:{status.value}"

    def _k_owner_queue(self, owner: str) -> str:
        return f"{self._p}:oq:{owner}"

    def _k_active(self, owner: str) -> str:
        return f"{self._p}:active:{owner}"

    @property
    def _k_owners(self) -> str:
        return f"{self._p}:owners"

    @property
    def _k_turn(self) -> str:
        return f"{self._p}:turn"

    @property
    def _k_queued(self) -> str:
        return f"{self._p}:queued"

    @property
    def _k_running(self) -> str:
        return f"{self._p}:running"

    @property
    def _k_wake(self) -> str:
        return f"{self._p}:wake"

    @property
    def _k_changed(self) -> str:
        return changes_channel(self._p)

    # -- helpers -------------------------------------------------------------------------

    def _attempt(self, keys: Iterable[str], body: Callable[[Pipeline], _T]) -> _T:
        """Run body once under WATCH of keys; body reads, then calls pipe.multi() to write.

        Raise WatchError when a watched key changed before EXEC (nothing was written).
        """
        keys = list(keys)
        with self._r.pipeline() as pipe:
            if keys:
                pipe.watch(*keys)  # type: ignore[no-untyped-call]
            result = body(pipe)
            if pipe.explicit_transaction:
                _write_all(pipe)
            return result

    def _txn(self, keys: Iterable[str], body: Callable[[Pipeline], _T]) -> _T:
        """`_attempt`, retried from the start when a watched key changed before EXEC."""
        keys = list(keys)
        while True:
            try:
                return self._attempt(keys, body)
            except WatchError:
                continue

    @staticmethod
    def _read_batch(
        pipe: Pipeline, job_keys: Sequence[str], history_keys: Sequence[str]
    ) -> tuple[builtins.list[JobRecord | None], builtins.list[_History]]:
        """The records of job_keys and the state of history_keys, read in one round trip.

        Call it after WATCH (the pipeline is then in immediate mode, on the watching connection),
        so that EXEC fails if anything read here changes before it.
        """
        if not job_keys and not history_keys:
            return [], []
        n = len(job_keys)
        replies = cast(
            "list[Any]", pipe.eval(_READ_BATCH, n + len(history_keys), *job_keys, *history_keys, n)
        )
        records = [None if raw is None else load_record(raw) for raw in replies[:n]]
        rest = replies[n:]
        histories = [_History(int(rest[i]), rest[i + 1]) for i in range(0, len(rest), 2)]
        return records, histories

    def _append_history(
        self, pipe: Pipeline, job_id: str, state: _History, points: Sequence[str], cap: int
    ) -> None:
        """Queue the appending of points to a history list (state: as it is before), capped at
        cap points with the first point kept; update state to what the list becomes."""
        if not points:
            return
        hkey = self._k_history(job_id)
        first = points[0] if state.length == 0 else state.first
        pipe.rpush(hkey, *points)
        length = state.length + len(points)
        if length > cap:
            if cap == 1:
                pipe.ltrim(hkey, 0, 0)
            else:
                pipe.ltrim(hkey, -(cap - 1), -1)
                assert first is not None
                pipe.lpush(hkey, first)
            length = cap
        state.length, state.first = length, first

    @staticmethod
    def _read(pipe: Pipeline, key: str) -> JobRecord | None:
        raw = cast("bytes | None", pipe.get(key))
        return None if raw is None else load_record(raw)

    def _unqueue(self, pipe: Pipeline, jobs: Sequence[JobRecord]) -> None:
        """Queue the removal of jobs from the queues, each queue written once."""
        if not jobs:
            return
        pipe.zrem(self._k_queued, *(job.id for job in jobs))
        queues: dict[str, list[str]] = {}
        for job in jobs:
            queues.setdefault(self._k_owner_queue(job.owner), []).append(job.id)
            if job.batch_key is not None:
                queues.setdefault(self._k_batch(job.batch_key), []).append(job.id)
        for queue, ids in queues.items():
            pipe.zrem(queue, *ids)

    def _enqueue(self, pipe: Pipeline, job: JobRecord) -> None:
        score = to_us(job.queue_time)
        pipe.zadd(self._k_queued, {job.id: score})
        pipe.zadd(self._k_owner_queue(job.owner), {job.id: score})
        pipe.zadd(self._k_owners, {job.owner: 0})
        pipe.sadd(self._k_active(job.owner), job.id)
        if job.batch_key is not None:
            pipe.zadd(self._k_batch(job.batch_key), {job.id: score})

    def _put(self, pipe: Pipeline, job: JobRecord) -> None:
        """Queue the writes of a record whose status may have changed: it and the indexes its
        status implies (queued: the queues; running: the lease index; finished: `_end`)."""
        if job.finished:
            self._unqueue(pipe, [job])
            self._end(pipe, [job])
            pipe.publish(self._k_changed, job.id)
        elif job.status == JobStatus.queued:
            _set(pipe, self._k_job(job.id), dump_record(job))
            pipe.zrem(self._k_running, job.id)
            self._enqueue(pipe, job)
        else:
            self._put_running(pipe, [job])

    def _put_running(self, pipe: Pipeline, jobs: Sequence[JobRecord]) -> None:
        """Queue the writes of jobs just claimed: their records, out of the queues, into the
        lease index (each index written once: a batch's claim takes hundreds)."""
        if not jobs:
            return
        leases: dict[str, int] = {}
        for job in jobs:
            assert job.lease_until is not None
            _set(pipe, self._k_job(job.id), dump_record(job))
            leases[job.id] = to_us(job.lease_until)
        self._unqueue(pipe, jobs)
        pipe.zadd(self._k_running, leases)

    def _end(self, pipe: Pipeline, jobs: Sequence[JobRecord]) -> None:
        """Queue the writes of jobs that just finished (records already updated): TTLs and
        indexes, each index written once for all of them (a batch finishes hundreds at once).

        Not their queues (a running job left them when claimed) nor their change notice:
        callers add those, a batch's notice once for all its jobs."""
        if not jobs:
            return
        ttl = self.retention_s
        expires = to_us(utcnow() + timedelta(seconds=ttl))
        by_owner: dict[str, list[str]] = {}
        by_status: dict[JobStatus, dict[str, int]] = {}
        for job in jobs:
            _set(pipe, self._k_job(job.id), dump_record(job), ex=ttl)
            # Not the result: `finish_many` writes it with its TTL.
            for key in (self._k_matrix(job.id), self._k_history(job.id)):
                pipe.expire(key, ttl)
            if job.idempotency_key is not None:
                pipe.expire(self._k_idem(job.owner, job.idempotency_key), ttl)
            by_owner.setdefault(job.owner, []).append(job.id)
            by_status.setdefault(job.status, {})[job.id] = expires
        ids = [job.id for job in jobs]
        pipe.delete(*(self._k_checkpoint(job_id) for job_id in ids))  # a finished job never resumes
        for owner, owned in by_owner.items():
            pipe.srem(self._k_active(owner), *owned)
        pipe.zrem(self._k_running, *ids)
        for status, members in by_status.items():
            pipe.zadd(self._k_finished(status), members)

    # -- reads ---------------------------------------------------------------------------

    @_guard
    def ping(self) -> None:
        self._r.ping()

    @_guard
    def get(self, job_id: str, *, owner: str | None = None) -> JobRecord | None:
        raw = cast("bytes | None", self._r.get(self._k_job(job_id)))
        job = None if raw is None else load_record(raw)
        return None if job is None or (owner is not None and job.owner != owner) else job

    @_guard
    def load_matrices(self, job_ids: Sequence[str]) -> builtins.list[bytes | None]:
        if not job_ids:
            return []
        return cast("list[bytes | None]", self._r.mget([self._k_matrix(i) for i in job_ids]))

    @_guard
    def result(self, job_id: str, *, owner: str | None = None) -> tuple[JobRecord, bytes | None]:
        raw, blob = cast(
            "list[bytes | None]", self._r.mget([self._k_job(job_id), self._k_result(job_id)])
        )
        job = None if raw is None else load_record(raw)
        return visible(job, job_id, owner), blob

    @_guard
    def history(self, job_id: str, *, owner: str | None = None) -> builtins.list[HistoryPoint]:
        # The record, a finished job's curve and the points reported while it ran, in one
        # MULTI/EXEC: all as of the same moment. The curve, once there, is read in their place.
        with self._r.pipeline() as pipe:
            pipe.get(self._k_job(job_id))
            pipe.get(self._k_curve(job_id))
            pipe.lrange(self._k_history(job_id), 0, -1)
            record, curve, points = cast(
                "tuple[bytes | None, bytes | None, list[bytes]]", pipe.execute()
            )
        if owner is not None:
            visible(None if record is None else load_record(record), job_id, owner)
        if curve is not None:
            return load_curve(curve)
        return [HistoryPoint.model_validate_json(item) for item in points]

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
    def queued_ids(
        self, limit: int = 1000, *, before: datetime | None = None
    ) -> builtins.list[str]:
        if limit <= 0:
            return []
        top = f"({to_us(before)}" if before is not None else "+inf"
        raw = cast(
            "list[bytes]", self._r.zrangebyscore(self._k_queued, "-inf", top, start=0, num=limit)
        )
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
    def create(
        self,
        job: JobRecord,
        matrix: bytes,
        *,
        max_active: int | None = None,
        wake_pending_s: float | None = None,
    ) -> Created:
        job.check_new()
        idem = None if job.idempotency_key is None else self._k_idem(job.owner, job.idempotency_key)
        active = self._k_active(job.owner)

        with self._r.pipeline(transaction=False) as pipe:  # only to queue the writes
            _set(pipe, self._k_job(job.id), dump_record(job))
            _set(pipe, self._k_matrix(job.id), matrix)
            pipe.zadd(self._k_owner(job.owner), {job.id: to_us(job.created_at)})
            self._enqueue(pipe, job)
            if idem is not None:
                _set(pipe, idem, job.id)
            words = _take_words(pipe)
        assert words is not None  # a new job's writes are short
        most = -1 if max_active is None else max_active
        wake = "" if wake_pending_s is None else self._k_wake
        wake_ms = 0 if wake_pending_s is None else _pending_ms(wake_pending_s)
        reply = cast(
            "list[Any]",
            self._r.eval(
                _CREATE, 0, idem or "", self._k_job(""), active, most, wake, wake_ms, *words
            ),
        )
        if reply[0] == 2:
            raise TooManyActive(job.owner, most)
        if reply[0] == 1:
            existing = load_record(reply[1])
            if existing.owner != job.owner or existing.request_hash != job.request_hash:
                raise IdempotencyConflict(existing.id)
            return Created(existing, created=False)
        return Created(job, created=True, wake=reply[1] == 1)

    def _heal(self, pipe: Pipeline, job_id: str, job: JobRecord | None) -> None:
        """Queue the removal from the queued indexes of a job that is not queued."""
        pipe.zrem(self._k_queued, job_id)
        if job is not None:
            pipe.zrem(self._k_owner_queue(job.owner), job_id)
        if job is not None and job.batch_key is not None:
            pipe.zrem(self._k_batch(job.batch_key), job_id)

    @_guard
    def claim(self, job_id: str, worker: str, lease_s: float) -> JobRecord | None:
        key = self._k_job(job_id)
        # fast path: a redelivered message for a running or finished job is one GET
        raw = cast("bytes | None", self._r.get(key))
        if raw is None or load_record(raw).claim(worker, lease_s, utcnow()) is None:
            return None

        def body(pipe: Pipeline) -> JobRecord | None:
            job = self._read(pipe, key)
            claimed = None if job is None else job.claim(worker, lease_s, utcnow())
            pipe.multi()
            if claimed is None:
                self._heal(pipe, job_id, job)
            else:
                self._put(pipe, claimed)
            return claimed

        return self._txn([key], body)

    @_guard
    def claim_next(self, worker: str, lease_s: float, limit: int) -> builtins.list[JobRecord]:
        if limit <= 0:
            return []
        while True:
            try:
                claimed = self._attempt_next(worker, lease_s, limit)
            except WatchError:
                continue  # another worker took the turn or a job first: look again
            if claimed is not None:
                return claimed

    def _attempt_next(
        self, worker: str, lease_s: float, limit: int
    ) -> builtins.list[JobRecord] | None:
        """One try of claim_next: read what to take in one script (`_PEEK_NEXT`), apply the
        claim rules here, and write only if the records and the turn are as read
        (`_WRITE_IF`); None when it only tidied an index or lost a race (try again)."""
        now = utcnow()
        peek = (
            self._k_turn, self._k_owners, self._k_owner_queue(""), self._k_batch(""),
            self._k_job(""), to_us(now), limit, DUE_SCAN,
        )  # fmt: skip
        reply = cast("list[Any]", self._r.eval(_PEEK_NEXT, 0, *peek))
        reply += [None] * (4 - len(reply))
        last, owner, head_id, head_raw = reply[:4]
        if owner is None:
            if self._r.zcard(self._k_queued) and self._adopt_queued():
                return None
            return []
        if head_id is None:  # the owner's queue is empty: it leaves the ring
            self._drop_owner(owner.decode())
            return None
        expect: dict[str, bytes] = {self._k_turn: last or b""}
        found = None if head_raw is None else load_record(head_raw)
        head = None if found is None else found.claim(worker, lease_s, now)
        with self._r.pipeline(transaction=False) as writes:  # only to queue the writes
            if head is None:  # a stale entry (not queued, or expired)
                writes.zrem(self._k_owner_queue(owner.decode()), head_id)
                self._heal(writes, head_id.decode(), found)
                self._write_if({self._k_job(head_id.decode()): head_raw or b""}, writes)
                return None
            expect[self._k_job(head.id)] = head_raw
            claimed = [head]
            mates = reply[4:]
            for mate_id, raw in zip(mates[0::2], mates[1::2], strict=True):
                job_id = mate_id.decode()
                expect[self._k_job(job_id)] = raw or b""
                job = None if raw is None else load_record(raw)
                taken = None if job is None else job.claim(worker, lease_s, now)
                if taken is None:
                    self._heal(writes, job_id, job)
                else:
                    claimed.append(taken)
            self._put_running(writes, claimed)
            _set(writes, self._k_turn, owner)
            return claimed if self._write_if(expect, writes) else None

    def _write_if(self, expect: dict[str, bytes], writes: Pipeline) -> bool:
        """Run the writes queued on `writes` if every key in `expect` still holds its value
        (b"": none); whether they ran."""
        words = _take_words(writes)
        assert words is not None  # a claim's writes are short
        pairs = [part for key, value in expect.items() for part in (key, value)]
        return bool(self._r.eval(_WRITE_IF, 0, len(expect), *pairs, *words))

    def _drop_owner(self, owner: str) -> None:
        """Take an owner whose queue is empty off the ring, unless a job came meanwhile."""
        queue = self._k_owner_queue(owner)
        with self._r.pipeline() as pipe:
            pipe.watch(queue)  # type: ignore[no-untyped-call]
            if pipe.zcard(queue):
                return
            pipe.multi()
            pipe.zrem(self._k_owners, owner)
            pipe.execute()  # WatchError if a job came: claim_next looks again

    def _adopt_queued(self) -> int:
        """Put queued jobs that are in no owner's queue (queued by a version without owner
        queues) into theirs; return how many. Idempotent, so workers may race on it."""
        adopted = 0
        start = 0
        while True:
            ids = cast("list[bytes]", self._r.zrange(self._k_queued, start, start + 999))
            if not ids:
                return adopted
            start += len(ids)
            raws = cast("list[bytes | None]", self._r.mget([self._k_job(i.decode()) for i in ids]))
            with self._r.pipeline(transaction=False) as pipe:
                for member, raw in zip(ids, raws, strict=True):
                    job = None if raw is None else load_record(raw)
                    if job is not None and job.status == JobStatus.queued:
                        self._enqueue(pipe, job)
                        adopted += 1
                    else:  # a stale entry: tidy it, so an empty ring is not scanned again
                        pipe.zrem(self._k_queued, member)
                        start -= 1
                pipe.execute()

    @_guard
    def mark_wake(self, pending_s: float) -> bool:
        # The command itself: redis-py's set() checks its options on every call (see `_set`).
        mark = ("SET", self._k_wake, 1, "NX", "PX", _pending_ms(pending_s))
        return bool(self._r.execute_command(*mark))  # type: ignore[no-untyped-call]

    @_guard
    def clear_wake(self) -> None:
        self._r.delete(self._k_wake)

    @_guard
    def claim_compatible(
        self, batch_key: str, worker: str, lease_s: float, limit: int
    ) -> builtins.list[JobRecord]:
        """Claim the oldest queued jobs of batch_key: one transaction for all of them (more only
        when some candidates turn out not to be queued, or another worker took them first)."""
        claimed: list[JobRecord] = []
        seen: set[str] = set()
        while len(claimed) < limit:
            want = limit - len(claimed)
            # the index normally holds only queued jobs (every transition keeps it up to date),
            # so the first `want` are the ones to take; every watched key is one we need
            raw = cast(
                "list[bytes]",
                self._r.zrange(self._k_batch(batch_key), 0, len(seen) + want - 1),
            )
            candidates = [job_id for job_id in (m.decode() for m in raw) if job_id not in seen]
            candidates = candidates[:want]
            if not candidates:
                break
            keys = [self._k_job(job_id) for job_id in candidates]

            def body(
                pipe: Pipeline, candidates: list[str] = candidates, keys: list[str] = keys,
                want: int = want,
            ) -> tuple[list[JobRecord], list[str]]:  # fmt: skip
                records, _ = self._read_batch(pipe, keys, [])
                taken: list[JobRecord] = []
                examined: list[str] = []
                now = utcnow()
                pipe.multi()
                for job_id, job in zip(candidates, records, strict=True):
                    claimed = None if job is None else job.claim(worker, lease_s, now)
                    if claimed is None:
                        self._heal(pipe, job_id, job)
                    elif len(taken) < want:
                        taken.append(claimed)
                    else:
                        continue
                    examined.append(job_id)
                self._put_running(pipe, taken)
                return taken, examined

            try:
                taken, examined = self._attempt(keys, body)
            except WatchError:
                continue  # another worker got there first: look at the queue again
            claimed += taken
            seen.update(examined)
        return claimed

    @_guard
    def heartbeat_many(
        self,
        worker: str,
        lease_s: float,
        beats: Sequence[Beat],
        *,
        history_max_points: int = 500,
    ) -> builtins.list[Heartbeat]:
        if not beats:
            return []
        cap = max(1, history_max_points)
        ids = list(dict.fromkeys(beat.job_id for beat in beats))
        with_history = list(dict.fromkeys(beat.job_id for beat in beats if beat.history))
        job_keys = [self._k_job(job_id) for job_id in ids]
        history_keys = [self._k_history(job_id) for job_id in with_history]
        points = [dump_points(beat.history or []) for beat in beats]

        def body(pipe: Pipeline) -> list[Heartbeat]:
            records, states = self._read_batch(pipe, job_keys, history_keys)
            jobs = dict(zip(ids, records, strict=True))
            histories = dict(zip(with_history, states, strict=True))
            answers: list[Heartbeat] = []
            leases: dict[str, int] = {}
            now = utcnow()
            pipe.multi()
            for beat, new_points in zip(beats, points, strict=True):
                job = jobs[beat.job_id]
                renewed = job and job.heartbeat(worker, lease_s, now, beat.progress)
                if renewed is None:
                    cancel = bool(job and job.cancel_requested)
                    answers.append(Heartbeat(owned=False, cancel_requested=cancel))
                    continue
                job = jobs[beat.job_id] = renewed
                assert job.lease_until is not None
                _set(pipe, self._k_job(job.id), dump_record(job))
                leases[job.id] = to_us(job.lease_until)
                if new_points:
                    self._append_history(pipe, job.id, histories[job.id], new_points, cap)
                answers.append(Heartbeat(owned=True, cancel_requested=job.cancel_requested))
            if leases:
                pipe.zadd(self._k_running, leases)
                pipe.publish(self._k_changed, " ".join(leases))
            return answers

        return self._txn([*job_keys, *history_keys], body)

    @_guard
    def finish_many(
        self,
        worker: str,
        outcomes: Sequence[Outcome],
        *,
        history_max_points: int = 500,
    ) -> builtins.list[bool]:
        if not outcomes:
            return []
        cap = max(1, history_max_points)
        ids = list(dict.fromkeys(outcome.job_id for outcome in outcomes))
        job_keys = [self._k_job(job_id) for job_id in ids]
        curves = [
            None if outcome.history is None else capped(outcome.history, cap)
            for outcome in outcomes
        ]

        def body(pipe: Pipeline) -> list[bool]:
            records, _ = self._read_batch(pipe, job_keys, [])
            jobs = dict(zip(ids, records, strict=True))
            answers: list[bool] = []
            finished: list[JobRecord] = []
            solves: dict[str, tuple[int, float]] = {}  # per method: count, seconds
            now = utcnow()
            pipe.multi()
            for outcome, curve in zip(outcomes, curves, strict=True):
                found = jobs[outcome.job_id]
                job = (
                    None
                    if found is None
                    else found.finish(
                        worker, outcome.status, now, summary=outcome.summary, error=outcome.error
                    )
                )
                if job is None:
                    answers.append(False)
                    continue
                jobs[outcome.job_id] = job
                if outcome.result is not None:
                    _set(pipe, self._k_result(job.id), outcome.result, ex=self.retention_s)
                if curve is not None:  # read in place of the points reported (kept, with a
                    # TTL, for an API of an older version that reads only those)
                    _set(pipe, self._k_curve(job.id), dump_curve(curve), ex=self.retention_s)
                finished.append(job)
                summary = outcome.summary
                if summary is not None:
                    count, seconds = solves.get(summary.method, (0, 0.0))
                    solves[summary.method] = count + 1, seconds + summary.elapsed_s
                answers.append(True)
            for method, (count, seconds) in solves.items():
                pipe.hincrby(f"{self._p}:solve:count", method, count)
                pipe.hincrbyfloat(f"{self._p}:solve:seconds", method, seconds)
            self._end(pipe, finished)  # running jobs: in no queue
            if finished:
                pipe.publish(self._k_changed, " ".join(job.id for job in finished))
            return answers

        return self._txn(job_keys, body)

    @_guard
    def save_checkpoint(self, job_id: str, worker: str, iteration: int, blob: bytes) -> bool:
        key = self._k_job(job_id)

        def body(pipe: Pipeline) -> bool:
            job = self._read(pipe, key)
            saved = None if job is None else job.checkpointed(worker, iteration)
            if saved is None:
                return False
            pipe.multi()
            pipe.set(key, dump_record(saved))
            pipe.set(self._k_checkpoint(job_id), blob)
            return True

        return self._txn([key], body)

    @_guard
    def load_checkpoint(self, job_id: str) -> bytes | None:
        return cast("bytes | None", self._r.get(self._k_checkpoint(job_id)))

    @_guard
    def preempt(self, job_id: str, worker: str, defer_s: float = 0.0) -> JobRecord | None:
        key = self._k_job(job_id)

        def body(pipe: Pipeline) -> JobRecord | None:
            job = self._read(pipe, key)
            queued = None if job is None else job.preempt(worker, utcnow(), defer_s)
            if queued is not None:
                pipe.multi()
                self._put(pipe, queued)
            return queued

        return self._txn([key], body)

    @_guard
    def request_cancel(self, job_id: str, *, owner: str | None = None) -> JobRecord:
        key = self._k_job(job_id)

        def body(pipe: Pipeline) -> JobRecord:
            job = visible(self._read(pipe, key), job_id, owner)
            cancelled = job.cancel(utcnow())
            if cancelled is not job:
                pipe.multi()
                self._put(pipe, cancelled)
            return cancelled

        return self._txn([key], body)

    @_guard
    def delete(self, job_id: str, *, owner: str | None = None) -> None:
        key = self._k_job(job_id)
        job = visible(self.get(job_id), job_id, owner)
        idem = None if job.idempotency_key is None else self._k_idem(job.owner, job.idempotency_key)

        def body(pipe: Pipeline) -> None:
            current = visible(self._read(pipe, key), job_id, owner)
            current.check_deletable()
            mapped = None if idem is None else cast("bytes | None", pipe.get(idem))
            pipe.multi()
            pipe.delete(
                key,
                self._k_matrix(job_id),
                self._k_result(job_id),
                self._k_history(job_id),
                self._k_curve(job_id),
                self._k_checkpoint(job_id),
            )
            if idem is not None and mapped == job_id.encode():
                pipe.delete(idem)
            pipe.zrem(self._k_owner(current.owner), job_id)
            pipe.zrem(self._k_finished(current.status), job_id)
            self._unqueue(pipe, [current])
            pipe.zrem(self._k_running, job_id)

        self._txn([key] if idem is None else [key, idem], body)

    @_guard
    def recover_expired(
        self, now: datetime, max_attempts: int
    ) -> tuple[builtins.list[str], builtins.list[str]]:
        now_us = to_us(now)
        raw = cast("list[bytes]", self._r.zrangebyscore(self._k_running, "-inf", f"({now_us}"))
        requeued: list[str] = []
        ended: list[str] = []
        for job_id in (m.decode() for m in raw):
            key = self._k_job(job_id)

            def body(pipe: Pipeline, job_id: str = job_id, key: str = key) -> str | None:
                job = self._read(pipe, key)
                if job is None or job.status != JobStatus.running:
                    pipe.multi()  # a stale index entry
                    pipe.zrem(self._k_running, job_id)
                    return None
                after = job.recover(now, max_attempts)
                if after is None:
                    return None  # renewed meanwhile
                pipe.multi()
                self._put(pipe, after)
                if after.finished:
                    return "ended"
                pipe.delete(self._k_history(job_id))
                return "requeued"

            outcome = self._txn([key], body)
            if outcome == "requeued":
                requeued.append(job_id)
            elif outcome == "ended":
                ended.append(job_id)
        return requeued, ended

    # -- workers -------------------------------------------------------------------------

    def _k_worker(self, worker_id: str) -> str:
        return f"{self._p}:worker:{worker_id}"

    @_guard
    def announce_worker(self, worker: WorkerInfo, ttl_s: float) -> None:
        with self._r.pipeline() as pipe:
            pipe.set(self._k_worker(worker.id), worker.model_dump_json(), px=int(ttl_s * 1000))
            pipe.sadd(f"{self._p}:workers", worker.id)
            pipe.execute()

    @_guard
    def live_workers(self) -> builtins.list[WorkerInfo]:
        ids = sorted(m.decode() for m in cast("set[bytes]", self._r.smembers(f"{self._p}:workers")))
        if not ids:
            return []
        raws = cast("list[bytes | None]", self._r.mget([self._k_worker(i) for i in ids]))
        gone = [worker_id for worker_id, raw in zip(ids, raws, strict=True) if raw is None]
        if gone:
            self._r.srem(f"{self._p}:workers", *gone)
        return [WorkerInfo.model_validate_json(raw) for raw in raws if raw is not None]

    @_guard
    def forget_worker(self, worker_id: str) -> None:
        with self._r.pipeline() as pipe:
            pipe.delete(self._k_worker(worker_id))
            pipe.srem(f"{self._p}:workers", worker_id)
            pipe.execute()


def _implements_protocol(store: RedisStore) -> JobStore:  # checked by mypy only
    return store
