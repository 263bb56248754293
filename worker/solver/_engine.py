"""The iteration driver shared by the iterative methods: checks, stopping, progress, batching.

A method is a *stepper* (see `Stepper`) that advances a (b, n, n) batch of iterates in place.
The driver runs it in chunks of `check_every` steps (cut short at stage changes of a learning
rate schedule and at the smallest remaining budget), and after each chunk it measures every
live matrix's residual, decides who stops and why, ticks progress, and compacts the batch so
that stopped matrices cost nothing more. All live matrices share one iteration count.

Because checks happen every `check_every` steps, tolerance, stall and divergence are detected
at that granularity (64 steps for adam and gd, 4 for cg, every step for newton-schulz).

The loop in `run` is a few named steps over one `LoopState`: advance (step to the next event),
judge (residuals and stop decisions, `Task.judge`), record (the loss curve), tick (progress and
cancel answers), finish items (their `Solution`s) and compact. Everything a solve carries from
one check to the next lives in the `LoopState`, the `Task`s and the stepper's own tensors; with
a `CheckHook`, the loop also consults it at checks (save a `Snapshot` of all that, or yield with
one), and `resume` starts the loop from a snapshot instead of iteration 0 (`_snapshot.py`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from ._history import HISTORY_KEEP, thin
from ._problem import DType, Method, StopReason
from ._schedule import LrSchedule
from ._snapshot import CheckHook, Snapshot, Suspended, TaskState
from ._solution import HistoryPoint, ProgressPoint, Solution

__all__ = ["BatchProgress", "ItemsDone", "LoopState", "Stepper", "StopRule", "Task", "run"]

#: on_progress of a batch: gets (index, point) for every live matrix; may return False (cancel
#: all) or a collection of indices to cancel; None or True goes on.
BatchProgress = Callable[[list[tuple[int, ProgressPoint]]], "bool | Collection[int] | None"]
#: on_items_done of a batch: gets (index, solution) for every matrix that stopped at one check.
ItemsDone = Callable[[list[tuple[int, Solution]]], None]


class Stepper(Protocol):
    """A method's iteration on a (b, n, n) batch: `w` is the iterate, advanced in place.

    `state` names the tensors besides the iterate that the next step reads (Adam's moments, cg's
    directions) and `restore` copies them back in place, for snapshots (`_snapshot.py`).
    `warmup` gives, per matrix, the steps from the start during which no stall is judged (a
    method whose residual sits on a plateau before it falls says how long here); `keep`
    compacts the batch to the given positions.
    """

    x: torch.Tensor
    w: torch.Tensor
    check_every: int
    warmup: list[int]

    def step(self, start: int, k: int) -> None: ...
    def set_lr(self, lrs: Sequence[float]) -> None: ...
    def keep(self, idx: torch.Tensor) -> None: ...
    def state(self) -> dict[str, torch.Tensor]: ...
    def restore(self, tensors: Mapping[str, torch.Tensor]) -> None: ...


@dataclass(frozen=True, slots=True)
class StopRule:
    """Stalled: the best residual has not fallen by a factor (1 - rel) within `window` steps.

    `window` is a method's default; a task's own `stall_window` overrides it (0: never stalls).
    """

    window: int
    rel: float


@dataclass(slots=True)
class Task:
    """One matrix of the batch: its resolved options, diagnostics, curve and stop-rule state."""

    max_iter: int
    tol: float | None
    schedule: LrSchedule | None
    seed: int | None
    cond: float
    stall_window: int
    history: list[HistoryPoint] = field(default_factory=list)
    best_res: float = math.inf
    ref_res: float = math.inf
    ref_it: int = 0

    def lr_at(self, iteration: int) -> float | None:
        return self.schedule.lr_at(iteration) if self.schedule is not None else None

    def saved(self) -> TaskState:
        return TaskState(self.seed, self.best_res, self.ref_res, self.ref_it, tuple(self.history))

    def restore(self, saved: TaskState) -> None:
        self.seed, self.best_res, self.ref_res = saved.seed, saved.best_res, saved.ref_res
        self.ref_it, self.history = saved.ref_it, list(saved.history)

    def add_point(self, point: HistoryPoint) -> None:
        """Append a point to the curve, which stays within 2 x HISTORY_KEEP points."""
        self.history.append(point)
        if len(self.history) > 2 * HISTORY_KEEP:
            self.history = thin(self.history, HISTORY_KEEP)

    def judge(self, r: float, it: int, rule: StopRule) -> StopReason | None:
        """Why this matrix stops at a check with residual `r` after `it` steps, or None."""
        if not math.isfinite(r):
            return "diverged"
        self.best_res = min(self.best_res, r)
        if self.tol is not None and r <= self.tol:
            return "converged"
        if it >= self.max_iter:
            return "max_iter"
        if self.best_res < self.ref_res * (1.0 - rule.rel):
            # ref_it may start in the future (a warm-up during which no stall is judged).
            self.ref_res, self.ref_it = self.best_res, max(it, self.ref_it)
        elif self.stall_window and it - self.ref_it >= self.stall_window:
            return "stalled"
        return None


@dataclass(slots=True)
class LoopState:
    """What the loop carries between checks, beside the tasks and the stepper's tensors.

    `active` holds the task indices still running, in batch order; `aux_ok`, `best` (the best
    iterate seen at a check) and `inv_ref` are aligned with it.
    """

    active: list[int]
    aux_ok: list[bool]
    best: torch.Tensor
    inv_ref: torch.Tensor | None
    it: int = 0
    last_tick: float = -math.inf
    results: dict[int, Solution] = field(default_factory=dict)


def _residuals(w: torch.Tensor, x: torch.Tensor) -> list[float]:
    n = x.shape[-1]
    eye = torch.eye(n, dtype=w.dtype, device=w.device)
    r = torch.bmm(w, x).sub_(eye)
    # tolist, not iteration: iterating a (b,) tensor makes b tensors (~1 ms at b = 256)
    values: list[float] = (torch.linalg.matrix_norm(r) / math.sqrt(n)).cpu().tolist()
    return values


def _aux(w: torch.Tensor, ref: torch.Tensor | None, ok: Sequence[bool]) -> list[float | None]:
    if ref is None:
        return [None] * w.shape[0]
    err: list[float] = (w.to(torch.float64) - ref).square().mean(dim=(1, 2)).cpu().tolist()
    return [e if good else None for e, good in zip(err, ok, strict=True)]


def _cancelled(answer: bool | Collection[int] | None, live: Collection[int]) -> set[int]:
    """The indices an `on_progress` answer cancels: False all, None or True none."""
    if answer is False:
        return set(live)
    if answer is None or answer is True:
        return set()
    return set(answer)


def run(
    stepper: Stepper,
    tasks: list[Task],
    *,
    method: Method,
    dtype: DType,
    rule: StopRule,
    inv_ref: torch.Tensor | None,
    aux_ok: Sequence[bool],
    on_progress: BatchProgress | None,
    on_items_done: ItemsDone | None,
    progress_every_s: float,
    t0: float,
    hook: CheckHook | None = None,
    resume: Snapshot | None = None,
) -> list[Solution] | Suspended:
    """Drive `stepper` until every task stops; return one `Solution` per task, in order.

    With a `hook`, every check on the grid asks it whether to save a snapshot or to yield
    (then `Suspended` is returned); `resume` continues from a snapshot instead of the start.
    """
    driver = _Driver(
        stepper,
        tasks,
        method=method,
        dtype=dtype,
        rule=rule,
        on_progress=on_progress,
        on_items_done=on_items_done,
        progress_every_s=progress_every_s,
        t0=t0,
    )
    if resume is None:
        state = driver.start(inv_ref, list(aux_ok))
    else:
        state = driver.resume(resume, inv_ref)
    while state.active:
        on_grid, due = driver.advance(state)
        if not due:
            continue
        res = _residuals(stepper.w, stepper.x)
        stops = driver.judge(state, res, due)
        if on_grid:
            driver.tick(state, res, stops)
        if stops:
            driver.finish_items(state, res, stops)
            driver.compact(state, stops)
        if hook is not None and on_grid and state.active:
            suspended = driver.consult(hook, state)
            if suspended is not None:
                return suspended
    return [state.results[i] for i in range(len(tasks))]


class _Driver:
    """The steps of `run`'s loop: what it does to a `LoopState` between and at checks."""

    def __init__(
        self,
        stepper: Stepper,
        tasks: list[Task],
        *,
        method: Method,
        dtype: DType,
        rule: StopRule,
        on_progress: BatchProgress | None,
        on_items_done: ItemsDone | None,
        progress_every_s: float,
        t0: float,
    ) -> None:
        self.stepper, self.tasks, self.rule = stepper, tasks, rule
        self.method, self.dtype, self.device = method, dtype, str(stepper.x.device)
        self.on_progress, self.on_items_done = on_progress, on_items_done
        self.progress_every_s, self.t0 = progress_every_s, t0
        self.n = stepper.x.shape[-1]
        self.t_start = time.perf_counter()
        self._lrs_memo: tuple[int, list[int], list[float | None]] | None = None

    def start(self, inv_ref: torch.Tensor | None, aux_ok: list[bool]) -> LoopState:
        """The state at iteration 0: every matrix live, its start judged and recorded."""
        stepper = self.stepper
        state = LoopState(list(range(len(self.tasks))), aux_ok, stepper.w.clone(), inv_ref)
        state.last_tick = self.t_start
        res = _residuals(stepper.w, stepper.x)
        for task, r, warmup in zip(self.tasks, res, stepper.warmup, strict=True):
            task.best_res = task.ref_res = r if math.isfinite(r) else math.inf
            task.ref_it = warmup
        self.record(state, res)
        return state

    def consult(self, hook: CheckHook, state: LoopState) -> Suspended | None:
        """At a check on the grid: ask the hook; save a snapshot, or yield with one."""
        directive = hook.at_check(state.it)
        if directive == "yield":
            return Suspended(self.snapshot(state))
        if directive == "save":
            hook.save(self.snapshot(state))
        return None

    def snapshot(self, state: LoopState) -> Snapshot:
        """The whole solve at this check, to resume from (`resume`)."""
        tensors = {k: v.cpu().numpy().copy() for k, v in self.stepper.state().items()}
        tensors["best"] = state.best.cpu().numpy().copy()
        return Snapshot(
            method=self.method,
            dtype=self.dtype,
            n=self.n,
            size=len(self.tasks),
            iteration=state.it,
            elapsed_s=time.perf_counter() - self.t0,
            active=tuple(state.active),
            aux_ok=tuple(state.aux_ok),
            tensors=tensors,
            tasks=tuple(task.saved() for task in self.tasks),
            done=tuple(sorted(state.results.items())),
        )

    def resume(self, snap: Snapshot, inv_ref: torch.Tensor | None) -> LoopState:
        """The state a snapshot describes: the batch compacted to its live matrices, the
        stepper's tensors, stop-rule state and curves put back, the clocks moved back."""
        snap.check_fits(self.method, self.dtype, self.n, len(self.tasks))
        stepper, device = self.stepper, self.stepper.w.device
        active = list(snap.active)
        if len(active) < len(self.tasks):
            idx = torch.tensor(active, device=device)
            stepper.keep(idx)
            inv_ref = None if inv_ref is None else inv_ref.index_select(0, idx)
        tensors = {k: torch.from_numpy(v).to(device) for k, v in snap.tensors.items()}
        best = tensors.pop("best")
        stepper.restore(tensors)
        for task, saved in zip(self.tasks, snap.tasks, strict=True):
            task.restore(saved)
        self.t0 = self.t_start = time.perf_counter() - snap.elapsed_s
        state = LoopState(
            active,
            list(snap.aux_ok),
            best,
            inv_ref,
            it=snap.iteration,
            last_tick=time.perf_counter(),
            results=dict(snap.done),
        )
        stepper.set_lr([lr if lr is not None else 0.0 for lr in self.lrs(state, state.it)])
        return state

    def lrs(self, state: LoopState, iteration: int) -> list[float | None]:
        """Each live matrix's learning rate at `iteration`, looked up once per schedule object
        (a batch's matrices mostly share one). Asked up to three times a check, mostly for the
        same iteration and live set: the last answer is kept (`state.active` is a new list
        after every compaction, so its identity tells whether the live set changed)."""
        memo = self._lrs_memo
        if memo is not None and memo[0] == iteration and memo[1] is state.active:
            return memo[2]
        by_schedule: dict[int, float | None] = {}
        out: list[float | None] = []
        for i in state.active:
            schedule = self.tasks[i].schedule
            key = id(schedule)
            if key not in by_schedule:
                by_schedule[key] = None if schedule is None else schedule.lr_at(iteration)
            out.append(by_schedule[key])
        self._lrs_memo = (iteration, state.active, out)
        return out

    def advance(self, state: LoopState) -> tuple[bool, list[int]]:
        """Step to the next event: a check on the grid of `check_every` steps, a budget's end,
        or a learning-rate stage change (which needs no check). Returns whether the iteration
        is on the grid, and the positions of the matrices due a check."""
        every, it = self.stepper.check_every, state.it
        active = [self.tasks[i] for i in state.active]
        target = min((it // every + 1) * every, min(task.max_iter for task in active))
        schedules = {id(task.schedule): task.schedule for task in active if task.schedule}
        for schedule in schedules.values():
            change = schedule.next_change(it)
            if change is not None:
                target = min(target, change)
        before = self.lrs(state, it)
        self.stepper.step(it, target - it)
        state.it = it = target
        after = self.lrs(state, it)
        on_grid = it % every == 0
        # A matrix is judged on the grid and at its own budget's end only: exactly when it would
        # be judged if it were solved alone, so that batching never changes a result.
        due = [pos for pos, task in enumerate(active) if on_grid or it >= task.max_iter]
        if after != before:
            self.stepper.set_lr([lr if lr is not None else 0.0 for lr in after])
            if not due:  # a point where the new stage starts, so that plots can mark it
                self.record(state, _residuals(self.stepper.w, self.stepper.x))
        return on_grid, due

    def judge(self, state: LoopState, res: list[float], due: list[int]) -> dict[int, StopReason]:
        """Stop decisions for the matrices due a check (by position); keeps each best iterate."""
        stops: dict[int, StopReason] = {}
        improved: list[int] = []
        for pos in due:
            task, r = self.tasks[state.active[pos]], res[pos]
            if r < task.best_res:  # False for NaN
                improved.append(pos)
            reason = task.judge(r, state.it, self.rule)
            if reason is not None:
                stops[pos] = reason
        if improved:
            idx = torch.tensor(improved, device=state.best.device)
            state.best.index_copy_(0, idx, self.stepper.w.index_select(0, idx))
        return stops

    def record(self, state: LoopState, res: list[float]) -> list[float | None]:
        """Append a history point for every live matrix; returns their aux errors."""
        it, n = state.it, self.n
        aux = _aux(self.stepper.w, state.inv_ref, state.aux_ok)
        lrs = self.lrs(state, it)
        tasks = self.tasks
        for i, r, a, lr in zip(state.active, res, aux, lrs, strict=True):
            tasks[i].add_point(HistoryPoint(it, r * r / n, r, a, lr))
        return aux

    def tick(self, state: LoopState, res: list[float], stops: dict[int, StopReason]) -> None:
        """At a check on the grid: a history point (every check: the curve is thinned in
        log-iteration later), and a progress report when `progress_every_s` has passed (whose
        answer may cancel matrices)."""
        now = time.perf_counter()
        reporting = self.on_progress is not None and now - state.last_tick >= self.progress_every_s
        aux = self.record(state, res)
        if reporting:
            state.last_tick = now
            self.report(state, res, aux, stops)

    def report(
        self,
        state: LoopState,
        res: list[float],
        aux: list[float | None],
        stops: dict[int, StopReason],
    ) -> None:
        """Report progress for the matrices that go on; mark the ones the answer cancels."""
        if self.on_progress is None:
            return
        it, n, elapsed = state.it, self.n, state.last_tick - self.t_start
        rate = it / elapsed if elapsed > 0 else 0.0
        lrs = self.lrs(state, it)
        points = [
            (
                i,
                ProgressPoint(
                    it,
                    self.tasks[i].max_iter,
                    res[p] ** 2 / n,
                    res[p],
                    aux[p],
                    lrs[p],
                    rate,
                    elapsed,
                ),
            )
            for p, i in enumerate(state.active)
            if p not in stops
        ]
        cancel = _cancelled(self.on_progress(points), [i for i, _ in points])
        for p, i in enumerate(state.active):
            if i in cancel and p not in stops:
                stops[p] = "cancelled"

    def finish_items(
        self, state: LoopState, res: list[float], stops: dict[int, StopReason]
    ) -> None:
        """Build the stopped matrices' Solutions and hand them to `on_items_done`.

        Their iterates, aux errors and inverses are taken in one batched step each (per matrix,
        the small tensor calls cost more than the arithmetic when many stop at one check).
        """
        order = sorted(stops)
        # Converged or out of budget: the last iterate; stalled, diverged, cancelled: the best.
        final = [stops[pos] in ("converged", "max_iter") for pos in order]
        device = self.stepper.w.device
        idx = torch.tensor(order, device=device)
        w = torch.where(
            torch.tensor(final, device=device).view(-1, 1, 1),
            self.stepper.w.index_select(0, idx),
            state.best.index_select(0, idx),
        )
        ref = None if state.inv_ref is None else state.inv_ref.index_select(0, idx)
        aux = _aux(w, ref, [state.aux_ok[pos] for pos in order])
        inverses = w.detach().cpu().numpy()
        stopped = [
            (
                state.active[pos],
                self.solution(state, pos, res[pos], stops[pos], inverses[k], aux[k], final[k]),
            )
            for k, pos in enumerate(order)
        ]
        state.results.update(stopped)
        if self.on_items_done is not None:
            self.on_items_done(stopped)

    def solution(
        self,
        state: LoopState,
        pos: int,
        r: float,
        reason: StopReason,
        inverse: np.ndarray,
        aux: float | None,
        final: bool,
    ) -> Solution:
        """The Solution of the matrix at `pos`, whose returned iterate is `inverse` (the best
        one unless `final`)."""
        task, n = self.tasks[state.active[pos]], self.n
        if not final:
            r = task.best_res
        if not math.isfinite(r):
            r = math.inf
        if task.history and task.history[-1].iteration == state.it:
            task.history.pop()  # this check's point: the end point below replaces it
        task.add_point(HistoryPoint(state.it, r * r / n, r, aux, task.lr_at(state.it - 1)))
        return Solution(
            inverse=inverse,
            iterations=state.it,
            loss=r * r / n,
            residual=r,
            aux_error=aux,
            converged=reason == "converged",
            reason=reason,
            cond=task.cond,
            elapsed_s=time.perf_counter() - self.t0,
            history=tuple(task.history),
            method=self.method,
            device=self.device,
            dtype=self.dtype,
            max_iter=task.max_iter,
            seed=task.seed,
            tol=task.tol,
        )

    def compact(self, state: LoopState, stops: dict[int, StopReason]) -> None:
        """Drop the stopped matrices from the batch, so that they cost nothing more."""
        keep = [p for p in range(len(state.active)) if p not in stops]
        state.active = [state.active[p] for p in keep]
        state.aux_ok = [state.aux_ok[p] for p in keep]
        if not keep:
            return
        idx = torch.tensor(keep, device=self.stepper.w.device)
        self.stepper.keep(idx)
        state.best = state.best.index_select(0, idx)
        if state.inv_ref is not None:
            state.inv_ref = state.inv_ref.index_select(0, idx)
