"""`higgsbench report RUN_DIR…`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from higgsbench.cli.app import app


@app.command("report")
def report(
    runs: Annotated[list[Path], typer.Argument(help="Run directories holding result.json.")],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Directory for plots and report.md (new, empty or higgsbench's).",
            show_default="the first run's directory",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Write into a non-empty OUT that higgsbench did not make.")
    ] = False,
):
    """Plots (loss and AUC per epoch, ROC, output histograms, FOM against cut) and report.md."""
    from higgsbench.report import write_report

    path = write_report(runs, out, force=force)
    typer.echo(f"wrote {path}")
