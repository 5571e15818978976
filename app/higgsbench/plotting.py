"""Shared plotting conventions: headless backend, atomic PNG writes, and a visible stamp on every
figure made from generated data so no plot of toy events can pass for real HIGGS."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
        plt.close(fig)
    return path
