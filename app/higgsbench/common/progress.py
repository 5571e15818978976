"""Progress bars for long work (downloads, data preparation, epochs, sweeps).

Shown on a terminal; hidden when stderr is not a terminal (logs, CI, benchmark subprocesses
whose output is parsed) unless HIGGSBENCH_PROGRESS=1 forces them; HIGGSBENCH_PROGRESS=0 or
``show=False`` hides them everywhere.

A process whose terminal is elsewhere (a Spark rank, whose output Spark relays to the
driver) draws nothing itself: ``remote_bar`` prints each update as one tagged line, and the
driver feeds the lines it receives to a ``RemoteProgress``, which draws them.
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

console = Console(stderr=True)

# The tag of a progress line printed by a remote process (remote_bar), read by RemoteProgress.
REMOTE_TAG = "HIGGSBENCH-PROGRESS "
REMOTE_EVERY = 1.0  # seconds between a remote bar's lines


def shown(show: bool = True) -> bool:
    """Whether bars asked for with ``show`` are drawn here (a terminal, or forced)."""
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

    def describe(self, description: str) -> None:
        """Say what the line is doing now (e.g. which run of a sweep)."""
        if self._progress:
            self._progress.update(self._task, description=description)


class EventRateColumn(ProgressColumn):
    """Events per second over the line so far: its steps per second × the events in a step
    (a remote bar's own measurement when it sent one)."""

    def __init__(self, events_per_step: int):
        super().__init__()
        self.events_per_step = events_per_step

    def render(self, task):
        rate = task.fields.get("steps_per_second")
        if rate is None:
            seconds = task.finished_time or task.elapsed
            rate = task.completed / seconds if seconds else None
        if not rate:
            return Text("… events/s", style="progress.data.speed")
        return Text(f"{rate * self.events_per_step:,.0f} events/s", style="progress.data.speed")


def _progress(unit: str, events_per_step: int | None, **options) -> Progress:
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn()]
    if unit == "bytes":
        columns += [DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()]
    else:
        columns += [MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    if events_per_step:
        columns.insert(-2, EventRateColumn(events_per_step))
    return Progress(*columns, console=console, **options)


@contextmanager
def progress_bar(
    description: str,
    total: float | None,
    unit: str = "items",
    show: bool = True,
    events_per_step: int | None = None,
    eta_window: float = 30.0,
):
    """One bar (``Bar.next`` adds lines), drawn while the block runs. ``events_per_step``
    adds an events/s column; ``eta_window`` is how many seconds of past progress the time
    remaining is estimated from (long for work whose steps take minutes)."""
    if not shown(show):
        yield Bar(None, description, total)
        return
    with _progress(unit, events_per_step, speed_estimate_period=eta_window) as progress:
        yield Bar(progress, description, total)


class RemoteBar(Bar):
    """A bar whose updates are printed, one tagged JSON line at most every REMOTE_EVERY
    seconds (and at each new line and the end), for RemoteProgress to draw elsewhere."""

    def __init__(self, description: str, total: float | None):
        super().__init__(None, description, total)
        self._state = {"description": description, "total": total, "completed": 0, "line": 0}
        self._sent = 0.0
        self._began = time.monotonic()
        self._emit(force=True)

    def _emit(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._sent >= REMOTE_EVERY:
            self._sent = now
            seconds = now - self._began
            rate = self._state["completed"] / seconds if seconds > 0 else 0.0
            print(REMOTE_TAG + json.dumps({**self._state, "steps_per_second": rate}), flush=True)

    def advance(self, n: float = 1) -> None:
        self._state["completed"] += n
        self._emit()

    def update(self, completed: float, total: float | None = None) -> None:
        self._state["completed"] = completed
        if total is not None:
            self._state["total"] = total
        self._emit(force=completed == self._state["total"])

    def next(self, description: str, total: float | None) -> None:
        self._state.update(description=description, total=total, completed=0)
        self._state["line"] += 1
        self._began = time.monotonic()
        self._emit(force=True)


@contextmanager
def remote_bar(description: str, total: float | None, show: bool = True, **_):
    """progress_bar's counterpart in a process whose output goes to a driver: nothing is
    drawn here; ``show`` is the driver's decision (it knows whether it has a terminal)."""
    yield RemoteBar(description, total) if show else Bar(None, description, total)


class RemoteProgress:
    """Draws the bars of remote_bar lines received from other processes: ``feed`` takes each
    line they print and returns the ones that are not progress (for the caller to pass on)."""

    def __init__(self, show: bool = True, events_per_step: int | None = None, prefix: str = ""):
        self._progress = _progress("items", events_per_step) if shown(show) else None
        self._prefix = prefix
        self._line: int | None = None
        self._task = None

    def __enter__(self) -> RemoteProgress:
        if self._progress:
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress:
            self._progress.stop()

    def feed(self, line: str) -> str | None:
        """Draw ``line`` if it is a progress line; else return it unchanged."""
        at = line.find(REMOTE_TAG)
        if at < 0:
            return line
        try:
            state = json.loads(line[at + len(REMOTE_TAG) :])
            description = self._prefix + state["description"]
            completed, total, number = state["completed"], state["total"], state["line"]
            rate = float(state.get("steps_per_second") or 0.0) or None
        except (ValueError, KeyError, TypeError):
            return line
        if self._progress is not None:
            if self._task is None or number != self._line:
                self._task = self._progress.add_task(description, total=total)
                self._line = number
            self._progress.update(
                self._task,
                completed=completed,
                total=total,
                description=description,
                steps_per_second=rate,
            )
        return None
