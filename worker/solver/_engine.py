"""The iteration driver shared by the iterative methods: checks, stopping, progress, batching.

A method is a *stepper* (see `Stepper`) that advances a (b, n, n) batch of iterates in place.
The driver runs it in chunks of `check_every` steps (cut short at stage changes of a learning
rate schedule and at the smallest remaining budget), and after each chunk it measures every
live matrix's residual, decides who stops and why, ticks progress, and compacts the batch so
that stopped matrices cost nothing more. All live matrices share one iteration count.

Because checks happen every `check_every` steps, tolerance, stall and divergence are detected
at that granularity (64 steps for adam and gd, 4 for cg, every step for newton-schulz).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

from ._problem import DType, Method, StopReason
from ._schedule import LrSchedule
from ._solution import HistoryPoint, ProgressPoint, Solution

__all__ = ["BatchProgress", "ItemsDone", "Stepper", "StopRule", "Task", "run"]

#: on_progress of a batch: gets (index, point) for every live matrix; may return False (cancel
#: all) or a collection of indices to cancel; None or True goes on.
BatchProgress = Callable[[list[tuple[int, ProgressPoint]]], "bool | Collection[int] | None"]
#: on_items_done of a batch: gets (index, solution) for every matrix that stopped at one check.
ItemsDone = Callable[[list[tuple[int, Solution]]], None]


class Stepper(Protocol):
    x: torch.Tensor
    w: torch.Tensor
    check_every: int

    def step(self, start: int, k: int) -> None: ...
    def set_lr(self, lrs: Sequence[float]) -> None: ...
    def keep(self, idx: torch.Tensor) -> None: ...


@dataclass(frozen=True, slots=True)
class StopRule:
    """Stalled: the best residual has not fallen by a factor (1 - rel) within `window` steps."""

    window: int
    rel: float


@dataclass(slots=True)
class Task:
    """One matrix of the batch, with its resolved options and diagnostics."""

    max_iter: int
    tol: float | None
    schedule: LrSchedule | None
    seed: int | None
    cond: float
    warning: str | None
    history: list[HistoryPoint] = field(default_factory=list)
    best_res: float = math.inf
    ref_res: float = math.inf
    ref_it: int = 0


def _residuals(w: torch.Tensor, x: torch.Tensor) -> list[float]:
    n = x.shape[-1]
    eye = torch.eye(n, dtype=w.dtype, device=w.device)
    r = torch.bmm(w, x).sub_(eye)
    return [float(v) for v in (torch.linalg.matrix_norm(r) / math.sqrt(n)).cpu()]


def _aux(w: torch.Tensor, ref: torch.Tensor | None, ok: Sequence[bool]) -> list[float | None]:
    if ref is None:
        return [None] * w.shape[0]
    err = (w.to(torch.float64) - ref).square().mean(dim=(1, 2)).cpu()
    return [float(e) if good else None for e, good in zip(err, ok, strict=True)]


def _lr(schedule: LrSchedule | None, iteration: int) -> float | None:
    return schedule.lr_at(iteration) if schedule is not None else None


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
) -> list[Solution]:
    """Drive `stepper` until every task stops; return one `Solution` per task, in order."""
    n = stepper.x.shape[-1]
    device = str(stepper.x.device)
    active = list(range(len(tasks)))
    ok = list(aux_ok)
    results: dict[int, Solution] = {}
    it = 0
    t_start = time.perf_counter()
    last_tick = t_start
    next_mark = 1

    def lrs_at(i: int) -> list[float | None]:
        return [_lr(tasks[j].schedule, i) for j in active]

    def record(at: int, res: list[float], positions: Sequence[int]) -> list[float | None]:
        aux = _aux(stepper.w, inv_ref, ok)
        lrs = lrs_at(at)
        for pos in positions:
            r = res[pos]
            tasks[active[pos]].history.append(HistoryPoint(at, r * r / n, r, aux[pos], lrs[pos]))
        return aux

    res = _residuals(stepper.w, stepper.x)
    best = stepper.w.clone()
    for pos, i in enumerate(active):
        r = res[pos] if math.isfinite(res[pos]) else math.inf
        tasks[i].best_res = tasks[i].ref_res = r
    record(0, res, range(len(active)))

    every = stepper.check_every
    while active:
        # Step to the next event: a check on the grid of `every` steps, a budget's end, or a
        # learning-rate stage change (which needs no check).
        target = min((it // every + 1) * every, min(tasks[i].max_iter for i in active))
        for i in active:
            sched = tasks[i].schedule
            change = sched.next_change(it) if sched else None
            if change is not None:
                target = min(target, change)
        before = lrs_at(it)
        stepper.step(it, target - it)
        it = target
        after = lrs_at(it)
        if after != before:
            stepper.set_lr([lr if lr is not None else 0.0 for lr in after])
        on_grid = it % every == 0
        # A matrix is judged on the grid and at its own budget's end only: exactly when it would
        # be judged if it were solved alone, so that batching never changes a result.
        due = [pos for pos, i in enumerate(active) if on_grid or it >= tasks[i].max_iter]
        if not due:
            continue

        res = _residuals(stepper.w, stepper.x)
        stops: dict[int, StopReason] = {}
        improved: list[int] = []
        for pos in due:
            task, r = tasks[active[pos]], res[pos]
            if not math.isfinite(r):
                stops[pos] = "diverged"
                continue
            if r < task.best_res:
                task.best_res = r
                improved.append(pos)
            if task.tol is not None and r <= task.tol:
                stops[pos] = "converged"
            elif it >= task.max_iter:
                stops[pos] = "max_iter"
            elif task.best_res < task.ref_res * (1.0 - rule.rel):
                # ref_it may start in the future (a warm-up during which no stall is judged).
                task.ref_res, task.ref_it = task.best_res, max(it, task.ref_it)
            elif it - task.ref_it >= rule.window:
                stops[pos] = "stalled"
        if improved:
            idx = torch.tensor(improved, device=best.device)
            best.index_copy_(0, idx, stepper.w.index_select(0, idx))

        now = time.perf_counter()
        ticking = on_grid and on_progress is not None and now - last_tick >= progress_every_s
        if on_grid and (it >= next_mark or ticking):
            next_mark = max(next_mark * 2, it + 1)
            aux = record(it, res, range(len(active)))
        if ticking and on_progress is not None:
            last_tick = now
            elapsed = now - t_start
            rate = it / elapsed if elapsed > 0 else 0.0
            lrs = lrs_at(it)
            points = [
                (
                    i,
                    ProgressPoint(
                        it,
                        tasks[i].max_iter,
                        res[p] ** 2 / n,
                        res[p],
                        aux[p],
                        lrs[p],
                        rate,
                        elapsed,
                    ),
                )
                for p, i in enumerate(active)
                if p not in stops
            ]
            answer = on_progress(points)
            if answer is False:
                cancel = {i for i, _ in points}
            elif answer is None or answer is True:
                cancel = set()
            else:
                cancel = set(answer)
            for p, i in enumerate(active):
                if i in cancel and p not in stops:
                    stops[p] = "cancelled"

        if not stops:
            continue
        stopped: list[tuple[int, Solution]] = []
        for pos in sorted(stops):
            i, reason = active[pos], stops[pos]
            final = reason in ("converged", "max_iter")
            w = (stepper.w if final else best)[pos : pos + 1]
            r = res[pos] if final else tasks[i].best_res
            aux_i = _aux(w, None if inv_ref is None else inv_ref[pos : pos + 1], ok[pos : pos + 1])[
                0
            ]
            task = tasks[i]
            lr = _lr(task.schedule, it - 1)
            if not math.isfinite(r):
                r = math.inf
            task.history.append(HistoryPoint(it, r * r / n, r, aux_i, lr))
            sol = Solution(
                inverse=w[0].detach().cpu().numpy().copy(),
                iterations=it,
                loss=r * r / n,
                residual=r,
                aux_error=aux_i,
                converged=reason == "converged",
                reason=reason,
                cond=task.cond,
                elapsed_s=time.perf_counter() - t0,
                history=tuple(task.history),
                warning=task.warning,
                method=method,
                device=device,
                dtype=dtype,
                max_iter=task.max_iter,
                seed=task.seed,
            )
            results[i] = sol
            stopped.append((i, sol))
        if on_items_done is not None:
            on_items_done(stopped)
        keep = [p for p in range(len(active)) if p not in stops]
        active = [active[p] for p in keep]
        ok = [ok[p] for p in keep]
        if active:
            idx = torch.tensor(keep, device=stepper.w.device)
            stepper.keep(idx)
            best = best.index_select(0, idx)
            if inv_ref is not None:
                inv_ref = inv_ref.index_select(0, idx)
    return [results[i] for i in range(len(tasks))]
