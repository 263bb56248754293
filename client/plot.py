"""Loss curves as pictures: one job's curves, or several methods' overlaid, on log-log axes.

Needs matplotlib, the optional `ninv[plot]` extra; the functions raise PlotUnavailable, with the
line to install it, when it is missing. They draw with the Agg backend and touch no global pyplot
state, so they are safe in servers and threads.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from client.errors import NinvError
from ninv.schemas import HistoryPoint, Summary

__all__ = ["Curve", "PlotUnavailable", "lr_stages", "plot_compare", "plot_history"]


class PlotUnavailable(NinvError):
    """matplotlib is not installed."""


@dataclass(frozen=True)
class Curve:
    """One method's run for `plot_compare`: its label, loss curve and summary."""

    label: str
    points: Sequence[HistoryPoint]
    summary: Summary | None = None


def _positive(points: Sequence[HistoryPoint], name: str) -> tuple[list[int], list[float]]:
    """The (iteration, value) pairs a log-log plot can show: both positive and finite."""
    xs: list[int] = []
    ys: list[float] = []
    for point in points:
        value = getattr(point, name)
        if point.iteration > 0 and value is not None and math.isfinite(value) and value > 0:
            xs.append(point.iteration)
            ys.append(value)
    return xs, ys


def lr_stages(points: Sequence[HistoryPoint]) -> list[tuple[int, float]]:
    """(iteration, lr) where each learning-rate stage after the first starts, as the curve
    shows it (the worker keeps a point at every stage change)."""
    stages: list[tuple[int, float]] = []
    for before, after in itertools.pairwise(points):
        if after.lr is not None and before.lr is not None and after.lr != before.lr:
            stages.append((after.iteration, after.lr))
    return stages


def _figure() -> tuple[Any, Any]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotUnavailable(
            "plotting needs matplotlib, which is not installed: pip install 'ninv[plot]'"
        ) from None
    figure = Figure(figsize=(9, 5.5), dpi=100)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _finish(figure: Any, axes: Any, output: str | os.PathLike[str], title: str | None) -> None:
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("iteration")
    axes.grid(True, which="both", linewidth=0.3)
    axes.legend(fontsize="small")
    if title:
        axes.set_title(title, fontsize="medium")
    figure.tight_layout()
    figure.savefig(os.fspath(output))


def _mark_stages(axes: Any, points: Sequence[HistoryPoint], color: str = "grey") -> None:
    for k, (iteration, lr) in enumerate(lr_stages(points)):
        axes.axvline(
            iteration,
            color=color,
            linestyle="-.",
            linewidth=0.8,
            label="lr stage starts" if k == 0 else None,
        )
        axes.annotate(
            f"lr {lr:g}",
            (iteration, 1),
            xycoords=("data", "axes fraction"),
            xytext=(3, -12),
            textcoords="offset points",
            fontsize="small",
            color=color,
        )


def _mark_tol(axes: Any, tol: float | None) -> None:
    if tol is not None and tol > 0:
        axes.axhline(
            tol, color="black", linestyle=":", linewidth=0.9, label=f"tol {tol:g} (on the residual)"
        )


def plot_history(
    points: Sequence[HistoryPoint],
    output: str | os.PathLike[str],
    *,
    title: str | None = None,
    summary: Summary | None = None,
) -> None:
    """Draw loss, residual and aux error against iteration (log-log) and save it to `output`,
    with each lr stage's start marked; a `summary` adds its tolerance (on the residual's
    scale) and its cond and outcome to the title.

    The image format follows the extension (.png, .svg, .pdf, ...), as matplotlib knows them.

    Raises:
        PlotUnavailable: matplotlib is not installed.
        ValueError: nothing to plot, or an image format matplotlib does not know.
    """
    curves = [
        ("loss", "loss  mean((WX - I)²)", "-"),
        ("residual", "residual  ‖WX - I‖_F / √n", ":"),
        ("aux_error", "aux error  mean((W - X⁻¹)²)", "--"),
    ]
    figure, axes = _figure()
    drawn = 0
    for name, label, style in curves:
        xs, ys = _positive(points, name)
        if xs:
            axes.plot(xs, ys, style, label=label, linewidth=1.2)
            drawn += 1
    if not drawn:
        raise ValueError("no positive loss values to plot yet")
    _mark_stages(axes, points)
    if summary is not None:
        _mark_tol(axes, summary.tol)
        title = f"{title or ''}\n{_outcome(summary)}".strip()
    axes.set_ylabel("error")
    _finish(figure, axes, output, title)


def _outcome(summary: Summary) -> str:
    cond = "-" if summary.cond is None else f"{summary.cond:.3g}"
    verdict = "converged" if summary.converged else f"not converged ({summary.reason})"
    residual = "-" if summary.residual is None else f"{summary.residual:.3g}"
    return f"cond {cond}; {verdict} at iteration {summary.iterations}, residual {residual}"


def plot_compare(
    curves: Sequence[Curve],
    output: str | os.PathLike[str],
    *,
    title: str | None = None,
) -> None:
    """Overlay several runs' residual curves (solid) and aux errors (dashed, same colour) on
    one log-log chart: which method gets where, and when. A run with one point (exact) is a
    marker; each run's end is a dot (hollow when it did not converge); the tolerances and the
    first run's lr stages are marked.

    Raises:
        PlotUnavailable: matplotlib is not installed.
        ValueError: nothing to plot, or an image format matplotlib does not know.
    """
    figure, axes = _figure()
    drawn = 0
    for k, curve in enumerate(curves):
        color = f"C{k % 10}"
        xs, ys = _positive(curve.points, "residual")
        if not xs:
            continue
        drawn += 1
        summary = curve.summary
        converged = summary is None or summary.converged
        end = "converged" if summary is None or converged else f"not converged: {summary.reason}"
        label = f"{curve.label} ({end})"
        if len(xs) == 1:
            axes.plot(xs, ys, "*", color=color, markersize=11, label=label)
            continue
        axes.plot(xs, ys, "-", color=color, linewidth=1.3, label=label)
        axes.plot(xs[-1:], ys[-1:], "o", color=color, fillstyle="full" if converged else "none")
        ax_xs, ax_ys = _positive(curve.points, "aux_error")
        if ax_xs:
            axes.plot(ax_xs, ax_ys, "--", color=color, linewidth=0.8, alpha=0.7)
    if not drawn:
        raise ValueError("no run has a positive residual to plot")
    tols = sorted({c.summary.tol for c in curves if c.summary is not None and c.summary.tol})
    for tol in tols:
        _mark_tol(axes, tol)
    staged = next((c for c in curves if lr_stages(c.points)), None)
    if staged is not None:
        _mark_stages(axes, staged.points)
    axes.set_ylabel("residual ‖WX - I‖_F / √n (solid), aux error (dashed)")
    _finish(figure, axes, output, title)
