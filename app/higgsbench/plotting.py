"""Shared plotting conventions: headless backend, atomic PNG writes, and a visible stamp on every
figure made from generated data so no plot of toy events can pass for real HIGGS."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from higgsbench.atomic import atomic_path

GENERATED_STAMP = "GENERATED DATA (toy Monte Carlo) — not UCI HIGGS"


def new_figure(width: float = 6.4, height: float = 4.4, ncols: int = 1):
    """A figure and its axes (one, or a row of ``ncols``)."""
    return plt.subplots(1, ncols, figsize=(width, height), constrained_layout=True)


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
