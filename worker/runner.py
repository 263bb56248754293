"""Running claimed jobs through the solver: the logic behind the Celery task.

The task only hands a job id to `JobRunner.run`; everything a job's life needs on the worker's
side lives here: claim, gather compatible jobs into a batch, solve with live progress and
cancel, store results and summaries, turn errors into failed jobs with a usable message.
A job solved alone also checkpoints, resumes from its checkpoint, and yields its worker to
waiting jobs when its time slice is over (worker/slicing.py says when).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from ninv.jobs import JobRecord
from ninv.npy import from_npy, to_npy
from ninv.schemas import JobStatus
from ninv.settings import Settings
from ninv.store import Heartbeat, JobStore, Outcome, StoreError, StoreUnavailable
from worker.outcome import curve, summarise
from worker.progress import JobProgress
from worker.slicing import SliceClock, SolveHook
from worker.solver import (
    DEFAULT_MAX_ITER,
    BatchSolution,
    ItemOptions,
    ProgressPoint,
    Snapshot,
    Solution,
    SolverError,
    Suspended,
    check_matrix,
    invert_resumable,
    solve_batch,
    thin,
)

__all__ = ["JobRunner"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Backoff between attempts to store results the store refused (down, or full), in seconds.
WRITE_RETRY_FIRST_S = 0.5
WRITE_RETRY_MAX_S = 10.0

#: How long one `drain` goes on taking batches before it hands the rest to the next message.
DRAIN_FOR_S = 5.0
#: After the queue empties, how long a drain that took jobs keeps looking (every
#: DRAIN_LOOK_EVERY_S) before it ends. Jobs that keep arriving (other services submitting
#: one at a time) are then taken by the same drain: each drain that ends costs a wake message,
#: which cost the worker more than the tiny jobs it then found and the API a broker publish.
DRAIN_LINGER_S = 0.02
DRAIN_LOOK_EVERY_S = 0.002


def _failure_message(exc: BaseException) -> str:
    """What a user can act on, for each way a solve can fail."""
    if isinstance(exc, SolverError):
        return str(exc)
    if isinstance(exc, torch.cuda.OutOfMemoryError | MemoryError):
        return (
            "out of memory on the worker's device; submit a smaller matrix, use dtype float32, "
            "or run the job on a device with more memory"
        )
    return f"internal error in the worker ({type(exc).__name__}); the worker log has details"


def _decoded(job: JobRecord, blob: bytes | None) -> np.ndarray:
    """A job's stored input matrix, decoded."""
    if blob is None:
        raise SolverError(f"job {job.id} has no stored input matrix")
    return from_npy(blob)


@dataclass
class _Running:
    """One job inside a solve: its record, its progress, whether its outcome is stored, and its
    input matrix once loaded."""

    job: JobRecord
    progress: JobProgress
    done: bool = False
    matrix: np.ndarray | None = None


