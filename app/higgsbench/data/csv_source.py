"""Stream rows of a UCI-format HIGGS CSV (plain, gzip, or in a zip) in bounded memory, validating
as it goes. What the file is comes from its first bytes (filetype.inspect), never its name.

The real file is 2.6 GB compressed and 11 M rows, so it is never loaded whole: pyarrow's
streaming CSV reader parses blocks of a few MB into float32 chunks. Every chunk is checked
(finite values, 0/1 labels); when pyarrow itself rejects a block (wrong column count,
non-numeric text, a cut gzip stream), the file is re-read line by line from the last good
row to name the exact line and what is wrong with it. That slow path only runs on bad input.

Blank lines at the very end of a file (editors and some exports add them) are dropped on the
way into the parser; anywhere else a blank line is an error, so line numbers stay exact.

A line longer than MAX_LINE_BYTES is refused as it streams past, before it is held anywhere
whole: a file with no line ends (or one 1 GB line) would otherwise cost gigabytes to parse
and to explain.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from higgsbench.common.errors import HiggsbenchError, UsageError
from higgsbench.common.limits import no_link_loop
from higgsbench.data import filetype
from higgsbench.data.layout import COLUMNS

GZIP_MAGIC = b"\x1f\x8b"
BLOCK_BYTES = 4 << 20
LINE_ENDS = b"\r\n"  # pyarrow and the line-by-line reader both end lines at \n, \r\n or \r
# A HIGGS row is about 600 bytes; 1 MiB leaves room for any honest row (values written with
# thousands of digits) and stays well below BLOCK_BYTES, so pyarrow never sees a line that
# straddles its blocks.
MAX_LINE_BYTES = 1 << 20

# What pyarrow's float parser accepts (and so what the slow path must call a number): a sign,
# ASCII digits with an optional point or a point and digits, an optional exponent, with spaces
# or tabs around; "inf" or "infinity" in any case (which then fails as not finite). ASCII
# only: pyarrow refuses '１' or '٣', which \d and Python's float() would take for digits.
_NUMBER = re.compile(r"[ \t]*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t]*")
_INFINITY = re.compile(r"[ \t]*[+-]?inf(?:inity)?[ \t]*", re.IGNORECASE)
EMPTY_LINE = "the line is empty (or holds only commas); blank lines may only end the file"
TOO_LONG = (
    f"the line is longer than {MAX_LINE_BYTES >> 20} MiB ({MAX_LINE_BYTES} bytes), "
    "where a HIGGS row takes under 1 kB; is this a HIGGS CSV file?"
)
LABEL_RULE = "expected 0 (background) or 1 (signal) in the first column"
# What reading a damaged file raises: pyarrow's parse errors, a cut gzip stream, a bad zip
_READ_ERRORS = (pa.ArrowException, OSError, EOFError, zlib.error, zipfile.BadZipFile)


@dataclass
class Chunk:
    """A run of consecutive rows: labels (0/1 as float32) and the 28 features (float32)."""

    labels: np.ndarray
    features: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def read_higgs_csv(
    path: str | os.PathLike,
    max_rows: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> Iterator[Chunk]:
    """Yield validated chunks of the file in order, at most ``max_rows`` rows in all.

    ``on_progress(bytes_read, bytes_total)`` is called after each chunk with positions in the
    file on disk (compressed bytes for gzip), which is what a progress bar can show.
    Raises HiggsbenchError naming the file and line on any malformed input.
    """
    path = Path(path)
    no_link_loop(path)  # exists() says False for a loop: not "no such file"
    if not path.exists():
        raise UsageError(f"{path}: no such file (download it with `higgsbench data fetch`)")
    if path.is_dir():
        raise UsageError(
            f"{path}: is a directory, expected a HIGGS CSV file (.csv, .csv.gz or .zip)"
        )
    total_bytes = path.stat().st_size
    if total_bytes == 0:
        raise UsageError(f"{path}: the file is empty, expected HIGGS rows (label + 28 features)")

    data = filetype.inspect(path)  # HTML, an empty or foreign archive…: one line saying so
    files = contextlib.ExitStack()
    if data.kind == filetype.ZIP:
        stream, raw = files.enter_context(filetype.open_rows(data))
    else:  # pyarrow's own file and decompressor for the common case
        raw = files.enter_context(pa.OSFile(str(path), "rb"))
        stream = pa.CompressedInputStream(raw, "gzip") if data.kind == filetype.GZIP else raw
    rows_ok = 0
    try:
        for batch in _csv_reader(stream):
            chunk = _to_chunk(batch)
            _check_values(path, chunk, first_line=rows_ok + 1)
            if max_rows is not None and rows_ok + len(chunk) >= max_rows:
                keep = max_rows - rows_ok
                yield Chunk(chunk.labels[:keep], chunk.features[:keep])
                rows_ok += keep
                break
            rows_ok += len(chunk)
            if on_progress:
                on_progress(raw.tell(), total_bytes)
            yield chunk
    except (*_READ_ERRORS, _LineTooLong) as exc:
        raise _explain_failure(data, rows_ok, exc) from None
    finally:
        files.close()
    if on_progress:
        on_progress(total_bytes, total_bytes)
    if rows_ok == 0:
        raise UsageError(f"{path}: no rows found, expected HIGGS rows (label + 28 features)")


def _csv_reader(stream) -> pacsv.CSVStreamingReader:
    """pyarrow's streaming reader of HIGGS rows from ``stream`` (CSV bytes), as float32."""
    return pacsv.open_csv(
        pa.PythonFile(_WithoutTrailingBlankLines(stream), mode="r"),
        read_options=pacsv.ReadOptions(
            column_names=COLUMNS, block_size=BLOCK_BYTES, use_threads=True
        ),
        parse_options=pacsv.ParseOptions(
            # An empty line is an error, not something to skip: it would shift line numbers.
            ignore_empty_lines=False,
            # HIGGS has no quoting: a stray quote is an error, not the start of a field
            # that runs on over commas and lines.
            quote_char=False,
        ),
        convert_options=pacsv.ConvertOptions(column_types={name: pa.float32() for name in COLUMNS}),
    )


