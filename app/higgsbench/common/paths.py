"""Output directories made so that a command that fails leaves nothing behind: it removes the
directories it created itself, and only those."""

from __future__ import annotations

import contextlib
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from higgsbench.common.atomic import write_text_atomic
from higgsbench.common.errors import UsageError


def missing_dirs(path: Path) -> list[Path]:
    """The directories ``mkdir -p path`` would create, outermost first. Known before they are
    made, so that a command stopped at any moment can remove those it made (remove_made)."""
    missing = []
    probe = Path(path)
    while not (probe.exists() or probe.is_symlink()) and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    if not probe.is_dir():  # mkdir would say only "File exists" or "Not a directory"
        raise UsageError(f"{probe}: is a file, where a directory is needed for {path}")
    return missing[::-1]


def make_dirs(path: Path) -> list[Path]:
    """``mkdir -p path``; return the directories this call created, outermost first."""
    missing = missing_dirs(path)
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


def check_output_dir(out: Path, option: str, force: bool = False, also_ours=()) -> bool:
    """Whether a command may write into ``out``: new, empty, marked as the kit's, one of
    ``also_ours`` (e.g. the run directory a report is about), or any directory with
    ``force`` (then files of the same name are replaced and the rest stays); anything else is
    refused, naming ``option``. Returns whether ``out`` is new or empty."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{option} {out}: is a file; a directory is needed")
    mine = {Path(p).resolve() for p in also_ours}
    empty = not out.exists() or not any(out.iterdir())
    if not (empty or is_ours(out) or out.resolve() in mine or force):
        raise UsageError(
            f"{option} {out}: not empty and not made by higgsbench (no {OUTPUT_MARKER} in it); "
            "choose a new or empty directory, or pass --force to write into it"
        )
    return empty


def claim_output_dir(
    out: Path, option: str, kind: str, force: bool = False, also_ours=()
) -> list[Path]:
    """Make ``out`` ready for a command's files (check_output_dir says which it may be);
    return the directories created (for remove_made). A new or empty directory is marked as
    the kit's, ``kind`` saying which command made it."""
    out = Path(out)
    empty = check_output_dir(out, option, force, also_ours)
    made = make_dirs(out)
    if empty:
        write_text_atomic(out / OUTPUT_MARKER, kind + "\n")
    return made


@contextlib.contextmanager
def output_set(
    out: Path, option: str, kind: str, force: bool = False, also_ours=()
) -> Iterator[Path]:
    """Claim ``out`` as claim_output_dir does, and yield a new directory inside it to write a
    command's files into (plots, a report); when the block ends they are moved into ``out``
    together. A block that fails or is interrupted leaves ``out`` as it was: none of the new
    files, and neither ``out`` nor its marker where this call made them."""
    out = Path(out)
    fresh = not (out.is_dir() and any(out.iterdir()))
    made = claim_output_dir(out, option, kind, force, also_ours)
    try:
        tmp = new_dir(out, f".{kind}.tmp-")
        try:
            yield tmp
            _move_set(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        if fresh:
            (out / OUTPUT_MARKER).unlink(missing_ok=True)
            remove_made(made)
        raise


def _move_set(tmp: Path, out: Path) -> None:
    """Rename every file in ``tmp`` over its namesake in ``out``. Each file replaced is put
    aside first, so that a rename that fails (or a Ctrl-C between two) undoes those made
    before it and puts the old files back; a directory of the same name is refused."""
    names = sorted(p.name for p in tmp.iterdir())
    old = new_dir(tmp, ".old-")
    moved, aside = [], []
    try:
        for name in names:
            target = out / name
            if target.is_dir() and not target.is_symlink():
                raise UsageError(
                    f"{target}: is a directory, where {name} is to be written; nothing was written"
                )
            if target.exists() or target.is_symlink():
                target.rename(old / name)
                aside.append(name)
            (tmp / name).rename(target)
            moved.append(name)
    except BaseException:
        for name in moved:
            (out / name).unlink(missing_ok=True)
        for name in aside:
            (old / name).rename(out / name)
        raise
