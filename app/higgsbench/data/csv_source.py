"""Stream rows of a UCI-format HIGGS CSV (plain or gzip) in bounded memory, validating as it goes.

The real file is 2.6 GB compressed and 11 M rows, so it is never loaded whole: pyarrow's
streaming CSV reader parses blocks of a few MB into float32 chunks. Every chunk is checked
(finite values, 0/1 labels); when pyarrow itself rejects a block (wrong column count,
non-numeric text, a cut gzip stream), the file is re-read line by line from the last good
row to name the exact line and what is wrong with it. That slow path only runs on bad input.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from higgsbench.errors import HiggsbenchError
from higgsbench.features import COLUMNS

GZIP_MAGIC = b"\x1f\x8b"
BLOCK_BYTES = 4 << 20


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
    if not path.exists():
        raise HiggsbenchError(f"{path}: no such file (download it with `higgsbench data fetch`)")
    if path.is_dir():
        raise HiggsbenchError(
            f"{path}: is a directory, expected a HIGGS CSV file (.csv or .csv.gz)"
        )
    total_bytes = path.stat().st_size
    if total_bytes == 0:
        raise HiggsbenchError(
            f"{path}: the file is empty, expected HIGGS rows (label + 28 features)"
        )

    raw = pa.OSFile(str(path), "rb")
    stream = pa.CompressedInputStream(raw, "gzip") if is_gzip(path) else raw
    rows_ok = 0
    try:
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(
                column_names=COLUMNS, block_size=BLOCK_BYTES, use_threads=True
            ),
            # An empty line is an error, not something to skip: it would shift line numbers.
            parse_options=pacsv.ParseOptions(ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.float32() for name in COLUMNS}
            ),
        )
        for batch in reader:
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
    except (pa.ArrowInvalid, OSError) as exc:
        raise _explain_failure(path, rows_ok, exc) from None
    finally:
        raw.close()
    if on_progress:
        on_progress(total_bytes, total_bytes)
    if rows_ok == 0:
        raise HiggsbenchError(f"{path}: no rows found, expected HIGGS rows (label + 28 features)")


def _to_chunk(batch: pa.RecordBatch) -> Chunk:
    columns = [batch.column(i).to_numpy(zero_copy_only=False) for i in range(batch.num_columns)]
    labels = columns[0].astype(np.float32, copy=False)
    features = np.stack(columns[1:], axis=1).astype(np.float32, copy=False)
    return Chunk(labels, features)


def _check_values(path: Path, chunk: Chunk, first_line: int) -> None:
    """Missing values, NaN, infinities and labels other than 0/1 are errors, with the line."""
    finite = np.isfinite(chunk.features).all(axis=1) & np.isfinite(chunk.labels)
    if not finite.all():
        i = int(np.argmin(finite))
        if np.isfinite(chunk.labels[i]):
            col = COLUMNS[1 + int(np.argmin(np.isfinite(chunk.features[i])))]
        else:
            col = COLUMNS[0]
        raise HiggsbenchError(
            f"{path}, line {first_line + i}: column {col!r} is missing, NaN or infinite; "
            "every value must be a finite number"
        )
    good_label = (chunk.labels == 0) | (chunk.labels == 1)
    if not good_label.all():
        i = int(np.argmin(good_label))
        raise HiggsbenchError(
            f"{path}, line {first_line + i}: label is {chunk.labels[i]:g}, expected 0 "
            "(background) or 1 (signal) in the first column"
        )


def _explain_failure(path: Path, rows_ok: int, exc: Exception) -> HiggsbenchError:
    """pyarrow rejected a block: re-read from the last good row to name the line and the fault."""
    opener = gzip.open if is_gzip(path) else open
    lineno = rows_ok
    try:
        with opener(path, "rb") as f:
            text = io.TextIOWrapper(f, encoding="utf-8", errors="replace", newline="")
            for _ in range(rows_ok):
                text.readline()
            for line in text:
                lineno += 1
                problem = _line_problem(line)
                if problem:
                    return HiggsbenchError(f"{path}, line {lineno}: {problem}")
    except (EOFError, OSError, zlib.error) as cut:
        return HiggsbenchError(
            f"{path}: the gzip stream is truncated or corrupt after line {lineno} ({cut}); "
            "the download was probably cut: run `higgsbench data fetch` again to resume it"
        )
    if lineno == 0:
        return HiggsbenchError(f"{path}: no rows found, expected HIGGS rows (label + 28 features)")
    return HiggsbenchError(f"{path}: could not be read as HIGGS CSV after line {rows_ok}: {exc}")


def _line_problem(line: str) -> str | None:
    """What is wrong with one CSV line, or None when it is a valid HIGGS row."""
    fields = line.rstrip("\r\n").split(",")
    if len(fields) != len(COLUMNS):
        return (
            f"expected {len(COLUMNS)} comma-separated values (label + 28 features), "
            f"found {len(fields)}"
        )
    for name, field in zip(COLUMNS, fields, strict=True):
        try:
            value = float(field)
        except ValueError:
            return f"column {name!r} is {field.strip()!r}, not a number"
        if not math.isfinite(value):
            return f"column {name!r} is {field.strip()!r}; every value must be a finite number"
    return None
