"""Loss curves as pictures: loss and aux error against iteration on log-log axes.

Needs matplotlib, the optional `ninv[plot]` extra; `plot_history` raises PlotUnavailable, with the
line to install it, when it is missing. It draws with the Agg backend and touches no global pyplot
state, so it is safe in servers and threads.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from client.errors import NinvError
from ninv.schemas import HistoryPoint

__all__ = ["PlotUnavailable", "plot_history"]


class PlotUnavailable(NinvError):
    """matplotlib is not installed."""


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


def plot_history(
    points: Sequence[HistoryPoint],
    output: str | os.PathLike[str],
    *,
    title: str | None = None,
) -> None:
    """Draw loss, residual and aux error against iteration (log-log) and save it to `output`.

    The image format follows the extension (.png, .svg, .pdf, ...), as matplotlib knows them.

    Raises:
        PlotUnavailable: matplotlib is not installed.
        ValueError: nothing to plot, or an image format matplotlib does not know.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotUnavailable(
            "plotting needs matplotlib, which is not installed: pip install 'ninv[plot]'"
        ) from None
    curves = [
        ("loss", "loss  mean((WX - I)²)", "-"),
        ("residual", "residual  ‖WX - I‖", ":"),
        ("aux_error", "aux error  mean((W - X⁻¹)²)", "--"),
    ]
    figure = Figure(figsize=(8, 5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    drawn = 0
    for name, label, style in curves:
        xs, ys = _positive(points, name)
        if xs:
            axes.plot(xs, ys, style, label=label, linewidth=1.2)
            drawn += 1
    if not drawn:
        raise ValueError("no positive loss values to plot yet")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("iteration")
    axes.set_ylabel("error")
    axes.grid(True, which="both", linewidth=0.3)
    axes.legend()
    if title:
        axes.set_title(title)
    figure.tight_layout()
    figure.savefig(os.fspath(output))