class JobRunner:
    """Runs jobs on one device for one worker process."""

    def __init__(
        self,
        store: JobStore,
        settings: Settings,
        *,
        worker_id: str,
        wake: Callable[[], object] | None = None,
    ) -> None:
        """`wake` makes sure a worker will look at the queue (after a preemption); without
        it, no job is preempted."""
        self._store = store
        self._settings = settings
        self.worker_id = worker_id
        self._wake = wake

    # -- entry point ------------------------------------------------------------------------

    def run(self, job_id: str) -> None:
        """Claim one job (a no-op if finished or held elsewhere), batch it if it can be, solve.

        What a per-job `ninv.solve` message asks: older versions sent one per job, and tests
        drive a job through it directly. The product's path is `drain`.
        """
        job = self._store.claim(job_id, self.worker_id, self._settings.lease_s)
        if job is None:
            log.debug("job %s: nothing to do (finished, or held by a live worker)", job_id)
            return
        # A job with a checkpoint resumes alone: a batched solve starts from iteration 0.
        others = [] if job.resumed_from is not None else self._gather_compatible(job)
        self._solve_claimed([job, *others])

    def drain(self, wake: Callable[[], object], *, for_s: float = DRAIN_FOR_S) -> int:
        """Claim and solve waiting jobs, a batch at a time, in the store's round-robin order
        across owners (`claim_next`), until none waits (for DRAIN_LINGER_S, once it took some)
        or `for_s` seconds have passed; return how many jobs it took.

        After each claim it calls `wake` (which sends a message only if none is pending), so
        an idle worker can take the next batch meanwhile, and a drain that stops at `for_s`
        (keeping a warm shutdown or a redeploy short) leaves a message for what is left.
        """
        limit = max(1, self._settings.batch_max)
        deadline = time.monotonic() + for_s
        taken = 0
        while True:
            jobs = self._store.claim_next(self.worker_id, self._settings.lease_s, limit)
            if not jobs:
                if taken and self._job_arrives(deadline):
                    continue
                return taken
            taken += len(jobs)
            if len(jobs) > 1:
                log.debug("solving %d jobs together (%s)", len(jobs), jobs[0].batch_key)
            wake()
            self._solve_claimed(jobs)
            if time.monotonic() >= deadline:
                return taken

    def _job_arrives(self, deadline: float) -> bool:
        """Whether a job is queued within DRAIN_LINGER_S (or by `deadline`): looked for every
        DRAIN_LOOK_EVERY_S with one read of the queue, a third of an empty claim's cost."""
        until = min(time.monotonic() + DRAIN_LINGER_S, deadline)
        while time.monotonic() < until:
            time.sleep(DRAIN_LOOK_EVERY_S)
            if self._store.queued_ids(limit=1):
                return True
        return False

    def _solve_claimed(self, jobs: Sequence[JobRecord]) -> None:
        """Solve claimed jobs: each matrix checked first, then the rest together."""
        blobs = self._store.load_matrices([job.id for job in jobs])  # one read for the batch
        loaded = [
            item
            for item, blob in zip(map(self._running, jobs), blobs, strict=True)
            if self._loaded(item, blob)
        ]
        running = self._checked(loaded)
        if running:
            self._solve_group(running)

    def _loaded(self, item: _Running, blob: bytes | None) -> bool:
        """Decode the job's matrix (`blob`, as stored); fail the job if it has none."""
        try:
            item.matrix = _decoded(item.job, blob)
        except SolverError as exc:
            self._fail_alone(item, exc)
            return False
        return True

    def _checked(self, items: list[_Running]) -> list[_Running]:
        """The jobs whose own matrix the solver takes; the others fail alone, with indices in
        their own matrix (a batch's stacked error would name the stack and fail every job in it).

        Matrices of one shape and dtype are checked stacked, in one call (a call costs ~35 us
        for a 16x16 matrix: 9 ms for a claim of 256 checked one by one); only when the stack is
        refused is each checked alone, to find which to fail.
        """
        groups: dict[tuple[tuple[int, ...], str, str], list[tuple[_Running, np.ndarray]]] = {}
        for item in items:
            matrix = item.matrix
            assert matrix is not None  # _loaded
            key = (matrix.shape, matrix.dtype.str, item.job.options.dtype)
            groups.setdefault(key, []).append((item, matrix))
        refused: set[int] = set()
        for (shape, _, dtype), group in groups.items():
            if len(group) > 1 and len(shape) == 2 and self._takes(group, dtype):
                continue
            for item, matrix in group:
                try:
                    check_matrix(matrix, dtype=dtype, max_n=self._settings.max_n)
                except SolverError as exc:
                    self._fail_alone(item, exc)
                    refused.add(id(item))
        return [item for item in items if id(item) not in refused]

    def _takes(self, group: list[tuple[_Running, np.ndarray]], dtype: str) -> bool:
        """Whether the solver takes every matrix of `group` (2-D, one shape), checked at once."""
        try:
            check_matrix(np.stack([m for _, m in group]), dtype=dtype, max_n=self._settings.max_n)
        except SolverError:
            return False
        return True

    def _fail_alone(self, item: _Running, exc: SolverError) -> None:
        item.done = True
        self._fail([item], exc)

    def _solve_group(self, running: list[_Running]) -> None:
        """Solve jobs together; an error that hits the whole batched solve (out of memory, an
        internal error) re-runs its unfinished jobs in halves, down to single jobs, so only a
        job that fails alone is failed."""
        try:
            if len(running) == 1:
                self._solve_alone(running[0])
            else:
                self._solve_together(running)
        except StoreError:
            raise  # the store is down: the leases lapse and the jobs run again elsewhere
        except Exception as exc:
            left = [item for item in running if not item.done]
            if len(left) <= 1:
                self._fail(left, exc)
                return
            # A SolverError is one job's input (a singular matrix for `exact`): not a fault.
            log.log(
                logging.INFO if isinstance(exc, SolverError) else logging.WARNING,
                "a batched solve of %d jobs failed (%s); solving them in halves",
                len(left), type(exc).__name__,
            )  # fmt: skip
            if isinstance(exc, torch.cuda.OutOfMemoryError):
                torch.cuda.empty_cache()
            half = len(left) // 2
            for part in (left[:half], left[half:]):
                self._solve_group([self._again(item) for item in part])

    def _gather_compatible(self, job: JobRecord) -> list[JobRecord]:
        """Claim queued jobs that can share this job's solve.

        When some are queued already (a burst is arriving), wait up to NINV_BATCH_WAIT_MS for
        the batch to fill; a job that finds none starts at once rather than pay the wait.
        """
        limit = self._settings.batch_max - 1
        if job.batch_key is None or limit <= 0:
            return []
        deadline = time.monotonic() + self._settings.batch_wait_ms / 1000
        gathered: list[JobRecord] = []
        while True:
            gathered += self._store.claim_compatible(
                job.batch_key, self.worker_id, self._settings.lease_s, limit - len(gathered)
            )
            if not gathered or len(gathered) >= limit or time.monotonic() >= deadline:
                break
            time.sleep(min(0.005, max(0.0, deadline - time.monotonic())))
        if gathered:
            log.debug("solving %d jobs together (%s)", len(gathered) + 1, job.batch_key)
        return gathered

    def _running(self, job: JobRecord) -> _Running:
        max_iter = job.options.max_iter or DEFAULT_MAX_ITER[job.options.method]
        progress = JobProgress(job.id, max_iter=max_iter, timeout_s=self._settings.job_timeout_s)
        return _Running(job, progress)

    def _again(self, item: _Running) -> _Running:
        """The job afresh (new progress), keeping its loaded matrix: for a re-run."""
        return _Running(item.job, self._running(item.job).progress, matrix=item.matrix)

    def _device(self, job: JobRecord) -> str:
        # A job that leaves the device to ninv runs on the worker's own device.
        return self._settings.device if job.options.device == "auto" else job.options.device

    # -- solving ------------------------------------------------------------------------------

    def _solve_alone(self, item: _Running) -> None:
        """A job that batches with nothing: one matrix, or a (b, n, n) input of its own.

        It resumes from its checkpoint if it has one, saves checkpoints as it goes, and when
        its slice is over while others wait, stores a checkpoint and goes back to the queue.
        """
        job, options = item.job, item.job.options
        matrix = self._matrix(item)
        slicing = self._settings.slice_s if self._wake is not None else 0.0
        clock = SliceClock(time.monotonic(), slicing, self._settings.checkpoint_s)
        hook = SolveHook(clock, time.monotonic, lambda snap: self._checkpoint(job, snap, clock))
        resume = self._resume_point(job, matrix.shape)
        while True:
            out = invert_resumable(
                matrix,
                method=options.method,
                max_iter=options.max_iter,
                tol=options.tol,
                lr_schedule=options.lr_schedule,
                dtype=options.dtype,
                device=self._device(job),
                seed=options.seed,
                stall_window=options.stall_window,
                aux=options.aux,
                on_progress=lambda point: self._report_alone(item, point, clock),
                progress_every_s=self._settings.progress_every_s,
                max_n=self._settings.max_n,
                hook=hook,
                resume=resume,
            )
            if not isinstance(out, Suspended):
                self._store_solutions([(item, out)])
                return
            if self._preempt(job, out.snapshot, clock):
                item.done = True
                return
            clock.never_yield()  # its checkpoint was not stored: go on from the snapshot here
            resume = out.snapshot

    def _report_alone(self, item: _Running, point: ProgressPoint, clock: SliceClock) -> bool:
        """A tick of a job solved alone; once its slice is over, also whether others wait."""
        goes_on = self._report([(item, point)])[0]
        if goes_on and clock.slice_over(time.monotonic()):
            try:
                clock.others_wait = bool(self._store.queued_ids(1))
            except StoreUnavailable:
                clock.others_wait = False  # the store cannot take the job back now anyway
        return goes_on

    def _resume_point(self, job: JobRecord, shape: tuple[int, ...]) -> Snapshot | None:
        """The job's checkpoint to resume from, or None (none stored, or unusable: log why)."""
        if job.resumed_from is None:
            return None
        blob = self._store.load_checkpoint(job.id)
        try:
            if blob is None:
                raise SolverError("it is gone")
            snapshot = Snapshot.from_bytes(blob)
            size = shape[0] if len(shape) == 3 else 1
            snapshot.check_fits(job.options.method, job.options.dtype, job.n, size)
        except SolverError as exc:
            log.warning("job %s starts afresh: its checkpoint cannot be used: %s", job.id, exc)
            return None
        log.info("job %s resumes from iteration %d", job.id, snapshot.iteration)
        return snapshot

    def _checkpoint(self, job: JobRecord, snapshot: Snapshot, clock: SliceClock) -> bool:
        """Store the job's checkpoint; False when it is too large (then the job saves no more
        and is not sliced), the store refuses it (the solve goes on), or the job is not ours."""
        limit = self._settings.checkpoint_max_bytes
        if snapshot.nbytes > limit:
            log.warning(
                "job %s: checkpoint of %d bytes skipped, over NINV_CHECKPOINT_MAX_BYTES (%d)",
                job.id, snapshot.nbytes, limit,
            )  # fmt: skip
            clock.checkpoint_s = 0.0
            clock.never_yield()
            return False
        blob = snapshot.to_bytes()
        try:
            saved = self._store.save_checkpoint(job.id, self.worker_id, snapshot.iteration, blob)
        except StoreUnavailable as exc:
            log.warning("job %s: checkpoint not stored, solving on: %s", job.id, exc)
            return False
        if not saved:
            log.warning("job %s: lease lost, checkpoint not stored", job.id)
        return saved

    def _preempt(self, job: JobRecord, snapshot: Snapshot, clock: SliceClock) -> bool:
        """Store the checkpoint, put the job back in the queue and wake a worker for it.
        False (and nothing changed) when the checkpoint or the preemption was not stored."""
        if self._wake is None or not self._checkpoint(job, snapshot, clock):
            return False
        try:
            queued = self._store.preempt(job.id, self.worker_id, self._settings.slice_s)
        except StoreUnavailable as exc:
            log.warning("job %s: not preempted, solving on: %s", job.id, exc)
            return False
        if queued is None:
            log.warning("job %s: lease lost at preemption", job.id)
            return True  # not ours any more: nothing to store
        try:
            self._wake()
        except Exception as exc:  # the sweeper's outbox wakes workers for queued jobs
            log.warning("job %s: no wake sent (%s); the outbox will send one", job.id, exc)
        log.info("job %s yields at iteration %d: its slice is over", job.id, snapshot.iteration)
        return True

    def _solve_together(self, running: list[_Running]) -> None:
        """Solve compatible jobs in one batched solve, each with its own options and fate.

        Every tick reports all live jobs in one store call; the jobs that stop at a check are
        stored together, at once, while the others go on.
        """
        jobs = [item.job for item in running]

        def on_progress(points: Sequence[tuple[int, ProgressPoint]]) -> Collection[int]:
            goes_on = self._report([(running[index], point) for index, point in points])
            return [index for (index, _), on in zip(points, goes_on, strict=True) if not on]

        first = jobs[0].options
        solve_batch(
            np.stack([self._matrix(item) for item in running]),
            [
                ItemOptions(
                    max_iter=job.options.max_iter,
                    tol=job.options.tol,
                    lr_schedule=job.options.lr_schedule,
                    seed=job.options.seed,
                    stall_window=job.options.stall_window,
                )
                for job in jobs
            ],
            method=first.method,
            dtype=first.dtype,
            device=self._device(jobs[0]),
            aux=first.aux,
            on_progress=on_progress,
            on_items_done=lambda done: self._store_solutions(
                [(running[index], solution) for index, solution in done]
            ),
            progress_every_s=self._settings.progress_every_s,
            max_n=self._settings.max_n,
        )

    # -- talking to the store -------------------------------------------------------------------

    @staticmethod
    def _matrix(item: _Running) -> np.ndarray:
        assert item.matrix is not None  # loaded by `_checked`, kept by `_again`
        return item.matrix

    def _report(self, ticks: Sequence[tuple[_Running, ProgressPoint]]) -> list[bool]:
        """One store call for a tick of every live job; whether each one goes on.

        A store that refuses the tick (down, or full) does not stop the solve: its result is
        kept and written when the store takes writes again (`_write`); if the lease lapsed and
        the job ran elsewhere meanwhile, the compare-and-set finish stores only one result.
        """
        beats = [item.progress.beat(point) for item, point in ticks]
        try:
            answers = self._store.heartbeat_many(
                self.worker_id,
                self._settings.lease_s,
                beats,
                history_max_points=self._settings.history_max_points,
            )
        except StoreUnavailable as exc:
            log.warning("progress not stored, solving on: %s", exc)
            answers = [
                Heartbeat(owned=True, cancel_requested=item.progress.cancel_requested)
                for item, _ in ticks
            ]
        return [item.progress.answer(a) for (item, _), a in zip(ticks, answers, strict=True)]

    def _outcome(self, item: _Running, solution: Solution | BatchSolution) -> Outcome:
        summary = summarise(solution)
        status, error = JobStatus.succeeded, None
        if item.progress.timed_out:
            status = JobStatus.failed
            error = (
                f"stopped after NINV_JOB_TIMEOUT_S ({self._settings.job_timeout_s} s), the longest "
                "a job may run; ask for fewer iterations or a faster method (newton-schulz, cg)"
            )
        elif summary.reason == "cancelled" or item.progress.cancel_requested:
            status = JobStatus.cancelled
        return Outcome(
            item.job.id,
            status=status,
            summary=summary,
            result=to_npy(solution.inverse),
            error=error,
            history=thin(
                item.progress.final_history(curve(solution)), self._settings.history_max_points
            ),
        )

    def _store_solutions(self, done: Sequence[tuple[_Running, Solution | BatchSolution]]) -> None:
        for item, _ in done:
            item.done = True
        mine = [(item, solution) for item, solution in done if item.progress.owned]
        outcomes = [self._outcome(item, solution) for item, solution in mine]
        stored = self._write(
            lambda: self._store.finish_many(
                self.worker_id, outcomes, history_max_points=self._settings.history_max_points
            )
        )
        lost = [item.job.id for (item, _), ok in zip(mine, stored, strict=True) if not ok]
        lost += [item.job.id for item, _ in done if not item.progress.owned]
        if lost:
            log.warning("lease lost before the result was stored, not stored: %s", lost)

    def _fail(self, items: Sequence[_Running], exc: BaseException) -> None:
        message = _failure_message(exc)
        if not isinstance(exc, SolverError):
            log.exception("jobs %s failed", [item.job.id for item in items], exc_info=exc)
        outcomes = [Outcome(item.job.id, status=JobStatus.failed, error=message) for item in items]
        self._write(lambda: self._store.finish_many(self.worker_id, outcomes))

    def _write(self, write: Callable[[], _T]) -> _T:
        """Run a store write, retrying with backoff while the store is down or full.

        Solved results stay in memory meanwhile, and the worker takes no other job: it resumes
        on its own when Redis takes writes again (after NINV_JOB_TIMEOUT_S it gives up and
        raises, and the jobs run again). The writes are atomic, so a retry is safe.
        """
        give_up = time.monotonic() + self._settings.job_timeout_s
        delay = WRITE_RETRY_FIRST_S
        while True:
            try:
                return write()
            except StoreUnavailable as exc:
                if time.monotonic() + delay > give_up:
                    raise
                log.warning("results not stored yet (%s); retrying in %.1f s", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, WRITE_RETRY_MAX_S)
