"""Limits on numeric options, worded once: every command refuses a bad number the same way,
naming the option, before it creates or reads anything."""

from __future__ import annotations

import math

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