class _LineTooLong(Exception):
    """A line of more than MAX_LINE_BYTES went past; the slow path names it."""


class _WithoutTrailingBlankLines(io.RawIOBase):
    """``stream`` as it is, less the blank lines at its very end: every run of line ends is
    held back until more text follows it, and at the end only the last row's own line end
    is let through. A line longer than MAX_LINE_BYTES raises _LineTooLong before its bytes
    are handed on."""

    def __init__(self, stream):
        self._stream = stream
        self._ready = b""  # bytes that may be handed out
        self._held = b""  # line ends that may turn out to be trailing
        self._seen_text = False
        self._ended = False
        self._run = 0  # bytes of the line still open at the end of what was handed out

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = size if size and size > 0 else BLOCK_BYTES
        while not self._ready and not self._ended:
            data = self._stream.read(size)
            if not data:
                self._ended = True
                if self._seen_text:
                    self._ready = b"\r\n" if self._held.startswith(b"\r\n") else self._held[:1]
                break
            data = self._held + data
            text = data.rstrip(LINE_ENDS)
            self._held = data[len(text) :]
            self._seen_text = self._seen_text or bool(text)
            self._run = _open_line(text, self._run)
            self._ready = text
        out, self._ready = self._ready[:size], self._ready[size:]
        return out


def _open_line(text: bytes, run: int) -> int:
    """The length of the line still open at the end of ``text``, given ``run`` bytes of it
    before ``text``; _LineTooLong if any line reaches past MAX_LINE_BYTES. It jumps from one
    line end to the last one within MAX_LINE_BYTES of it (rfind runs at memory speed), so a
    block of short rows costs a few jumps, not a look at every row."""
    pos = 0
    while True:
        limit = pos + MAX_LINE_BYTES - run + 1  # a line end must come before this index
        end = max(text.rfind(b"\n", pos, limit), text.rfind(b"\r", pos, limit))
        if end < 0:
            if limit <= len(text):
                raise _LineTooLong(TOO_LONG)
            return run + len(text) - pos
        pos, run = end + 1, 0


def _to_chunk(batch: pa.RecordBatch) -> Chunk:
    columns = [batch.column(i).to_numpy(zero_copy_only=False) for i in range(batch.num_columns)]
    labels = columns[0].astype(np.float32, copy=False)
    features = np.stack(columns[1:], axis=1).astype(np.float32, copy=False)
    return Chunk(labels, features)


