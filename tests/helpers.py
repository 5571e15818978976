"""Helpers for tests: run the command line as a user would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def run_cli(
    *args: str,
    check: bool = False,
    timeout: float = 600,
    env: dict | None = None,
    python: str | Path = sys.executable,
):
    """Run `python -m higgsbench ARGS…` as a user would (with this interpreter unless `python`
    names another environment's); return the CompletedProcess."""
    full_env = {**os.environ, "HIGGSBENCH_PROGRESS": "0", **(env or {})}
    proc = subprocess.run(
        [str(python), "-m", "higgsbench", *map(str, args)],
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


def venv_tool(name: str) -> str | None:
    """A command-line tool installed by a pip dependency: beside this interpreter first, since the
    virtual environment's bin/ is not on PATH when pytest is started as .venv/bin/pytest."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


DOCKER = os.environ.get("DOCKER", "docker")


def run_checked(cmd, *, timeout: float = 600, check: bool = True, **kw):
    """Run an infrastructure command (docker, ansible…), capturing its output; with ``check``,
    a non-zero exit fails the test showing the command and the end of what it printed."""
    proc = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n"
            f"{proc.stdout[-8000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def docker(*args, **kw):
    return run_checked([DOCKER, *args], **kw)
