"""Files written whole or not at all: a temporary file beside the target, renamed over it.

A reader (another process, a rerun after a crash, a fetch from a remote node) sees either the
old file or the new one, never half of one. The temporary file lives in the target's
directory, so the rename stays on one file system and is atomic.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: Path, mode: int | None = None) -> Iterator[Path]:
    """Yield a new, empty file beside ``path`` to write by name (a stream, savefig,
    torch.save); it replaces ``path`` when the block ends, and is removed if the block fails.

    ``mode`` is given to the file when it is created, so its contents are never readable
    beyond it (0o600: the owner's from the first byte); without one the umask decides, as
    for any new file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
            break
        except FileExistsError:
            continue
    os.close(fd)
    try:
        if mode is not None:
            os.chmod(tmp, mode)  # exactly ``mode``, whatever the umask took away
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes, mode: int | None = None) -> Path:
    with atomic_path(path, mode) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: Path, text: str, mode: int | None = None) -> Path:
    """``text`` in UTF-8, the whole of it or nothing."""
    return write_bytes_atomic(path, text.encode(), mode)
