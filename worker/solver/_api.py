"""The public entry points: `invert` for one matrix (or a batch with shared options) and
`solve_batch` for a batch whose matrices each carry their own options and callbacks."""

from __future__ import annotations

import dataclasses
import math
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ._adam import AdamStepper, original_start
from ._cg import CgStepper
from ._engine import BatchProgress, ItemsDone, Stepper, StopRule, Task, run
from ._exact import exact_inverse, reference_inverse
from ._gd import GdStepper, default_step
from ._newton_schulz import NewtonSchulzStepper, scaled_start
from ._problem import (
    DEFAULT_MAX_N,
    DType,
    Method,
    SolverError,
    as_matrix,
    check_max_iter,
    check_method,
    check_seeds,
    check_stall_window,
    check_tol,
    resolve_device,
    torch_dtype,
)
from ._schedule import DEFAULT_LR_SCHEDULE, LrSchedule, parse_schedule
from ._snapshot import CheckHook, Snapshot, Suspended
from ._solution import BatchSolution, HistoryPoint, ItemOptions, ProgressPoint, Solution
from ._spectrum import Spectrum, spectrum
from ._threads import threads_for
from ._verdict import judge

__all__ = [
    "DEFAULT_MAX_ITER",
    "DEFAULT_PROGRESS_EVERY_S",
    "DEFAULT_STALL",
    "DEFAULT_TOL",
    "invert",
    "invert_resumable",
    "solve_batch",
]

#: Iteration budget per method when max_iter is None. adam: the original's 100,000 steps.
DEFAULT_MAX_ITER: dict[Method, int] = {
    "adam": 100_000,
    "gd": 100_000,
    "cg": 10_000,
    "newton-schulz": 100,
    "exact": 1,
}
#: Residual tolerance per method and dtype when tol is None; None means no tolerance stop
#: (adam: the original ran its whole budget). The float32 values sit above float32's floor.
DEFAULT_TOL: dict[Method, dict[DType, float | None]] = {
    "adam": {"float32": None, "float64": None},
    "gd": {"float32": 1e-4, "float64": 1e-10},
    "cg": {"float32": 1e-4, "float64": 1e-10},
    "newton-schulz": {"float32": 1e-4, "float64": 1e-10},
    "exact": {"float32": None, "float64": None},
}
#: Stall rule per method: stop as "stalled" when the best residual has not fallen by the
#: relative margin within the window of iterations (a solve's `stall_window` overrides the
#: window; 0 turns the stall stop off). adam's window is wide so that the original
#: configuration runs its full budget unless truly stuck, but it is on by default: a stuck
#: original run (its residual flat for 20,000 steps) stops early; stall_window=0 reproduces the
#: original step for step. newton-schulz's window starts only after the ~2 log2(cond) steps its
#: slowest direction needs to leave its plateau.
DEFAULT_STALL: dict[Method, StopRule] = {
    "adam": StopRule(window=20_000, rel=1e-3),
    "gd": StopRule(window=20_000, rel=1e-3),
    "cg": StopRule(window=200, rel=1e-3),
    "newton-schulz": StopRule(window=3, rel=0.0),
    "exact": StopRule(window=1, rel=0.0),
}
DEFAULT_PROGRESS_EVERY_S = 0.5

Progress = Callable[[ProgressPoint], bool | None]


