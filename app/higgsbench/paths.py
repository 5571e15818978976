"""Output directories made so that a command that fails leaves nothing behind: it removes the
directories it created itself, and only those."""

from __future__ import annotations

import secrets
from pathlib import Path

from higgsbench.errors import HiggsbenchError


def make_dirs(path: Path) -> list[Path]:
    """``mkdir -p path``; return the directories this call created, outermost first."""
    missing = []
    probe = Path(path)
    while not (probe.exists() or probe.is_symlink()) and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    missing.reverse()
    if not probe.is_dir():  # mkdir would say only "File exists" or "Not a directory"
        raise HiggsbenchError(f"{probe}: is a file, where a directory is needed for {path}")
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except BaseException:
        remove_made(missing)  # mkdir -p may fail half-way (a read-only parent, a file)
        raise
    return missing


def remove_made(made: list[Path]) -> None:
    """Remove directories that make_dirs created, innermost first, as long as they are empty:
    anything someone else put there in the meantime stays."""
    for directory in reversed(made):
        try:
            directory.rmdir()
        except OSError:
            return


def new_dir(parent: Path, prefix: str) -> Path:
    """A new directory in ``parent`` with a unique name starting with ``prefix``, made with the
    user's umask like any other directory (``tempfile.mkdtemp`` makes it 0700 whatever the
    umask, and a result or dataset renamed into place from it would stay private)."""
    while True:
        path = Path(parent) / f"{prefix}{secrets.token_hex(4)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
