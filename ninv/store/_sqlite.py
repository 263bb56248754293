"""The job store in one local SQLite file: the embedded default.

Safe for the API process (and its threadpool) and a worker process at once: WAL mode, a busy
timeout, one connection per thread, and every transition in a `BEGIN IMMEDIATE` transaction.
The record JSON is the source of truth; the columns beside it exist for the indexes. Every
transition reads the record, asks it for its next state (`JobRecord`'s rules, ninv/jobs.py) and
writes that back in the same transaction.
"""

from __future__ import annotations

import builtins
import functools
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from ninv.jobs import JobRecord, next_owner, utcnow
from ninv.notify import changes_folder, ring_changes
from ninv.schemas import CurvePoint, HistoryPoint, JobStatus, WorkerInfo
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
    dump_points,
    dump_record,
    encode_cursor,
    load_record,
    to_us,
)

__all__ = ["SqliteStore"]

_P = ParamSpec("_P")
_R = TypeVar("_R")

# Indexes on queue_us, created after _add_queue_us has given an older file that column.
_QUEUE_INDEXES = """
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (status, queue_us, id);
CREATE INDEX IF NOT EXISTS jobs_batch_queue ON jobs (batch_key, status, queue_us, id);
CREATE INDEX IF NOT EXISTS jobs_turns_queue ON jobs (status, owner, queue_us, id);
"""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id          TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    status      TEXT NOT NULL,
    batch_key   TEXT,
    created_us  INTEGER NOT NULL,
    queue_us    INTEGER NOT NULL,  -- JobRecord.queue_time: the order jobs wait in
    lease_us    INTEGER,
    finished_us INTEGER,
    record      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, created_us DESC, id DESC);
CREATE INDEX IF NOT EXISTS jobs_lease ON jobs (status, lease_us);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_us);
CREATE TABLE IF NOT EXISTS blobs (
    job_id TEXT NOT NULL,
    kind   TEXT NOT NULL,
    data   BLOB NOT NULL,
    PRIMARY KEY (job_id, kind)
);
CREATE TABLE IF NOT EXISTS history (
    job_id TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    point  TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);