def invert(
    matrix: Any,
    method: str = "adam",
    *,
    max_iter: int | None = None,
    tol: float | None = None,
    lr_schedule: Sequence[tuple[int, float]] | None = None,
    dtype: str = "float32",
    device: str = "auto",
    seed: int | None = None,
    stall_window: int | None = None,
    aux: bool = True,
    on_progress: Progress | None = None,
    progress_every_s: float = DEFAULT_PROGRESS_EVERY_S,
    max_n: int | None = None,
) -> Solution | BatchSolution:
    """Invert a square matrix (or a batch of them) and say how well and why it stopped.

    Returns a `Solution` for an (n, n) input, a `BatchSolution` (one `Solution` per matrix) for
    a (b, n, n) one.

    Args:
        matrix: NumPy array or torch tensor of shape (n, n), or (b, n, n) for a batch solved
            together (each matrix stops on its own criterion; the result equals solving each
            alone with the same options and seed).
        method: "adam" (the original: Adam on mean((WX - I)^2)), "gd", "cg", "newton-schulz"
            or "exact" (LU).
        max_iter: iteration budget; None takes `DEFAULT_MAX_ITER[method]` (adam: 100,000).
        tol: stop as converged once ||WX - I||_F / sqrt(n) <= tol, a number in (0, 1); None takes
            `DEFAULT_TOL[method][dtype]` (adam: no tolerance stop, as the original).
        lr_schedule: (start_iteration, lr) stages for adam and gd, the first at 0; None takes
            `DEFAULT_LR_SCHEDULE` for adam and 1/L (L = 2 sigma_max^2 / n^2) for gd. Ignored by
            the other methods.
        dtype: "float32" (default) or "float64": the working and output precision.
        device: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N".
        seed: seed of the random start (adam, gd); None draws one (reported in the result).
            A batch uses the same seed for every matrix.
        stall_window: stop as "stalled" when the best residual has not improved by 0.1% within
            this many steps; 0 turns the stall stop off; None takes `DEFAULT_STALL[method]`.
        aux: also report the aux error mean((W - inv(X))^2) against the exact inverse.
        on_progress: called about every `progress_every_s` seconds (at stopping checks) with a
            `ProgressPoint`; for a batch its loss, residual and aux error are the worst over the
            live matrices. Returning False stops with reason "cancelled" and the best W so far.
        progress_every_s: seconds between progress calls (0: at every check).
        max_n: largest n accepted; None takes `DEFAULT_MAX_N`.

    Stopping (tol, stall per `DEFAULT_STALL`, divergence = a non-finite residual) is judged at
    checks: every 64 steps for adam and gd, every 4 for cg, every step for newton-schulz, and at
    max_iter. Converged and max_iter return the last W; stalled, diverged and cancelled return
    the best W seen at a check. The outcome is then judged (`_verdict.judge`): `converged` when
    the residual is within tol, a stop short of it re-named "singular" or "precision_floor"
    where that is its cause, and warnings that say what to do. A singular matrix makes "exact"
    raise; the iterative methods return with cond = inf and reason "singular" (cg and
    newton-schulz: close to the pseudo-inverse).

    Raises:
        SolverError: bad input (shape, values, options), or a singular matrix for "exact".
    """
    out = invert_resumable(
        matrix,
        method,
        max_iter=max_iter,
        tol=tol,
        lr_schedule=lr_schedule,
        dtype=dtype,
        device=device,
        seed=seed,
        stall_window=stall_window,
        aux=aux,
        on_progress=on_progress,
        progress_every_s=progress_every_s,
        max_n=max_n,
    )
    assert not isinstance(out, Suspended)  # only a hook asks a solve to yield
    return out


def invert_resumable(
    matrix: Any,
    method: str = "adam",
    *,
    max_iter: int | None = None,
    tol: float | None = None,
    lr_schedule: Sequence[tuple[int, float]] | None = None,
    dtype: str = "float32",
    device: str = "auto",
    seed: int | None = None,
    stall_window: int | None = None,
    aux: bool = True,
    on_progress: Progress | None = None,
    progress_every_s: float = DEFAULT_PROGRESS_EVERY_S,
    max_n: int | None = None,
    hook: CheckHook | None = None,
    resume: Snapshot | None = None,
) -> Solution | BatchSolution | Suspended:
    """`invert` that can be checkpointed, suspended and resumed.

    Args:
        matrix, method, ...: as for `invert`; a resumed solve must be given the same ones.
        hook: asked at every check on the grid to go on, save a `Snapshot` (handed to
            `hook.save`) or yield: then `Suspended(snapshot)` is returned.
        resume: a snapshot of this same solve, to continue from where it was taken; the
            iterates then equal those of a solve that was never interrupted.

    Raises:
        SolverError: as `invert`, and for a snapshot of another solve.
    """
    shape = _shape_of(matrix)
    batched = len(shape) == 3
    opts = ItemOptions(
        max_iter=max_iter, tol=tol, lr_schedule=lr_schedule, seed=seed, stall_window=stall_window
    )
    cb: BatchProgress | None = None
    if on_progress is not None:
        user = on_progress

        def cb(points: list[tuple[int, ProgressPoint]]) -> bool | None:
            if not points:
                return None
            return user(_worst(points))

    t0 = time.perf_counter()
    sols = _solve(
        matrix,
        opts,
        method=method,
        dtype=dtype,
        device=device,
        aux=aux,
        on_progress=cb,
        on_items_done=None,
        progress_every_s=progress_every_s,
        max_n=max_n,
        t0=t0,
        hook=hook,
        resume=resume,
    )
    if isinstance(sols, Suspended):
        return sols
    if not batched:
        return sols[0]
    return BatchSolution.gather(sols, time.perf_counter() - t0)


