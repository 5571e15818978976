"""Every file of the package is written whole or not at all, through one helper."""

from __future__ import annotations

import ctypes
import errno
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from higgsbench.common import atomic
from higgsbench.common.atomic import atomic_path, write_bytes_atomic, write_text_atomic
from tests.conftest import REPO

PACKAGE = REPO / "app" / "higgsbench"


def test_a_file_is_replaced_whole_and_nothing_is_left_beside_it(tmp_path):
    target = tmp_path / "sub" / "result.json"
    write_text_atomic(target, "first\n")
    write_text_atomic(target, "second ✓\n")
    assert target.read_text(encoding="utf-8") == "second ✓\n"
    write_bytes_atomic(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert [p.name for p in target.parent.iterdir()] == ["result.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    target = tmp_path / "bench.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.exists() and not target.samefile(tmp)
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]


# A child whose files may not grow past 64 KiB (RLIMIT_FSIZE): a write beyond that fails
# with EFBIG after the first 64 KiB went to disk, as when a disk fills up in mid-write,
# however the writer writes. Python ignores SIGXFSZ, so the write raises instead of killing it.
_WRITE_PAST_THE_LIMIT = """
import errno, resource, sys
from pathlib import Path
from higgsbench.common.atomic import write_text_atomic
resource.setrlimit(resource.RLIMIT_FSIZE, (65536, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    write_text_atomic(Path(sys.argv[1]), "new " * 100_000)
except OSError as e:
    print("interrupted:", errno.errorcode[e.errno])
"""


def test_a_write_interrupted_midway_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old")
    proc = subprocess.run(
        [sys.executable, "-c", _WRITE_PAST_THE_LIMIT, str(target)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "interrupted: EFBIG" in proc.stdout, proc
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_a_write_interrupted_at_the_rename_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path, monkeypatch
):
    target = tmp_path / "result.json"
    target.write_text("old")

    def power_cut(*args):
        raise OSError("the rename did not happen")

    monkeypatch.setattr(os, "replace", power_cut)
    with pytest.raises(OSError, match="rename did not happen"):
        write_text_atomic(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_a_private_file_is_private_from_its_first_byte(tmp_path):
    target = tmp_path / "secret"
    with atomic_path(target, mode=0o600) as tmp:
        assert tmp.stat().st_mode & 0o777 == 0o600  # before anything is written
        tmp.write_text("s3cret\n")
    assert target.stat().st_mode & 0o777 == 0o600
    target.chmod(0o644)
    write_text_atomic(target, "new\n", mode=0o600)  # a replaced file does not keep the old mode
    assert target.stat().st_mode & 0o777 == 0o600


def test_without_a_mode_the_umask_decides(tmp_path):
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "report.md", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "report.md").stat().st_mode & 0o777 == 0o644


def test_no_module_renames_files_into_place_by_itself():
    """os.replace and Path.rename belong to atomic.py; what else renames says why."""
    allowed = {
        "common/atomic.py",
        # directories (the prepared dataset is swapped in whole) and the resumable
        # download (OUT.part is kept across runs to continue it), not temporary files
        "data/writer.py",
        "data/fetch.py",
        # a set of finished files (a report, a sweep's plots) moved into place together,
        # the files they replace put aside until every one is in place
        "common/paths.py",
    }
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if re.search(r"os\.replace\(|os\.rename\(|\.rename\(", path.read_text())
        and str(path.relative_to(PACKAGE)) not in allowed
    ]
    assert not offenders


def _kernel_refuses_the_flag(src: bytes, dst: bytes) -> int:
    """renameat2 on a file system without RENAME_NOREPLACE: -1, errno EINVAL."""
    ctypes.set_errno(errno.EINVAL)
    return -1


@pytest.fixture(params=["kernel", "no flag in libc", "file system refuses the flag"])
def rename_way(request, monkeypatch):
    """rename_noreplace by each way it has: the kernel's exclusive rename, and the check-then-
    rename it falls back to where the C library or the file system has none."""
    if request.param == "no flag in libc":
        monkeypatch.setattr(atomic, "_exclusive_rename", lambda: None)
    elif request.param == "file system refuses the flag":
        monkeypatch.setattr(atomic, "_exclusive_rename", lambda: _kernel_refuses_the_flag)
    else:
        assert atomic._exclusive_rename() is not None  # Linux, glibc >= 2.28
    return request.param


def test_rename_noreplace_moves_a_directory_where_nothing_is(tmp_path, monkeypatch, rename_way):
    src, dst = tmp_path / "partial", tmp_path / "run"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_text("made")
    atomic.rename_noreplace(src, dst)
    assert not src.exists() and (dst / "sub" / "f").read_text() == "made"
    monkeypatch.chdir(tmp_path)  # names relative to the working directory, too
    atomic.rename_noreplace(Path("run"), Path("moved"))
    assert not dst.exists() and (tmp_path / "moved" / "sub" / "f").read_text() == "made"


def test_rename_noreplace_never_replaces_what_is_there(tmp_path, rename_way):
    """A file, an empty directory (which a plain rename would replace) or a dangling link at
    the target: FileExistsError naming it, and both sides as they were."""
    src = tmp_path / "partial"
    src.mkdir()
    (src / "f").write_text("new")
    targets = {"file": tmp_path / "file", "empty dir": tmp_path / "empty", "link": tmp_path / "ln"}
    targets["file"].write_text("theirs")
    targets["empty dir"].mkdir()
    targets["link"].symlink_to(tmp_path / "nowhere")
    for what, dst in targets.items():
        with pytest.raises(FileExistsError) as refused:
            atomic.rename_noreplace(src, dst)
        assert refused.value.errno == errno.EEXIST and refused.value.filename == str(dst), what
        assert (src / "f").read_text() == "new", what
    assert targets["file"].read_text() == "theirs"
    assert targets["empty dir"].is_dir() and not any(targets["empty dir"].iterdir())
    assert targets["link"].is_symlink()


def test_rename_noreplace_reports_another_failure_with_both_names(tmp_path):
    """The kernel's own errors (here: no such source) are raised as they are, not taken for a
    file system without the flag."""
    with pytest.raises(FileNotFoundError) as failed:
        atomic.rename_noreplace(tmp_path / "missing", tmp_path / "run")
    assert failed.value.errno == errno.ENOENT
    assert (failed.value.filename, failed.value.filename2) == (
        str(tmp_path / "missing"),
        str(tmp_path / "run"),
    )
    assert not (tmp_path / "run").exists()
