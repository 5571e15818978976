"""What a data file is, from its first bytes, never its name.

HIGGS comes as plain CSV, as gzip-compressed CSV (UCI's HIGGS.csv.gz) or as a zip holding one
of those (UCI's higgs.zip since 2023). Anything else that ends up where data is expected (a web
page saved in place of the file, an empty or foreign archive) is named for what it is, in one
line, before a parser reports a confusing first line.
"""

from __future__ import annotations

import contextlib
import gzip
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from higgsbench.common.errors import HiggsbenchError, UsageError

GZIP, ZIP, TEXT = "gzip", "zip", "text"  # the kinds that can hold HIGGS rows
HEAD_BYTES = 4096  # enough to tell every kind below apart
EXPECTED = "expected HIGGS rows as CSV, gzip-compressed CSV, or a zip holding one of those"
_BOM = b"\xef\xbb\xbf"

# (magic, offset, what it is): formats someone may well hand us instead of HIGGS CSV
_FOREIGN = (
    (b"PK\x05\x06", 0, "an empty zip archive (it holds no files)"),
    (b"BZh", 0, "a bzip2-compressed file"),
    (b"\xfd7zXZ\x00", 0, "an xz-compressed file"),
    (b"\x28\xb5\x2f\xfd", 0, "a zstd-compressed file"),
    (b"7z\xbc\xaf\x27\x1c", 0, "a 7-Zip archive"),
    (b"Rar!\x1a\x07", 0, "a RAR archive"),
    (b"ustar", 257, "a tar archive"),
    (b"PAR1", 0, "a Parquet file"),
    (b"%PDF", 0, "a PDF document"),
    (b"\x89HDF", 0, "an HDF5 file"),
    (b"\x93NUMPY", 0, "a NumPy array file"),
    (b"\x89PNG", 0, "a PNG image"),
)
# The first line of a HIGGS CSV: numbers and commas only (signs, points, exponents, blanks).
_CSV_LINE = re.compile(rb"[0-9eE+\-., \t]*,[0-9eE+\-., \t]*\r?")


def sniff(head: bytes) -> tuple[str, str]:
    """(kind, what it is) for a file that starts with ``head``: kind is GZIP, ZIP or TEXT for
    what may hold HIGGS rows, "other" for anything else; "what it is" is worded for a message
    ("an HTML page", "a tar archive", …)."""
    if not head:
        return "other", "an empty file"
    if head.startswith(b"\x1f\x8b"):
        return GZIP, "gzip-compressed data"
    if head.startswith(b"PK\x03\x04"):
        return ZIP, "a zip archive"
    for magic, offset, what in _FOREIGN:
        if head[offset : offset + len(magic)] == magic:
            return "other", what
    text = head.removeprefix(_BOM).lstrip()
    lower = text[:512].lower()
    if lower.startswith(b"<"):
        if lower.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<!--")):
            return "other", "an HTML page"
        if lower.startswith(b"<?xml"):
            return "other", "an XML document"
        return "other", "markup (an HTML or XML page)"
    if lower.startswith((b"{", b"[")):
        return "other", "JSON text"
    if not _is_text(head):
        return "other", f"binary data of an unknown kind (it starts {head[:8].hex(' ')})"
    return TEXT, "plain text"


def looks_like_csv(head: bytes) -> bool:
    """Whether the first line of ``head`` (text) could be a HIGGS row: numbers and commas."""
    first = head.removeprefix(_BOM).split(b"\n", 1)[0]
    return bool(_CSV_LINE.fullmatch(first))


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # only a character cut by the end of ``head``
    return True


class Damaged(HiggsbenchError):
    """A zip whose structure is broken: most often a download that was cut."""


@dataclass
class DataFile:
    """What ``inspect`` found: the outer kind, and for a zip the member that holds the rows
    and that member's kind (GZIP or TEXT)."""

    path: Path
    kind: str  # GZIP, ZIP or TEXT
    member: str | None = None
    member_kind: str | None = None

    @property
    def rows_kind(self) -> str:
        """GZIP or TEXT: how the rows themselves are stored (inside the zip, for a zip)."""
        return self.member_kind if self.kind == ZIP else self.kind

    def describe(self) -> str:
        if self.kind == ZIP:
            inner = "gzip-compressed CSV" if self.member_kind == GZIP else "CSV"
            return f"a zip archive holding {self.member} ({inner})"
        return "gzip-compressed CSV" if self.kind == GZIP else "CSV"