def solve_batch(
    matrices: Any,
    items: Sequence[ItemOptions] | None = None,
    *,
    method: str = "adam",
    dtype: str = "float32",
    device: str = "auto",
    aux: bool = True,
    on_progress: BatchProgress | None = None,
    on_items_done: ItemsDone | None = None,
    progress_every_s: float = DEFAULT_PROGRESS_EVERY_S,
    max_n: int | None = None,
) -> list[Solution]:
    """Solve a (b, n, n) batch in one go, each matrix with its own options; one Solution each.

    Every matrix i stops on its own criterion (its tol, max_iter, stall or divergence) and is
    then dropped from the batch; its result equals solving it alone with the same options and
    seed (same start, same iterates up to float rounding).

    Args:
        matrices: (b, n, n) NumPy array or torch tensor (an (n, n) matrix is a batch of one).
        items: one `ItemOptions` per matrix (max_iter, tol, lr_schedule, seed, stall_window;
            None fields take the method's defaults); None gives every matrix the defaults and its
            own random seed.
        method, dtype, device, aux, progress_every_s, max_n: as for `invert`.
        on_progress: called about every `progress_every_s` seconds with [(index, ProgressPoint)]
            for the live matrices; return False to cancel all, or a collection of indices to
            cancel those (reason "cancelled", best W so far); None or True goes on.
        on_items_done: called as `on_items_done([(index, solution), ...])` with the matrices
            that stopped at one check, as soon as they stop, while the others go on.
    """
    t0 = time.perf_counter()
    out = _solve(
        matrices,
        items,
        method=method,
        dtype=dtype,
        device=device,
        aux=aux,
        on_progress=on_progress,
        on_items_done=on_items_done,
        progress_every_s=progress_every_s,
        max_n=max_n,
        t0=t0,
    )
    assert not isinstance(out, Suspended)  # no hook: never suspended
    return out


def _shape_of(matrix: Any) -> tuple[int, ...]:
    shape = getattr(matrix, "shape", None)
    if shape is None:
        try:
            shape = np.shape(matrix)
        except ValueError:
            shape = ()
    return tuple(int(s) for s in shape)


def _solve(
    matrix: Any,
    items: Sequence[ItemOptions] | ItemOptions | None,
    *,
    method: str,
    dtype: str,
    device: str,
    aux: bool,
    on_progress: BatchProgress | None,
    on_items_done: ItemsDone | None,
    progress_every_s: float,
    max_n: int | None,
    t0: float,
    hook: CheckHook | None = None,
    resume: Snapshot | None = None,
) -> list[Solution] | Suspended:
    meth = check_method(method)
    tdtype = torch_dtype(dtype)
    dname: DType = "float32" if tdtype == torch.float32 else "float64"
    dev = resolve_device(device)
    _check_progress_every(progress_every_s)
    limit = DEFAULT_MAX_N if max_n is None else max_n
    x = as_matrix(matrix, dtype=tdtype, device=dev, max_n=limit)
    b, n = x.shape[0], x.shape[-1]
    tasks_opts = [_resolve(meth, dname, opt) for opt in _per_matrix(items, meth, b)]
    # A resumed solve's matrices that had stopped before the snapshot are judged at once.
    done = _Judged(
        [o.stall_window for o in tasks_opts], on_items_done, resume.done if resume else ()
    )
    with torch.inference_mode(), threads_for(b * n * n):
        spec = spectrum(x)
        if meth == "exact":
            sols = _exact(x, spec, tasks_opts, dname, aux, t0)
            done(list(enumerate(sols)))
            return done.solutions()
        tasks = _tasks(tasks_opts, spec)
        inv_ref, ok = reference_inverse(x) if aux else (None, [False] * b)
        out = run(
            _stepper(meth, x, tasks, spec),
            tasks,
            method=meth,
            dtype=dname,
            rule=DEFAULT_STALL[meth],
            inv_ref=inv_ref,
            aux_ok=[good and not sing for good, sing in zip(ok, spec.singular, strict=True)],
            on_progress=on_progress,
            on_items_done=done,
            progress_every_s=float(progress_every_s),
            t0=t0,
            hook=hook,
            resume=resume,
        )
        return out if isinstance(out, Suspended) else done.solutions()


