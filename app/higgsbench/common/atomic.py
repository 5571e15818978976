"""Files written whole or not at all: a temporary file beside the target, renamed over it.

A reader (another process, a rerun after a crash, a fetch from a remote node) sees either the
old file or the new one, never half of one. The temporary file lives in the target's
directory, so the rename stays on one file system and is atomic.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
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


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst`` unless something is at ``dst``: FileExistsError then. The
    kernel checks and renames in one step (Linux renameat2 RENAME_NOREPLACE, macOS renamex_np
    RENAME_EXCL), so a directory someone makes at ``dst`` meanwhile is never replaced — a
    plain rename would replace an empty one. Where neither exists (another system, or a file
    system that refuses the flag), it checks and renames, which leaves that moment open."""
    rename = _exclusive_rename()
    if rename is not None:
        if rename(os.fsencode(src), os.fsencode(dst)) == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise FileExistsError(err, os.strerror(err), str(dst))
        if err not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise OSError(err, os.strerror(err), str(src), None, str(dst))
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
    os.rename(src, dst)


@functools.cache
def _exclusive_rename():
    """``f(src, dst) -> 0 or -1`` renaming without replacing, from the C library; or None."""
    libc = ctypes.CDLL(None, use_errno=True)
    if hasattr(libc, "renameat2"):  # Linux, glibc ≥ 2.28
        at_fdcwd, noreplace = -100, 1
        renameat2 = libc.renameat2
        renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
        renameat2.argtypes += [ctypes.c_uint]
        return lambda src, dst: renameat2(at_fdcwd, src, at_fdcwd, dst, noreplace)
    if hasattr(libc, "renamex_np"):  # macOS
        excl = 0x4
        renamex_np = libc.renamex_np
        renamex_np.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
        return lambda src, dst: renamex_np(src, dst, excl)
    return None
