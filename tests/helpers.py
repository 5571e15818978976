"""Helpers for tests: run the command line as a user would."""

from __future__ import annotations

import os
import subprocess
import sys


def run_cli(*args: str, check: bool = False, timeout: float = 600, env: dict | None = None):
    """Run `python -m higgsbench ARGS…` as a user would; return the CompletedProcess."""
    full_env = {**os.environ, "HIGGSBENCH_PROGRESS": "0", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "higgsbench", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"higgsbench {' '.join(map(str, args))} exited {proc.returncode}:\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc
