"""The `higgsbench` command line: data, train, report, bench and the local Spark cluster.

Each command (one module per group) is a thin layer over a module: it turns options into a
call. This module is the one error boundary: a HiggsbenchError or a usage error becomes a
one-line message and the exit status the top-level --help documents (cli/app.py's
EXIT_CODES).
"""

from __future__ import annotations

import os
import sys

import typer

from higgsbench.cli import bench, cluster, data, report, train  # noqa: F401 - they register
from higgsbench.cli.app import EXIT_CODES, EXIT_FAILED, EXIT_USAGE, app
from higgsbench.common.errors import HiggsbenchError
from higgsbench.common.redact import redact_text
from higgsbench.common.signals import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    how_stopped,
    interrupted,
)

__all__ = ["EXIT_CODES", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_TERMINATED", "EXIT_USAGE"]
__all__ += ["app", "main"]


def main() -> None:
    """The one error boundary: whatever the input, one line on stderr, never a traceback.
    A problem the user can fix (a bad option, choice, file or setting) exits 2 naming it; a
    sweep with a failed run exits 1, and so does a bug of ours (HIGGSBENCH_DEBUG=1 shows its
    traceback); Ctrl-C exits 130 and SIGTERM 143, after the same clean-up. EXIT_CODES, in
    the top-level --help, says the same."""
    debug = os.environ.get("HIGGSBENCH_DEBUG", "") not in ("", "0")
    try:
        # Not standalone: typer's usage errors reach this boundary and are worded like ours.
        # The program name is fixed so that `python -m higgsbench` completes as the script.
        status = app(prog_name="higgsbench", standalone_mode=False)
    except typer.TyperException as exc:  # a usage error: unknown option, bad choice or value
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.exit(EXIT_USAGE)  # the help is printed already
        _fail(f"error: {_usage_error(exc)}", exc.exit_code)
    except HiggsbenchError as exc:
        _fail(f"error: {exc}", exc.exit_status)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (signals.Terminated)
        _fail(*how_stopped(exc))
    except typer.Abort:  # typer turns EOF on a prompt into Abort
        _fail("interrupted", EXIT_INTERRUPTED)
    except Exception as exc:
        if interrupted():  # a library turned the interruption into an error of its own
            _fail(*how_stopped())
        if debug:
            raise
        _report_error(exc)
    # typer returns what typer.Exit carried, and 130 for a Ctrl-C it caught itself
    if status == EXIT_INTERRUPTED:
        _fail(*how_stopped())
    sys.exit(status if isinstance(status, int) else 0)


def _report_error(exc: Exception) -> None:
    if isinstance(exc, OSError):
        # A file system refusal (permissions, a read-only or full disk, a file where a
        # directory should be): the system's words and the path are what the user needs.
        _fail(f"error: {_os_error(exc)}", EXIT_USAGE)
    _fail(
        f"internal error: {type(exc).__name__}: {exc}; please report it "
        "(set HIGGSBENCH_DEBUG=1 for the traceback)",
        EXIT_FAILED,
    )


def _usage_error(exc: typer.TyperException) -> str:
    message = exc.format_message().replace("Value error, ", "").rstrip(".")
    ctx = getattr(exc, "ctx", None)
    return f"{message} (see `{ctx.command_path} --help`)" if ctx is not None else message


def _os_error(exc: OSError) -> str:
    if not exc.strerror:
        return str(exc)
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    return f"{exc.strerror}: {' -> '.join(paths)}" if paths else exc.strerror


def _fail(message: str, status: int) -> None:
    # One line, whatever the message holds: a log reader greps for "higgsbench: error". No
    # secret of an address in it, whichever module worded it.
    print(f"higgsbench: {redact_text(' '.join(message.split()))}", file=sys.stderr)
    sys.exit(status)
