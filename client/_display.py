"""What the CLI shows people: job descriptions, tables and the live progress bar."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import IO, Self

from tqdm import tqdm

from ninv.schemas import FINISHED, HistoryPoint, Job, JobStatus, Progress

__all__ = ["ProgressBar", "describe", "format_history", "format_job", "format_jobs", "num"]


def num(value: float | None, digits: int = 3) -> str:
    """A number in a short general format; '-' for none."""
    if value is None:
        return "-"
    if math.isnan(value):
        return "nan"
    return f"{value:.{digits}g}"


def _eta(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    return str(tqdm.format_interval(seconds))


def progress_line(progress: Progress) -> str:
    """`loss 1.9e-03  residual 0.21  aux 212  1.2e+04 it/s  ETA 00:05`."""
    parts = [
        f"loss {num(progress.loss)}",
        f"residual {num(progress.residual)}",
        f"aux {num(progress.aux_error)}",
    ]
    if progress.rate is not None:
        parts.append(f"{num(progress.rate)} it/s")
    parts.append(f"ETA {_eta(progress.eta_s)}")
    return "  ".join(parts)


def _cond(cond: float | None, reason: str) -> str:
    """cond travels as null when infinite: a singular matrix's is inf."""
    return "inf" if cond is None and reason == "singular" else num(cond)


def describe(job: Job) -> str:
    """One line on how a job ended (or where it is), then one line per warning."""
    summary = job.summary
    if job.status == JobStatus.failed:
        return f"job {job.id} failed: {job.error or 'no reason given'}"
    if summary is None:
        if job.status == JobStatus.cancelled:
            return f"job {job.id} was cancelled"
        return f"job {job.id} is {job.status.value}"
    verb = "was cancelled" if job.status == JobStatus.cancelled else job.status.value
    if job.status == JobStatus.succeeded and not summary.converged:
        verb = "finished without reaching its tolerance"
    text = (
        f"job {job.id} {verb} after {summary.iterations} iterations ({summary.reason}): "
        f"loss {num(summary.loss)}, residual {num(summary.residual)}, "
        f"aux error {num(summary.aux_error)}, cond {_cond(summary.cond, summary.reason)}, "
        f"{summary.elapsed_s:.3g} s on {summary.device} ({summary.dtype})"
    )
    for warning in summary.warnings:
        text += f"\n  warning: {warning}"
    return text


def _runs(job: Job) -> str:
    """How the job got where it is: its runs, time slices given up, where it resumed."""
    text = f"{job.attempts} run{'s' if job.attempts != 1 else ''}"
    if job.preemptions:
        text += f", {job.preemptions} time slice{'s' if job.preemptions != 1 else ''} given up"
    if job.resumed_from is not None:
        text += f", resumed from iteration {job.resumed_from}"
    return text


def format_job(job: Job) -> str:
    """The `status` command's text: one `name value` line per known field."""
    shape = f"{job.batch} x {job.n} x {job.n}" if job.batch else f"{job.n} x {job.n}"
    options = job.options
    rows: list[tuple[str, str]] = [
        ("job", job.id),
        ("status", job.status.value + (" (cancel requested)" if job.cancel_requested else "")),
        ("matrix", f"{shape} {job.input_dtype}"),
        ("method", f"{options.method} ({options.dtype} on {options.device})"),
        ("created", job.created_at.isoformat(timespec="seconds")),
    ]
    if job.started_at:
        rows.append(("started", job.started_at.isoformat(timespec="seconds")))
    if job.finished_at:
        rows.append(("finished", job.finished_at.isoformat(timespec="seconds")))
    if job.worker:
        rows.append(("worker", f"{job.worker} (attempt {job.attempts})"))
    if job.preemptions or job.resumed_from is not None or job.attempts > 1:
        rows.append(("runs", _runs(job)))
    if job.progress and job.status not in FINISHED:  # a finished job's summary says where it ended
        p = job.progress
        rows.append(("progress", f"{p.iteration}/{p.max_iter}  {progress_line(p)}"))
    if job.summary or job.error:
        rows.append(("result", describe(job)))
    if job.notice:
        rows.append(("notice", job.notice))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    body = [list(header), *[list(row) for row in rows]]
    widths = [max(len(row[i]) for row in body) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in body
    )


def format_jobs(jobs: Iterable[Job]) -> str:
    """The `list` command's table."""

    def progress(job: Job) -> str:
        if job.summary:
            return f"{job.summary.iterations} it, loss {num(job.summary.loss)}"
        if job.progress:
            return f"{job.progress.iteration}/{job.progress.max_iter}"
        return "-"

    return _table(
        ["ID", "STATUS", "N", "METHOD", "PROGRESS", "CREATED"],
        (
            [
                job.id,
                job.status.value,
                str(job.n) if job.batch is None else f"{job.batch}x{job.n}",
                job.options.method,
                progress(job),
                job.created_at.isoformat(timespec="seconds"),
            ]
            for job in jobs
        ),
    )


def format_history(points: Sequence[HistoryPoint]) -> str:
    """The `history` command's table."""
    return _table(
        ["ITERATION", "LOSS", "RESIDUAL", "AUX_ERROR", "LR"],
        (
            [
                str(p.iteration),
                num(p.loss, 6),
                num(p.residual, 6),
                num(p.aux_error, 6),
                num(p.lr),
            ]
            for p in points
        ),
    )


class ProgressBar:
    """A tqdm bar driven by the server's progress ticks (its rate and ETA, not the bar's own).

    Created on the first tick, so a job that finishes before any shows no empty bar.
    """

    def __init__(self, label: str, file: IO[str]) -> None:
        self._label = label
        self._file = file
        self._bar: tqdm[None] | None = None

    def update(self, progress: Progress) -> None:
        """Show one progress tick."""
        if self._bar is None:
            self._bar = tqdm(
                total=progress.max_iter,
                desc=self._label,
                file=self._file,
                dynamic_ncols=True,
                mininterval=0,
                # tqdm puts ", " before the postfix; its own rate and ETA would be the
                # client's, so the server's (in the postfix) are shown instead.
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}{postfix}",
            )
        bar = self._bar
        bar.total = progress.max_iter
        bar.n = min(progress.iteration, progress.max_iter)
        bar.set_postfix_str(progress_line(progress), refresh=False)
        bar.refresh()

    def finish(self, job: Job) -> None:
        """Show where the job ended (ticks are throttled: the last one is usually earlier)."""
        summary = job.summary
        if self._bar is None or summary is None:
            return
        bar = self._bar
        bar.total = max(summary.max_iter, summary.iterations)
        bar.n = summary.iterations
        bar.set_postfix_str(
            f"loss {num(summary.loss)}  residual {num(summary.residual)}  "
            f"aux {num(summary.aux_error)}  {summary.reason}",
            refresh=False,
        )
        bar.refresh()

    def close(self) -> None:
        """Leave the last state of the bar on screen."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