def inspect(path: str | Path) -> DataFile:
    """Tell what ``path`` holds from its first bytes; raise HiggsbenchError, in one line
    saying what it is, for anything that cannot hold HIGGS rows."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    kind, what = sniff(head)
    if kind == "other":
        raise UsageError(f"{path}: {what}, not HIGGS data; {EXPECTED}")
    if kind == GZIP:
        _check_gzip_content(path, head, "")
        return DataFile(path, GZIP)
    if kind == TEXT:
        return DataFile(path, TEXT)
    with _open_zip(path) as zf:
        info = _choose_member(path, zf)
        try:
            with zf.open(info) as m:
                member_head = m.read(HEAD_BYTES)
        except (NotImplementedError, RuntimeError) as exc:  # a method or encryption we lack
            raise UsageError(
                f"{path}: a zip archive whose member {info.filename} cannot be read ({exc}); "
                f"{EXPECTED}"
            ) from None
        except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
            raise _damaged_zip(path, exc) from None
    member_kind, what = sniff(member_head)
    if member_kind not in (GZIP, TEXT):
        raise UsageError(
            f"{path}: a zip archive whose member {info.filename} is {what}, not HIGGS data; "
            f"{EXPECTED}"
        )
    if member_kind == GZIP:
        _check_gzip_content(path, member_head, f"a zip archive whose member {info.filename} is ")
    return DataFile(path, ZIP, info.filename, member_kind)


def _check_gzip_content(path: Path, head: bytes, prefix: str) -> None:
    """A gzip of something other than text (a .tar.gz, a gzip of a zip) is named as such.
    A gzip whose start cannot be decompressed is left to the reader, which names the line."""
    try:
        inner = zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(head, HEAD_BYTES)
    except zlib.error:
        return
    kind, what = sniff(inner)
    if inner and kind != TEXT:
        what = what.removeprefix("an ").removeprefix("a ")
        raise UsageError(f"{path}: {prefix}a gzip-compressed {what}, not HIGGS data; {EXPECTED}")


@contextlib.contextmanager
def _open_zip(path: Path) -> Iterator[zipfile.ZipFile]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise _damaged_zip(path, exc) from None
    with zf:
        yield zf


def _damaged_zip(path: Path, exc: Exception) -> Damaged:
    return Damaged(
        f"{path}: a zip archive that is truncated or damaged ({exc}); if it is a download "
        "that was cut, run `higgsbench data fetch` again"
    )


def _choose_member(path: Path, zf: zipfile.ZipFile) -> zipfile.ZipInfo:
    """The one file in the archive, or the one .csv / .csv.gz among several."""
    files = [i for i in zf.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
    if not files:
        raise UsageError(f"{path}: an empty zip archive (it holds no files); {EXPECTED}")
    if len(files) > 1:
        csv = [i for i in files if i.filename.lower().endswith((".csv", ".csv.gz"))]
        if len(csv) != 1:
            names = ", ".join(i.filename for i in files[:5]) + (", …" if len(files) > 5 else "")
            raise UsageError(
                f"{path}: a zip archive holding {len(files)} files ({names}), expected one "
                "HIGGS .csv or .csv.gz"
            )
        files = csv
    return files[0]


@contextlib.contextmanager
def open_rows(data: DataFile) -> Iterator[tuple[BinaryIO, BinaryIO]]:
    """(CSV bytes, the file on disk) for any kind ``inspect`` accepted: gzip is decompressed
    and a zip's member opened. The file on disk's ``tell()`` is the position a progress bar
    can show. Reading raises zipfile.BadZipFile (a zip member's CRC), EOFError or zlib.error
    (a cut gzip stream) on damaged data."""
    with contextlib.ExitStack() as stack:
        raw = stack.enter_context(open(data.path, "rb"))
        stream: BinaryIO = raw
        if data.kind == ZIP:
            zf = stack.enter_context(zipfile.ZipFile(raw))
            stream = stack.enter_context(zf.open(data.member))
        if data.rows_kind == GZIP:
            stream = stack.enter_context(gzip.GzipFile(fileobj=stream, mode="rb"))
        yield stream, raw


@contextlib.contextmanager
def open_payload(data: DataFile) -> Iterator[BinaryIO]:
    """The bytes that hold the rows, as stored: the file itself, or a zip's member (still
    gzip-compressed when it is a .csv.gz)."""
    with open(data.path, "rb") as raw:
        if data.kind != ZIP:
            yield raw
            return
        with zipfile.ZipFile(raw) as zf, zf.open(data.member) as member:
            yield member


def where(data: DataFile) -> str:
    """How a message names the stream it read rows from."""
    if data.kind == ZIP:
        return f"the zip member {data.member}"
    return "the gzip stream" if data.kind == GZIP else "the file"
