"""SIGTERM is handled as SIGINT is: both become an exception in the main thread, so every
``finally`` and ``except BaseException`` that removes a temporary file, a half-made directory or
a child process runs for a `kill` (a batch system's time limit, `docker stop`, systemd) as it
does for Ctrl-C.

Two details make that safe:
- An interruption that lands while an extension module initialises is held back until it
  is done: extension modules (torch) that run Python code during their own import abort the
  whole interpreter (SIGABRT, no clean-up) when an exception crosses their C++ frames. The
  same for code that eval or exec run from a string (see _must_wait).
- Once one interruption has been raised, later ones are ignored, so that a second Ctrl-C
  or a SIGTERM from a supervisor cannot break off the cleanup the first one started.

Standard library only: the command line installs it before importing anything heavy.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

# How long a held-back interruption waits before it is tried again.
RETRY_SECONDS = 0.05


class Terminated(KeyboardInterrupt):
    """SIGTERM: a KeyboardInterrupt, so that everything that cleans up after Ctrl-C also
    cleans up after a kill; the command line tells the two apart for the exit status."""


_raised: int | None = None  # the signal that was turned into an exception, once one was


def install() -> None:
    """Turn SIGTERM, and SIGINT unless it was inherited ignored (a background job of a
    script), into Terminated and KeyboardInterrupt in the main thread."""
    global _raised
    _raised = None
    signal.signal(signal.SIGTERM, _interrupt)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _interrupt)
    sys.unraisablehook = _raise_again(sys.unraisablehook)


def _interrupt(signum: int, frame) -> None:
    global _raised
    if _raised is not None:
        return  # cleaning up after the first interruption: let it finish
    if _must_wait(frame):
        _send_again(signum)
        return
    _raised = signum
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _send_again(signum: int) -> None:
    retry = threading.Timer(RETRY_SECONDS, os.kill, (os.getpid(), signum))
    retry.daemon = True
    retry.start()


def _raise_again(previous):
    """An unraisable-exception hook: an interruption raised where Python cannot raise (a
    finaliser, a weakref callback the garbage collector runs, such as the import system's
    module-lock callback) is not lost with its "Exception ignored" message but raised again
    shortly, wherever the main thread is then."""

    def hook(unraisable) -> None:
        global _raised
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and _raised is not None:
            signum, _raised = _raised, None
            _send_again(signum)
            return
        previous(unraisable)

    return hook


def _must_wait(frame) -> bool:
    """Whether an exception raised in ``frame`` now would do more harm than waiting: while an
    extension module initialises (see the module's docstring), or inside code compiled from a
    string by eval or exec (typer evaluates annotations so): CPython 3.11 marks a
    KeyboardInterrupt leaving such code as unhandled, even when it is caught, and then kills
    itself with SIGINT as it exits. Pure-Python imports are interrupted at once."""
    while frame is not None:
        code = frame.f_code
        if (
            code.co_name in ("create_module", "exec_module")
            and code.co_filename.startswith("<frozen importlib._bootstrap")
            and type(frame.f_locals.get("self")).__name__ == "ExtensionFileLoader"
        ):
            return True
        if code.co_filename == "<string>" and frame.f_back is not None:  # not `python -c`
            return True
        frame = frame.f_back
    return False


EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130, as a shell reports a job stopped by Ctrl-C
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143


def interrupted() -> bool:
    """Whether an interruption has been raised in this process. A library may turn it into
    another exception on its way out (an import broken off half-way leaves a partially
    initialised module that the next access reports as an AttributeError): the command line
    then still reports the interruption, not a bug."""
    return _raised is not None


def how_stopped(exc: KeyboardInterrupt | None = None) -> tuple[str, int]:
    """The one line and the exit status for an interruption: ``exc``, or (where a library
    caught it and returned a status instead) the signal this module turned into one."""
    if isinstance(exc, Terminated) or (exc is None and _raised == signal.SIGTERM):
        return "terminated", EXIT_TERMINATED
    return "interrupted", EXIT_INTERRUPTED
