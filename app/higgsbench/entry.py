"""The `higgsbench` program: interruptions handled first, then the command line.

SIGTERM and SIGINT are turned into exceptions before anything heavy is imported, so that an
interruption at any moment, even while typer or torch load, ends in one line and the exit
status the --help promises (130 for Ctrl-C, 143 for SIGTERM), never a traceback.
"""

from __future__ import annotations

import sys

from higgsbench.common import signals


def main() -> None:
    signals.install()
    try:
        from higgsbench.cli import main as run_command_line
    except BaseException as exc:
        if not (isinstance(exc, KeyboardInterrupt) or signals.interrupted()):
            raise
        message, status = signals.how_stopped(exc if isinstance(exc, KeyboardInterrupt) else None)
        print(f"higgsbench: {message}", file=sys.stderr)
        sys.exit(status)
    run_command_line()