CREATE TABLE IF NOT EXISTS idempotency (
    owner  TEXT NOT NULL,
    key    TEXT NOT NULL,
    job_id TEXT NOT NULL,
    PRIMARY KEY (owner, key)
);
CREATE TABLE IF NOT EXISTS stats (
    method  TEXT PRIMARY KEY,
    count   INTEGER NOT NULL,
    total_s REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS turns (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    owner TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS wake (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    until_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS workers (
    id         TEXT PRIMARY KEY,
    expires_us INTEGER NOT NULL,
    info       TEXT NOT NULL
);
"""


def _guard(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Turn "database is locked" (past the busy timeout) into StoreUnavailable, a full disk into
    StoreFull."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return fn(*args, **kwargs)
        except sqlite3.OperationalError as exc:
            message = str(exc).lower()
            if "full" in message:  # "database or disk is full"
                raise StoreFull(f"sqlite: {exc}") from exc
            if "locked" in message or "busy" in message or "unable to open" in message:
                raise StoreUnavailable(f"sqlite: {exc}") from exc
            raise

    return wrapper


class SqliteStore:
    """JobStore in one SQLite file (see the module docstring)."""

    def __init__(
        self,
        path: str | Path,
        *,
        retention_s: int,
        busy_timeout_s: float = 10.0,
        durable: bool = True,
    ) -> None:
        """`durable=False` (the worker's store) commits without waiting for the disk: safe when
        a process dies, and after a power cut its last claims and results are lost, so those
        jobs run again; the API's acceptance of a job is always synced before its 202."""
        self.path = Path(path)
        self._synchronous = "FULL" if durable else "NORMAL"
        self.retention_s = retention_s
        self._busy_timeout_s = busy_timeout_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
        # Where the API processes watching this file listen for change notices (ninv/notify.py).
        self._changes = changes_folder(self.path)
        self._init_schema()

    # -- connections ---------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise StoreUnavailable("sqlite store is closed")
            conn = sqlite3.connect(
                self.path, timeout=self._busy_timeout_s, isolation_level=None,
                check_same_thread=False,
            )  # fmt: skip
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.execute("PRAGMA foreign_keys = OFF")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _write(self, begin: str = "BEGIN IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """A transaction (by default a writing one): committed on success, rolled back on any
        error."""
        conn = self._conn()
        conn.execute(begin)
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _snapshot(self) -> AbstractContextManager[sqlite3.Connection]:
        """A read transaction: its reads see one consistent state of the file."""
        return self._write("BEGIN DEFERRED")

    @_guard
    def _init_schema(self) -> None:
        with self._write() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            self._add_queue_us(conn)
            for statement in _QUEUE_INDEXES.split(";"):
                if statement.strip():
                    conn.execute(statement)

    @staticmethod
    def _add_queue_us(conn: sqlite3.Connection) -> None:
        """A file written before jobs had a place in line: their place is their creation."""
        columns = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
        if "queue_us" not in columns:
            conn.execute("ALTER TABLE jobs ADD COLUMN queue_us INTEGER NOT NULL DEFAULT 0")
            conn.execute("UPDATE jobs SET queue_us = created_us")
            for index in ("jobs_status", "jobs_batch", "jobs_turns"):
                conn.execute(f"DROP INDEX IF EXISTS {index}")

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def _row_job(conn: sqlite3.Connection, job_id: str) -> JobRecord | None:
        row = conn.execute("SELECT record FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else load_record(row[0])

    def _changed(self, job_ids: builtins.list[str]) -> None:
        """After a commit: wake whoever watches these jobs (a hint; waiters also poll)."""
        if job_ids:
            ring_changes(self._changes, job_ids)

    @staticmethod
    def _save(conn: sqlite3.Connection, job: JobRecord) -> None:
        if job.finished:  # a finished job never resumes: its checkpoint goes
            conn.execute("DELETE FROM blobs WHERE job_id = ? AND kind = 'checkpoint'", (job.id,))
        conn.execute(
            "UPDATE jobs SET status = ?, queue_us = ?, lease_us = ?, finished_us = ?, record = ?"
            " WHERE id = ?",
            (
                job.status.value,
                to_us(job.queue_time),
                None if job.lease_until is None else to_us(job.lease_until),
                None if job.finished_at is None else to_us(job.finished_at),
                dump_record(job),
                job.id,
            ),
        )

    # -- reads ---------------------------------------------------------------------------

    @_guard
    def ping(self) -> None:
        self._conn().execute("SELECT 1").fetchone()

    @_guard
    def get(self, job_id: str, *, owner: str | None = None) -> JobRecord | None:
        job = self._row_job(self._conn(), job_id)
        return None if job is None or (owner is not None and job.owner != owner) else job

    @staticmethod
    def _blob(conn: sqlite3.Connection, job_id: str, kind: str) -> bytes | None:
        row = conn.execute(
            "SELECT data FROM blobs WHERE job_id = ? AND kind = ?", (job_id, kind)
        ).fetchone()
        return None if row is None else bytes(row[0])

    @_guard
    def load_matrices(self, job_ids: Sequence[str]) -> builtins.list[bytes | None]:
        with self._snapshot() as conn:
            return [self._blob(conn, job_id, "matrix") for job_id in job_ids]

    @_guard
    def result(self, job_id: str, *, owner: str | None = None) -> tuple[JobRecord, bytes | None]:
        with self._snapshot() as conn:
            job = visible(self._row_job(conn, job_id), job_id, owner)
            return job, self._blob(conn, job_id, "result")

    @_guard
    def history(self, job_id: str, *, owner: str | None = None) -> builtins.list[HistoryPoint]:
        with self._snapshot() as conn:
            if owner is not None:
                visible(self._row_job(conn, job_id), job_id, owner)
            rows = conn.execute(
                "SELECT point FROM history WHERE job_id = ? ORDER BY seq", (job_id,)
            ).fetchall()
        return [HistoryPoint.model_validate_json(row[0]) for row in rows]

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
        sql = "SELECT created_us, record FROM jobs WHERE owner = ?"
        args: list[Any] = [owner]
        if status is not None:
            sql += " AND status = ?"
            args.append(status.value)
        if cursor is not None:
            created, after = decode_cursor(cursor)
            sql += " AND (created_us < ? OR (created_us = ? AND id < ?))"
            args += [created, created, after]
        sql += " ORDER BY created_us DESC, id DESC LIMIT ?"
        args.append(limit + 1)
        rows = self._conn().execute(sql, args).fetchall()
        jobs = [load_record(row[1]) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            next_cursor = encode_cursor(rows[limit - 1][0], jobs[-1].id)
        return jobs, next_cursor

    @_guard
    def queued_ids(
        self, limit: int = 1000, *, before: datetime | None = None
    ) -> builtins.list[str]:
        before_us = to_us(before) if before is not None else 2**62
        rows = (
            self._conn()
            .execute(
                "SELECT id FROM jobs WHERE status = 'queued' AND queue_us < ? "
                "ORDER BY queue_us, id LIMIT ?",
                (before_us, max(0, limit)),
            )
            .fetchall()
        )
        return [row[0] for row in rows]

    @_guard
    def count_by_status(self) -> dict[JobStatus, int]:
        """Jobs by status; finished jobs past retention (not yet purged) are not counted."""
        cutoff = to_us(utcnow() - timedelta(seconds=self.retention_s))
        rows = (
            self._conn()
            .execute(
                "SELECT status, count(*) FROM jobs"
                " WHERE finished_us IS NULL OR finished_us >= ? GROUP BY status",
                (cutoff,),
            )
            .fetchall()
        )
        counts = dict.fromkeys(ALL_STATUSES, 0)
        for name, count in rows:
            counts[JobStatus(name)] = int(count)
        return counts

    @_guard
    def solve_time_totals(self) -> dict[str, tuple[int, float]]:
        rows = self._conn().execute("SELECT method, count, total_s FROM stats").fetchall()
        return {method: (int(count), float(total)) for method, count, total in rows}

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()

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
        with self._write() as conn:
            if job.idempotency_key is not None:
                row = conn.execute(
                    "SELECT job_id FROM idempotency WHERE owner = ? AND key = ?",
                    (job.owner, job.idempotency_key),
                ).fetchone()
                existing = None if row is None else self._row_job(conn, row[0])
                if existing is not None:
                    if existing.request_hash != job.request_hash:
                        raise IdempotencyConflict(existing.id)
                    return Created(existing, created=False)
            if max_active is not None:
                (active,) = conn.execute(
                    "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running') AND owner = ?",
                    (job.owner,),
                ).fetchone()
                if int(active) >= max_active:
                    raise TooManyActive(job.owner, max_active)
            if job.idempotency_key is not None:
                conn.execute(
                    "INSERT OR REPLACE INTO idempotency (owner, key, job_id) VALUES (?, ?, ?)",
                    (job.owner, job.idempotency_key, job.id),
                )
            conn.execute(
                "INSERT INTO jobs (id, owner, status, batch_key, created_us, queue_us, record)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    job.id,
                    job.owner,
                    job.status.value,
                    job.batch_key,
                    to_us(job.created_at),
                    to_us(job.queue_time),
                    dump_record(job),
                ),
            )
            conn.execute(
                "INSERT OR REPLACE INTO blobs (job_id, kind, data) VALUES (?, 'matrix', ?)",
                (job.id, matrix),
            )
            wake = wake_pending_s is not None and self._mark_wake(conn, wake_pending_s)
        return Created(job, created=True, wake=wake)

    @_guard
    def claim(self, job_id: str, worker: str, lease_s: float) -> JobRecord | None:
        with self._write() as conn:
            job = self._row_job(conn, job_id)
            claimed = None if job is None else job.claim(worker, lease_s, utcnow())
            if claimed is not None:
                self._save(conn, claimed)
            return claimed

    @_guard
    def claim_next(self, worker: str, lease_s: float, limit: int) -> builtins.list[JobRecord]:
        if limit <= 0:
            return []
        with self._write() as conn:
            row = conn.execute("SELECT owner FROM turns WHERE id = 1").fetchone()
            last = None if row is None else str(row[0])
            now = utcnow()
            # the two candidates `next_owner` needs: among owners with a due job, else all
            owner = next_owner(self._turn_candidates(conn, last, to_us(now)), last)
            if owner is None:
                owner = next_owner(self._turn_candidates(conn, last, None), last)
            if owner is None:
                return []
            (raw,) = conn.execute(
                "SELECT record FROM jobs WHERE status = 'queued' AND owner = ?"
                " ORDER BY queue_us, id LIMIT 1",
                (owner,),
            ).fetchone()
            head = load_record(raw).claim(worker, lease_s, now)
            assert head is not None  # selected as queued, in this transaction
            self._save(conn, head)
            claimed = [head]
            if head.batch_key is not None and limit > 1:
                claimed += self._claim_batch(conn, head.batch_key, worker, lease_s, limit - 1, now)
            conn.execute("INSERT OR REPLACE INTO turns (id, owner) VALUES (1, ?)", (owner,))
        return claimed

    @staticmethod
    def _turn_candidates(
        conn: sqlite3.Connection, last: str | None, due_us: int | None
    ) -> builtins.list[str]:
        """The first waiting owner after `last` and the first overall (jobs_turns_queue): only
        owners with a job queued at or before `due_us`, unless it is None."""
        due = "" if due_us is None else " AND queue_us <= ?"
        bound: tuple[int, ...] = () if due_us is None else (due_us,)
        rows = conn.execute(
            f"SELECT min(owner) FROM jobs WHERE status = 'queued' AND owner > ?{due}"
            f" UNION ALL SELECT min(owner) FROM jobs WHERE status = 'queued'{due}",
            (last or "", *bound, *bound),
        )
        return [r[0] for r in rows if r[0] is not None]

    @staticmethod
    def _claim_batch(
        conn: sqlite3.Connection,
        batch_key: str,
        worker: str,
        lease_s: float,
        limit: int,
        now: datetime,
    ) -> builtins.list[JobRecord]:
        claimed: list[JobRecord] = []
        rows = conn.execute(
            "SELECT record FROM jobs WHERE batch_key = ? AND status = 'queued'"
            " ORDER BY queue_us, id LIMIT ?",
            (batch_key, limit),
        ).fetchall()
        for (raw,) in rows:
            job = load_record(raw).claim(worker, lease_s, now)
            if job is not None:
                SqliteStore._save(conn, job)
                claimed.append(job)
        return claimed

    @_guard
    def mark_wake(self, pending_s: float) -> bool:
        with self._write() as conn:
            return self._mark_wake(conn, pending_s)

    @staticmethod
    def _mark_wake(conn: sqlite3.Connection, pending_s: float) -> bool:
        now = utcnow()
        row = conn.execute("SELECT until_us FROM wake WHERE id = 1").fetchone()
        if row is not None and int(row[0]) > to_us(now):
            return False
        conn.execute(
            "INSERT OR REPLACE INTO wake (id, until_us) VALUES (1, ?)",
            (to_us(now + timedelta(seconds=pending_s)),),
        )
        return True

    @_guard
    def clear_wake(self) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM wake WHERE id = 1")

    @_guard
    def claim_compatible(
        self, batch_key: str, worker: str, lease_s: float, limit: int
    ) -> builtins.list[JobRecord]:
        if limit <= 0:
            return []
        with self._write() as conn:
            return self._claim_batch(conn, batch_key, worker, lease_s, limit, utcnow())

    @staticmethod
    def _append_history(
        conn: sqlite3.Connection, job_id: str, history: Sequence[CurvePoint], cap: int
    ) -> None:
        """Append points to a job's history, keeping the first point and the newest cap - 1."""
        if not history:
            return
        row = conn.execute(
            "SELECT coalesce(max(seq), 0) FROM history WHERE job_id = ?", (job_id,)
        ).fetchone()
        start = int(row[0]) + 1
        conn.executemany(
            "INSERT INTO history (job_id, seq, point) VALUES (?, ?, ?)",
            [(job_id, start + i, point) for i, point in enumerate(dump_points(history))],
        )
        count, first = conn.execute(
            "SELECT count(*), min(seq) FROM history WHERE job_id = ?", (job_id,)
        ).fetchone()
        if int(count) > cap:
            conn.execute(
                "DELETE FROM history WHERE job_id = ? AND seq > ? AND seq NOT IN"
                " (SELECT seq FROM history WHERE job_id = ? ORDER BY seq DESC LIMIT ?)",
                (job_id, first, job_id, cap - 1),
            )

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
        answers: list[Heartbeat] = []
        now = utcnow()
        with self._write() as conn:
            for beat in beats:
                job = self._row_job(conn, beat.job_id)
                renewed = job and job.heartbeat(worker, lease_s, now, beat.progress)
                if renewed is None:
                    cancel = bool(job and job.cancel_requested)
                    answers.append(Heartbeat(owned=False, cancel_requested=cancel))
                    continue
                job = renewed
                self._save(conn, job)
                self._append_history(conn, job.id, beat.history or [], cap)
                answers.append(Heartbeat(owned=True, cancel_requested=job.cancel_requested))
        self._changed([b.job_id for b, a in zip(beats, answers, strict=True) if a.owned])
        return answers

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
        answers: list[bool] = []
        now = utcnow()
        with self._write() as conn:
            for outcome in outcomes:
                found = self._row_job(conn, outcome.job_id)
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
                self._save(conn, job)
                if outcome.result is not None:
                    conn.execute(
                        "INSERT OR REPLACE INTO blobs (job_id, kind, data) VALUES (?, 'result', ?)",
                        (job.id, outcome.result),
                    )
                if outcome.history is not None:
                    conn.execute("DELETE FROM history WHERE job_id = ?", (job.id,))
                    self._append_history(conn, job.id, capped(outcome.history, cap), cap)
                summary = outcome.summary
                if summary is not None:
                    conn.execute(
                        "INSERT INTO stats (method, count, total_s) VALUES (?, 1, ?)"
                        " ON CONFLICT (method) DO UPDATE SET count = count + 1,"
                        " total_s = total_s + excluded.total_s",
                        (summary.method, summary.elapsed_s),
                    )
                answers.append(True)
        self._changed([o.job_id for o, ok in zip(outcomes, answers, strict=True) if ok])
        return answers

    @_guard
    def save_checkpoint(self, job_id: str, worker: str, iteration: int, blob: bytes) -> bool:
        with self._write() as conn:
            job = self._row_job(conn, job_id)
            saved = None if job is None else job.checkpointed(worker, iteration)
            if saved is None:
                return False
            self._save(conn, saved)
            conn.execute(
                "INSERT OR REPLACE INTO blobs (job_id, kind, data) VALUES (?, 'checkpoint', ?)",
                (job_id, blob),
            )
            return True

    @_guard
    def load_checkpoint(self, job_id: str) -> bytes | None:
        return self._blob(self._conn(), job_id, "checkpoint")

    @_guard
    def preempt(self, job_id: str, worker: str, defer_s: float = 0.0) -> JobRecord | None:
        with self._write() as conn:
            job = self._row_job(conn, job_id)
            queued = None if job is None else job.preempt(worker, utcnow(), defer_s)
            if queued is not None:
                self._save(conn, queued)
            return queued

    @_guard
    def request_cancel(self, job_id: str, *, owner: str | None = None) -> JobRecord:
        with self._write() as conn:
            job = visible(self._row_job(conn, job_id), job_id, owner)
            cancelled = job.cancel(utcnow())
            if cancelled is not job:
                self._save(conn, cancelled)
        if cancelled.finished:
            self._changed([job_id])
        return cancelled

    @staticmethod
    def _forget(conn: sqlite3.Connection, job_ids: builtins.list[str]) -> None:
        for table, column in (
            ("blobs", "job_id"),
            ("history", "job_id"),
            ("idempotency", "job_id"),
            ("jobs", "id"),
        ):
            conn.executemany(
                f"DELETE FROM {table} WHERE {column} = ?", [(job_id,) for job_id in job_ids]
            )

    @_guard
    def delete(self, job_id: str, *, owner: str | None = None) -> None:
        with self._write() as conn:
            visible(self._row_job(conn, job_id), job_id, owner).check_deletable()
            self._forget(conn, [job_id])

    @_guard
    def recover_expired(
        self, now: datetime, max_attempts: int
    ) -> tuple[builtins.list[str], builtins.list[str]]:
        requeued: list[str] = []
        ended: list[str] = []
        with self._write() as conn:
            rows = conn.execute(
                "SELECT record FROM jobs WHERE status = 'running' AND lease_us < ?"
                " ORDER BY created_us, id",
                (to_us(now),),
            ).fetchall()
            for (raw,) in rows:
                job = load_record(raw).recover(now, max_attempts)
                if job is None:
                    continue
                if job.finished:
                    ended.append(job.id)
                else:
                    conn.execute("DELETE FROM history WHERE job_id = ?", (job.id,))
                    requeued.append(job.id)
                self._save(conn, job)
        self._changed(ended)
        return requeued, ended

    @_guard
    def purge_expired(self, now: datetime) -> int:
        cutoff = to_us(now - timedelta(seconds=self.retention_s))
        with self._write() as conn:
            ids = [
                row[0]
                for row in conn.execute(
                    "SELECT id FROM jobs WHERE finished_us IS NOT NULL AND finished_us < ?",
                    (cutoff,),
                )
            ]
            if ids:
                self._forget(conn, ids)
        return len(ids)

    # -- workers -------------------------------------------------------------------------

    @_guard
    def announce_worker(self, worker: WorkerInfo, ttl_s: float) -> None:
        now = utcnow()
        expires = to_us(now + timedelta(seconds=ttl_s))
        with self._write() as conn:
            conn.execute("DELETE FROM workers WHERE expires_us <= ?", (to_us(now),))  # dead ones
            conn.execute(
                "INSERT OR REPLACE INTO workers (id, expires_us, info) VALUES (?, ?, ?)",
                (worker.id, expires, worker.model_dump_json()),
            )

    @_guard
    def live_workers(self) -> builtins.list[WorkerInfo]:
        rows = self._conn().execute(
            "SELECT info FROM workers WHERE expires_us > ? ORDER BY id", (to_us(utcnow()),)
        )
        return [WorkerInfo.model_validate_json(row[0]) for row in rows]

    @_guard
    def forget_worker(self, worker_id: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM workers WHERE id = ?", (worker_id,))


def _implements_protocol(store: SqliteStore) -> JobStore:  # checked by mypy only
    return store
