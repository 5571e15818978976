"""Output directories made so that a command that fails leaves nothing behind: it removes the
directories it created itself, and only those."""

from __future__ import annotations

import secrets
from pathlib import Path

from higgsbench.atomic import write_text_atomic
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


# Written into every output directory the kit makes (a run, a sweep, a report, a comparison):
# a non-empty directory without it is the user's, and is written into only with --force.
OUTPUT_MARKER = ".higgsbench-output"


def is_ours(path: Path) -> bool:
    """Whether ``path`` is an output directory the kit made (it carries OUTPUT_MARKER)."""
    return (Path(path) / OUTPUT_MARKER).is_file()


def claim_output_dir(
    out: Path, option: str, kind: str, force: bool = False, also_ours=()
) -> list[Path]:
    """Make ``out`` ready for a command's files; return the directories created (for
    remove_made). A new or empty directory is marked as the kit's (``kind`` says which
    command made it); a marked one, or one of ``also_ours`` (e.g. the run directory a report
    is about), is written into; any other non-empty directory is refused, naming ``option``,
    unless ``force`` (then files of the same name are replaced and the rest stays)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise HiggsbenchError(f"{option} {out}: is a file; a directory is needed")
    mine = {Path(p).resolve() for p in also_ours}
    empty = not out.exists() or not any(out.iterdir())
    if not (empty or is_ours(out) or out.resolve() in mine or force):
        raise HiggsbenchError(
            f"{option} {out}: not empty and not made by higgsbench (no {OUTPUT_MARKER} in it); "
            "choose a new or empty directory, or pass --force to write into it"
        )
    made = make_dirs(out)
    if empty:
        write_text_atomic(out / OUTPUT_MARKER, kind + "\n")
    return made
