"""Limits on options, worded once: every command refuses a bad number or a missing program the
same way, naming the option, before it creates or reads anything."""

from __future__ import annotations

import errno
import math
import os
import shutil
import urllib.parse
from pathlib import Path

from higgsbench.common.errors import UsageError
from higgsbench.common.redact import redact_url

# numpy's and Keras' seeds are unsigned 32-bit numbers; torch would take more, but a seed that
# one engine refuses is refused for all, so a run means the same thing on every engine
SEED_MAX = 2**32 - 1


def at_least(option: str, value: int | float | None, minimum: int = 1) -> None:
    """Refuse ``value`` below ``minimum``; None (an option left at its default) passes."""
    if value is not None and value < minimum:
        raise UsageError(f"{option} {value}: must be at least {minimum}")


def positive(option: str, value: float | None) -> None:
    """Refuse anything but a finite number above zero; NaN and infinity are typed as easily
    as -1 (typer's float parser accepts them) and would train or wait forever."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise UsageError(f"{option} {value:g}: must be a number above 0")


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
        raise UsageError(f"{option}: {why}")
    return found


def cpus() -> int:
    """The CPUs this process may run on (its affinity: a container's or taskset's share, not
    the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def threads(option: str, value: int | None) -> None:
    """Refuse more threads than CPUs: they would only take turns, and slow every one down.
    None (all CPUs) passes."""
    at_least(option, value)
    if value is not None and value > (have := cpus()):
        raise UsageError(
            f"{option} {value}: more than the {have} CPUs this process may use; "
            f"choose at most {have} (or leave it out to use them all)"
        )


def seed(option: str, value: int) -> None:
    """Refuse a seed that numpy (and so Keras, and our shuffling) cannot take."""
    if not 0 <= value <= SEED_MAX:
        raise UsageError(f"{option} {value}: must be from 0 to {SEED_MAX} (2**32 - 1)")


def url(
    option: str, text: str, schemes: tuple[str, ...] = ("http", "https"), expected: str = ""
) -> str:
    """Refuse an address that does not parse, or lacks a host, naming ``option`` and saying
    what is ``expected``; return it. Any secret in it is masked in the message."""
    shown = repr(redact_url(text))
    expected = "expected " + (expected or " or ".join(s + "://HOST/…" for s in schemes))
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 - parsed on access: a port beyond 65535 raises here
    except ValueError as exc:
        raise UsageError(f"{option} {shown}: not a valid URL ({exc}); {expected}") from None
    if parts.scheme.lower() not in schemes:
        raise UsageError(f"{option} {shown}: {expected}")
    if not parts.hostname or any(c.isspace() or ord(c) < 32 for c in text):
        why = "no host in it" if not parts.hostname else "it holds spaces or control characters"
        raise UsageError(f"{option} {shown}: not a valid URL ({why}); {expected}")
    return text


def no_link_loop(path: str | os.PathLike) -> None:
    """Refuse a path whose symbolic links lead round in a circle: every later check would
    read it as missing ("no such file") or fail deep inside pathlib."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UsageError(
                f"{path}: a loop of symbolic links (they lead back to themselves); "
                "point it at a real file or directory"
            ) from None


def available_memory() -> int:
    """Bytes this process may still allocate: the system's available memory, or the limit of
    its memory cgroup (a container's --memory) when that is lower. A cgroup's usage is not
    subtracted: most of it is page cache, which the kernel gives back on demand."""
    import psutil

    available = psutil.virtual_memory().available
    for limit_file in ("memory.max", "memory/memory.limit_in_bytes"):
        try:
            text = (Path("/sys/fs/cgroup") / limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            available = min(available, int(text))
    return available


def fits_in_memory(option: str, needed: int, what: str) -> None:
    """Refuse a setting whose ``needed`` bytes (a lower bound: ``what`` says of what) exceed the
    memory available, before the allocator fails in the middle of a run."""
    available = available_memory()
    if needed > available:
        raise UsageError(
            f"{option}: {what} needs at least {_size(needed)} of memory, and "
            f"{_size(available)} is available; choose a smaller network"
        )


def _size(n: float) -> str:
    units = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n, i = n / 1024, i + 1
    return f"{n:.0f} bytes" if i == 0 else f"{n:.1f} {units[i]}"
