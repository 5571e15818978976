"""Progress bars for long work (downloads, data preparation, epochs).

Shown on a terminal; hidden when stderr is not a terminal (logs, CI, benchmark subprocesses
whose output is parsed) unless HIGGSBENCH_PROGRESS=1 forces them; HIGGSBENCH_PROGRESS=0 or
``show=False`` hides them everywhere.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

console = Console(stderr=True)


def _visible(show: bool) -> bool:
    forced = os.environ.get("HIGGSBENCH_PROGRESS")
    if not show or forced == "0":
        return False
    return forced == "1" or sys.stderr.isatty()


class Bar:
    """One line of progress; methods do nothing when the bar is hidden."""

    def __init__(self, progress: Progress | None, description: str, total: float | None):
        self._progress = progress
        self._task = progress.add_task(description, total=total) if progress else None

    def advance(self, n: float = 1) -> None:
        if self._progress:
            self._progress.advance(self._task, n)

    def update(self, completed: float, total: float | None = None) -> None:
        if self._progress:
            self._progress.update(self._task, completed=completed, total=total)

    def next(self, description: str, total: float | None) -> None:
        """Start a fresh line (e.g. the next epoch), keeping the finished one on screen."""
        if self._progress:
            self._task = self._progress.add_task(description, total=total)


@contextmanager
def progress_bar(description: str, total: float | None, unit: str = "items", show: bool = True):
    if not _visible(show):
        yield Bar(None, description, total)
        return
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn()]
    if unit == "bytes":
        columns += [DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()]
    else:
        columns += [MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console) as progress:
        yield Bar(progress, description, total)
