"""Limits on options, worded once: every command refuses a bad number or a missing program the
same way, naming the option, before it creates or reads anything."""

from __future__ import annotations

import math
import os
import shutil

from higgsbench.errors import HiggsbenchError


def at_least(option: str, value: int | float | None, minimum: int = 1) -> None:
    """Refuse ``value`` below ``minimum``; None (an option left at its default) passes."""
    if value is not None and value < minimum:
        raise HiggsbenchError(f"{option} {value}: must be at least {minimum}")


def positive(option: str, value: float | None) -> None:
    """Refuse anything but a finite number above zero; NaN and infinity are typed as easily
    as -1 (typer's float parser accepts them) and would train or wait forever."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise HiggsbenchError(f"{option} {value:g}: must be a number above 0")


def executable(option: str, program: str) -> str:
    """The path of ``program`` (a path, or a name looked up on PATH) if it can be run;
    otherwise refuse it, naming ``option``."""
    found = shutil.which(program)
    if found is None:
        if os.path.isfile(program):
            why = "not executable"
        elif os.sep in program:
            why = "no such file"
        else:
            why = "not found on PATH"
        raise HiggsbenchError(f"{option}: {why}")
    return found


def spark_master(option: str, master: str | None, batch_size: int, nodes: list[int]) -> None:
    """A Spark run's master URL and batch: refused, naming ``option``, unless the master is a
    spark:// URL and the batch divides evenly among every node count."""
    if not master:
        raise HiggsbenchError(
            f"{option} spark needs --master spark://HOST:PORT "
            "(start a local cluster with `higgsbench cluster up`)"
        )
    if not master.startswith("spark://"):
        raise HiggsbenchError(f"--master {master!r}: expected spark://HOST:PORT")
    for n in nodes:
        if batch_size % n:
            raise HiggsbenchError(f"--batch-size {batch_size} must divide evenly among --nodes {n}")
