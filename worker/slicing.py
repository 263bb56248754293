"""When a running job checkpoints and when it yields its worker: time slicing (no I/O here).

A job that has run NINV_SLICE_S while other jobs wait yields at its next check: the solver
returns a snapshot, the runner stores it as the job's checkpoint and puts the job back in the
queue (`JobStore.preempt`), so the waiting jobs run and this one resumes later where it
stopped. A job that runs alone is never interrupted. Every NINV_CHECKPOINT_S a running job
also saves a checkpoint and goes on, so that a job whose worker dies resumes from there.

The solver asks at every check (`at_check`, every few dozen steps, so this must be cheap);
whether others wait is asked of the store at progress ticks only, once the slice is over.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from worker.solver import Directive, Snapshot

__all__ = ["SliceClock", "SolveHook"]


@dataclass
class SliceClock:
    """One run of a job: when it started, when it last saved, whether others wait.

    Times are `time.monotonic()` seconds, passed in, so the rules test without a clock.
    `slice_s` or `checkpoint_s` of 0 turns slicing or periodic checkpoints off.
    """

    started: float
    slice_s: float
    checkpoint_s: float
    last_save: float = field(init=False)
    others_wait: bool = False

    def __post_init__(self) -> None:
        self.last_save = self.started

    def slice_over(self, now: float) -> bool:
        """Whether the slice has run out (then the store is asked whether others wait)."""
        return self.slice_s > 0 and now - self.started >= self.slice_s

    def directive(self, now: float) -> Directive:
        """Yield when the slice is over and others wait; else save when a checkpoint is due."""
        if self.others_wait and self.slice_over(now):
            return "yield"
        if self.checkpoint_s > 0 and now - self.last_save >= self.checkpoint_s:
            return "save"
        return "go"

    def never_yield(self) -> None:
        """The job cannot be preempted (its checkpoint was not stored): run to the end."""
        self.slice_s = 0.0
        self.others_wait = False


class SolveHook:
    """The solver's `CheckHook` for one job: a `SliceClock`'s answers, and `save` handed to
    the runner, which stores the checkpoint."""

    def __init__(
        self, clock: SliceClock, now: Callable[[], float], save: Callable[[Snapshot], bool]
    ) -> None:
        self.clock = clock
        self._now = now
        self._save = save

    def at_check(self, iteration: int) -> Directive:
        return self.clock.directive(self._now())

    def save(self, snapshot: Snapshot) -> None:
        self._save(snapshot)  # the runner logs (and stops slicing) when it cannot store it
        self.clock.last_save = self._now()
