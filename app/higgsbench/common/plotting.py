"""Shared plotting conventions: headless backend, the HEP look (mplhep's ROOT style, scaled to
our figure sizes), atomic PNG writes, and a visible stamp on every figure made from generated
data so no plot of toy events can pass for real HIGGS."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mplhep
import numpy as np
from matplotlib.ticker import MaxNLocator

from higgsbench.common.atomic import atomic_path

GENERATED_STAMP = "GENERATED DATA (toy Monte Carlo) — not UCI HIGGS"

# mplhep's experiment-neutral style (ticks inside on all four sides, minor ticks, no frame
# round the legend), with sizes for 6 × 4 inch figures instead of its 10 × 10, and DejaVu
# Sans behind TeX Gyre Heros for the glyphs the latter lacks (√, ε, ×).
STYLE = {
    **mplhep.style.ROOT,
    "font.sans-serif": [*mplhep.style.ROOT["font.sans-serif"], "DejaVu Sans"],
    "figure.figsize": (6.4, 4.4),
    "font.size": 11,
    "axes.linewidth": 1.0,
    "xtick.major.size": 6,
    "xtick.minor.size": 3,
    "ytick.major.size": 6,
    "ytick.minor.size": 3,
    "xtick.major.pad": 4,
}
plt.style.use(STYLE)


def new_figure(width: float = 6.4, height: float = 4.4, ncols: int = 1):
    """A figure and its axes (one, or a row of ``ncols``)."""
    return plt.subplots(1, ncols, figsize=(width, height), constrained_layout=True)


def integer_ticks(axis) -> None:
    """Whole-number major ticks on ``axis`` (epochs, nodes): no "epoch 1.5"."""
    axis.set_major_locator(MaxNLocator(integer=True))
    axis.set_minor_locator(matplotlib.ticker.NullLocator())


def density_errors(density: Sequence[float], edges: Sequence[float], events: float | None):
    """Statistical (Poisson) error of a histogram normalised to unit area: a bin of n of N
    events and width w has density n/(N w) and error √n/(N w) = √(density/(N w)).
    None when the number of events is unknown or zero."""
    if not events:
        return None
    widths = np.diff(np.asarray(edges, dtype=float))
    values = np.nan_to_num(np.asarray(density, dtype=float))
    return np.sqrt(np.clip(values, 0, None) / (events * widths))


def step_histogram(ax, density, edges, events, **kwargs):
    """A normalised histogram as physicists draw it: steps, with statistical error bars."""
    values = np.nan_to_num(np.asarray(density, dtype=float))
    return mplhep.histplot(
        values,
        np.asarray(edges, dtype=float),
        yerr=density_errors(values, edges, events),
        histtype="step",
        ax=ax,
        flow=None,
        **kwargs,
    )


def rejection(fpr: Sequence[float | None], tpr: Sequence[float | None]):
    """Signal efficiency and background rejection 1/ε_B from a ROC curve, leaving out the
    points where no background passes (infinite rejection) or a coordinate is undefined."""
    pairs = [
        (s, 1.0 / b)
        for b, s in zip(fpr, tpr, strict=True)
        if b is not None and s is not None and b > 0 and math.isfinite(b) and s > 0
    ]
    return [s for s, _ in pairs], [r for _, r in pairs]


def save(fig, path: Path, generated: bool) -> Path:
    """Write ``fig`` to ``path`` via a temporary file; stamp it when the data were generated."""
    if generated:
        fig.text(
            0.5,
            0.5,
            GENERATED_STAMP,
            ha="center",
            va="center",
            rotation=20,
            fontsize=13,
            color="tab:red",
            alpha=0.25,
            zorder=10,
        )
        fig.suptitle(GENERATED_STAMP, color="tab:red", fontsize=9)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format=path.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return path