def _tasks(opts: Sequence[_Resolved], spec: Spectrum) -> list[Task]:
    """The engine's Task per matrix: its resolved options and its conditioning."""
    return [
        Task(
            max_iter=opt.max_iter,
            tol=opt.tol,
            schedule=opt.schedule,
            seed=opt.seed,
            cond=spec.cond[i],
            stall_window=opt.stall_window,
        )
        for i, opt in enumerate(opts)
    ]


class _Judged:
    """Judges every Solution (converged, cause, warnings: `_verdict.judge`) as it stops, before
    `on_items_done` or the caller sees it."""

    def __init__(
        self,
        stall_windows: list[int],
        on_items_done: ItemsDone | None,
        stopped: Sequence[tuple[int, Solution]] = (),
    ) -> None:
        self._windows, self._on_items_done = stall_windows, on_items_done
        self._judged: dict[int, Solution] = {}
        if stopped:
            self(list(stopped))

    def __call__(self, stopped: list[tuple[int, Solution]]) -> None:
        now = [(i, judge(sol, stall_window=self._windows[i])) for i, sol in stopped]
        self._judged.update(now)
        if self._on_items_done is not None:
            self._on_items_done(now)

    def solutions(self) -> list[Solution]:
        return [self._judged[i] for i in range(len(self._windows))]


def _check_progress_every(progress_every_s: object) -> None:
    if isinstance(progress_every_s, bool) or not isinstance(progress_every_s, int | float):
        raise SolverError(f"progress_every_s must be a number >= 0, not {progress_every_s!r}")
    if not (progress_every_s >= 0 and math.isfinite(progress_every_s)):
        raise SolverError(f"progress_every_s must be a finite number >= 0, not {progress_every_s}")


def _per_matrix(
    items: Sequence[ItemOptions] | ItemOptions | None, meth: Method, b: int
) -> Sequence[ItemOptions]:
    """One ItemOptions per matrix of the batch."""
    if isinstance(items, ItemOptions):
        # invert: one set of options, and one seed, for every matrix of the batch.
        shared = items
        if shared.seed is None and meth in ("adam", "gd"):
            shared = _with_seed(shared, secrets.randbits(62))
        return [shared] * b
    if items is None:
        return [ItemOptions()] * b  # each draws its own seed
    if len(items) != b:
        raise SolverError(f"got {len(items)} item options for a batch of {b} matrices")
    return items


def _with_seed(opt: ItemOptions, seed: int) -> ItemOptions:
    return dataclasses.replace(opt, seed=seed)


@dataclass(frozen=True, slots=True)
class _Resolved:
    """One matrix's options with the method's defaults filled in."""

    max_iter: int
    tol: float | None
    schedule: LrSchedule | None
    seed: int | None
    stall_window: int


_DEFAULT_SCHEDULE = parse_schedule(DEFAULT_LR_SCHEDULE)


