"""Is this UCI's HIGGS file? The first 11 rows of the real file are known exactly, and it has
11,000,000 rows.

The check keeps a digest, not the data: the sha256 of the first 11 rows as the float32 values
every engine trains on (label then the 28 features, row by row, little-endian), so the same rows
pass whether they come as CSV, gzip or zip, with LF or CRLF line ends.

An input that has as many rows as the UCI file claims to be it: its first rows must then match
(a shuffled, re-processed or damaged copy would change the test split, the file's last
500,000 rows as in Baldi et al., and with it every AUC compared with the paper). An input whose
first rows match is reported with its row count, so a copy that was cut short is seen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

import numpy as np

from higgsbench.common.errors import UsageError
from higgsbench.data.csv_source import Chunk

UCI_ROWS = 11_000_000
HEAD_ROWS = 11
# sha256 of the first 11 rows of UCI's HIGGS.csv as float32 (see head_digest)
HEAD_SHA256 = "c537eb074c94ff87bf3db94c8755039c8ed5727f84e1f008dae061369606b8b3"


def head_digest(labels: np.ndarray, features: np.ndarray) -> str:
    """sha256 of rows as little-endian float32, label first, row after row."""
    rows = np.column_stack([labels, features]).astype("<f4")
    return hashlib.sha256(rows.tobytes()).hexdigest()


def checked(
    chunks: Iterable[Chunk],
    source: str,
    report: dict,
    max_rows: int | None = None,
    uci_rows: int = UCI_ROWS,
) -> Iterator[Chunk]:
    """Pass ``chunks`` (at most ``max_rows`` rows of the input) through unchanged; when they
    end, fill ``report`` and raise HiggsbenchError if the input claims to be UCI's file
    (read whole, it has ``uci_rows`` rows) but does not start with its first rows."""
    head_labels: list[np.ndarray] = []
    head_features: list[np.ndarray] = []
    rows = 0
    for chunk in chunks:
        if rows < HEAD_ROWS:
            take = HEAD_ROWS - rows
            head_labels.append(chunk.labels[:take])
            head_features.append(chunk.features[:take])
        rows += len(chunk)
        yield chunk
    whole_file = max_rows is None or rows < max_rows  # else rows may follow that were not read
    head_matches = rows >= HEAD_ROWS and (
        head_digest(np.concatenate(head_labels), np.concatenate(head_features)) == HEAD_SHA256
    )
    report.update(
        checked=True,
        rows=rows,
        whole_file=whole_file,
        uci_rows=uci_rows,
        head_matches_uci=head_matches,
        uci_file=head_matches and whole_file and rows == uci_rows,
    )
    if whole_file and rows == uci_rows and not head_matches:
        raise UsageError(
            f"{source}: holds {rows:,} rows, as many as UCI's HIGGS file, but its first "
            f"{HEAD_ROWS} rows differ from UCI's: a shuffled, re-processed or damaged copy "
            "(fetch it again with `higgsbench data fetch`, or pass --no-verify to prepare it "
            "anyway)"
        )


def summary(report: dict) -> str | None:
    """One line for the command line about what ``checked`` found, or None when the input
    is not UCI's file and does not claim to be."""
    if not report.get("checked"):
        return "integrity not checked (--no-verify)" if report else None
    if report["uci_file"]:
        return (
            f"verified: UCI's HIGGS file, {report['rows']:,} rows, the first {HEAD_ROWS} "
            "exactly as published"
        )
    if report["head_matches_uci"]:
        read = "rows read (--rows)" if not report["whole_file"] else "rows"
        return (
            f"note: the first {HEAD_ROWS} rows are UCI's HIGGS file's; {report['rows']:,} "
            f"{read}, the full file has {report['uci_rows']:,}"
        )
    return None