def _check_values(path: Path, chunk: Chunk, first_line: int) -> None:
    """Missing values, NaN, infinities and labels other than 0/1 are errors, with the line:
    the first such line of the chunk, whichever its fault, as the slow path would name it."""
    finite = np.isfinite(chunk.features).all(axis=1) & np.isfinite(chunk.labels)
    good = finite & ((chunk.labels == 0) | (chunk.labels == 1))
    if good.all():
        return
    i = int(np.argmin(good))
    where = f"{path}, line {first_line + i}"
    if np.isnan(chunk.features[i]).all() and np.isnan(chunk.labels[i]):
        # pyarrow reads a blank line as a row of missing values
        raise UsageError(f"{where}: {EMPTY_LINE}")
    if not np.isfinite(chunk.labels[i]):
        col = COLUMNS[0]
    elif finite[i]:
        raise UsageError(f"{where}: label is {chunk.labels[i]:g}, {LABEL_RULE}")
    else:
        col = COLUMNS[1 + int(np.argmin(np.isfinite(chunk.features[i])))]
    raise UsageError(
        f"{where}: column {col!r} is missing, NaN or infinite; every value must be a finite number"
    )


def _explain_failure(data: filetype.DataFile, rows_ok: int, exc: Exception) -> HiggsbenchError:
    """pyarrow rejected a block: re-read from the last good row to name the line and the fault."""
    path = data.path
    lineno = rows_ok
    blank = None  # the first of a run of blank lines: an error only if a row follows it
    seen_row = rows_ok > 0
    try:
        with filetype.open_rows(data) as (f, _):
            text = io.TextIOWrapper(f, encoding="utf-8", errors="replace", newline="")
            for _ in range(rows_ok):
                text.readline()
            # a line is read no further than it may be long: memory stays bounded
            while line := text.readline(MAX_LINE_BYTES + 2):
                lineno += 1
                if not line.strip("\r\n"):
                    blank = blank or lineno
                    continue
                if blank:
                    return UsageError(f"{path}, line {blank}: {EMPTY_LINE}")
                seen_row = True
                too_long = len(line.rstrip("\r\n")) > MAX_LINE_BYTES
                problem = TOO_LONG if too_long else _line_problem(line)
                if problem:
                    return UsageError(f"{path}, line {lineno}: {problem}")
    except (EOFError, OSError, zlib.error, zipfile.BadZipFile) as cut:
        return UsageError(
            f"{path}: {filetype.where(data)} is truncated or corrupt after line {lineno} ({cut}); "
            "the download was probably cut: fetch it again (`higgsbench data fetch --force`)"
        )
    if not seen_row:
        return UsageError(f"{path}: no rows found, expected HIGGS rows (label + 28 features)")
    return UsageError(
        f"{path}: could not be read as HIGGS CSV after line {rows_ok}: {_show(str(exc), 200)}"
    )


def _line_problem(line: str) -> str | None:
    """What is wrong with one CSV line, or None when it is a valid HIGGS row: the same rules
    as pyarrow's parser and _check_values, said for one line."""
    fields = line.rstrip("\r\n").split(",")
    if len(fields) != len(COLUMNS):
        return (
            f"expected {len(COLUMNS)} comma-separated values (label + 28 features), "
            f"found {len(fields)}"
        )
    for name, field in zip(COLUMNS, fields, strict=True):
        if not field.strip(" \t"):
            return f"column {name!r} is missing; every value must be a finite number"
        if _INFINITY.fullmatch(field):
            return f"column {name!r} is {_show(field)}; every value must be a finite number"
        if not _NUMBER.fullmatch(field):
            return f"column {name!r} is {_show(field)}, not a number"
        with np.errstate(over="ignore"):
            value = np.float32(float(field))  # as pyarrow reads it: beyond ±3.4e38 is infinite
        if not np.isfinite(value):
            return f"column {name!r} is {_show(field)}; every value must be a finite number"
        if name == COLUMNS[0] and value not in (0, 1):
            return f"label is {value:g}, {LABEL_RULE}"
    return None


def _show(text: str, limit: int = 40) -> str:
    """A value for a message: quoted with control characters escaped, and cut when long."""
    text = text.strip(" \t")
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")