def _resolve(meth: Method, dtype: DType, opt: ItemOptions) -> _Resolved:
    if not isinstance(opt, ItemOptions):
        raise SolverError(f"batch item options must be ItemOptions, not {type(opt).__name__}")
    max_iter = DEFAULT_MAX_ITER[meth] if opt.max_iter is None else check_max_iter(opt.max_iter)
    tol = DEFAULT_TOL[meth][dtype] if opt.tol is None else check_tol(opt.tol)
    window = check_stall_window(opt.stall_window)
    check_seeds([opt.seed])
    schedule: LrSchedule | None = None
    seed: int | None = None
    if meth in ("adam", "gd"):
        seed = int(opt.seed) if opt.seed is not None else secrets.randbits(62)
        if opt.lr_schedule is not None:
            schedule = parse_schedule(opt.lr_schedule)
        elif meth == "adam":
            schedule = _DEFAULT_SCHEDULE  # one object: the engine looks rates up per schedule
    elif opt.lr_schedule is not None:
        parse_schedule(opt.lr_schedule)  # still reject a malformed one
    stall = DEFAULT_STALL[meth].window if window is None else window
    return _Resolved(max_iter, tol, schedule, seed, stall)


def _stepper(meth: Method, x: torch.Tensor, tasks: list[Task], spec: Spectrum) -> Stepper:
    n = x.shape[-1]
    if meth in ("adam", "gd"):
        w0 = original_start(x, [t.seed if t.seed is not None else 0 for t in tasks])
        if meth == "adam":
            return AdamStepper(x, w0, [t.schedule.lr_at(0) if t.schedule else 0.0 for t in tasks])
        for i, t in enumerate(tasks):
            if t.schedule is None:
                t.schedule = LrSchedule((0,), (default_step(n, spec.smax_safe[i]),))
        return GdStepper(x, w0, [t.schedule.lr_at(0) if t.schedule else 0.0 for t in tasks])
    if meth == "cg":
        return CgStepper(x)
    return NewtonSchulzStepper(x, scaled_start(x, spec.smax_safe, spec.smin), spec.cond)


def _exact(
    x: torch.Tensor,
    spec: Spectrum,
    opts: list[_Resolved],
    dtype: DType,
    aux: bool,
    t0: float,
) -> list[Solution]:
    n = x.shape[-1]
    eps = torch.finfo(x.dtype).eps
    singular = [s or c * n * eps >= 1.0 for s, c in zip(spec.singular, spec.cond, strict=True)]
    inv = exact_inverse(x, singular, list(spec.cond))
    r = torch.bmm(inv, x) - torch.eye(n, dtype=x.dtype, device=x.device)
    res = (torch.linalg.matrix_norm(r) / math.sqrt(n)).cpu().tolist()
    auxes: list[float | None] = [None] * x.shape[0]
    if aux:
        ref, _ = reference_inverse(x)
        auxes = (inv.to(torch.float64) - ref).square().mean(dim=(1, 2)).cpu().tolist()
    inverses = inv.cpu().numpy()  # one transfer; each Solution copies its own matrix out
    out = []
    for i in range(x.shape[0]):
        point = HistoryPoint(1, res[i] ** 2 / n, res[i], auxes[i], None)
        sol = Solution(
            inverse=inverses[i].copy(),
            iterations=1,
            loss=res[i] ** 2 / n,
            residual=res[i],
            aux_error=auxes[i],
            converged=True,
            reason="converged",
            cond=spec.cond[i],
            elapsed_s=time.perf_counter() - t0,
            history=(point,),
            method="exact",
            device=str(x.device),
            dtype=dtype,
            max_iter=opts[i].max_iter,
            seed=None,
        )
        out.append(sol)
    return out


def _worst(points: list[tuple[int, ProgressPoint]]) -> ProgressPoint:
    """One point for a batch: the shared iteration, the worst loss, residual and aux error."""
    ps = [p for _, p in points]
    auxes = [p.aux_error for p in ps if p.aux_error is not None]
    lrs = [p.lr for p in ps if p.lr is not None]
    first = ps[0]
    return ProgressPoint(
        iteration=first.iteration,
        max_iter=max(p.max_iter for p in ps),
        loss=max(p.loss for p in ps),
        residual=max(p.residual for p in ps),
        aux_error=max(auxes) if auxes else None,
        lr=max(lrs) if lrs else None,
        rate=first.rate,
        elapsed_s=first.elapsed_s,
    )
