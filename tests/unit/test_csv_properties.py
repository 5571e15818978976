"""Property: whatever is done to genuine HIGGS rows, `prepare` either writes exactly the rows a
plain Python reading of the text finds, or refuses with one HiggsbenchError line naming the file,
and then leaves nothing behind. Never another exception, never a partial dataset.

The corruptions are the ones real files show: a download cut at any byte (plain or gzip), a
row cut short, stray bytes (NUL, invalid UTF-8, quotes, line ends), a value replaced by NaN,
infinity, nothing, 10 000 digits or digits of another script (full-width '１', Arabic-Indic
'٣'), a row padded to just under, at or just over the longest line the reader takes, and
\\n, \\r\\n and lone \\r line ends mixed.
"""

from __future__ import annotations

import gzip
import re
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from higgsbench.common.errors import HiggsbenchError
from higgsbench.data.csv_source import MAX_LINE_BYTES
from higgsbench.data.layout import COLUMNS
from higgsbench.data.prepare import prepare

ROWS = 200
ENDINGS = (b"\n", b"\r\n", b"\r")
ODD_VALUES = [
    b"nan",
    b"NaN",
    b"inf",
    b"-Infinity",
    b"",
    b" ",
    b"1" * 10_000,
    b"0." + b"0" * 10_000 + b"1",
    b"1e39",
    b"-1e-60",
    b"abc",
    b" 0.5\t",
    b"+.5",
    b"5.",
    b"1_0",
    b'"1.0"',
    b"0x10",
    b"\x00",
    b"\xff\xfe",
    b"2",
    b"-0",
    # digits of other scripts: Python's float() reads them, pyarrow and the reference do not
    "１".encode(),
    "٣".encode(),
    "1.５".encode(),
    "０e1".encode(),
]
STRAY = st.one_of(
    st.sampled_from([b"\x00", b"\xff", b"\xc3", b"\r", b"\n", b",", b'"', b" ", b"\x1f\x8b"]),
    st.binary(min_size=1, max_size=4),
)


@st.composite
def corrupted_files(draw, rows: list[bytes]):
    """(bytes on disk, "plain" | "gzip" | "cut gzip") for a corrupted copy of ``rows``."""
    rows = list(rows)
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(rows) - 1))
        fields = rows[i].split(b",")
        kind = draw(
            st.sampled_from(["cut columns", "odd value", "drop row", "blank row", "long row"])
        )
        if kind == "long row" and len(fields) < 2:
            continue  # an empty row has no value to lengthen
        if kind == "long row":  # a value of many digits: a row of MAX_LINE_BYTES - 1, … + 1
            j = draw(st.integers(1, len(fields) - 1))
            pad = MAX_LINE_BYTES + draw(st.integers(-1, 1)) - (len(rows[i]) - len(fields[j]))
            fields[j] = b"0." + b"0" * (pad - 3) + b"1"
            rows[i] = b",".join(fields)
        elif kind == "cut columns":
            rows[i] = b",".join(fields[: draw(st.integers(0, len(fields) - 1))])
        elif kind == "odd value":
            fields[draw(st.integers(0, len(fields) - 1))] = draw(st.sampled_from(ODD_VALUES))
            rows[i] = b",".join(fields)
        elif kind == "drop row":
            del rows[i]
        else:
            rows.insert(i, b"")
    style = draw(st.sampled_from(["\r\n", "\n", "\r", "mixed"]))
    if style == "mixed":
        ends = draw(st.lists(st.sampled_from(ENDINGS), min_size=len(rows), max_size=len(rows)))
    else:
        ends = [style.encode()] * len(rows)
    text = b"".join(row + end for row, end in zip(rows, ends, strict=True))
    text += draw(st.sampled_from([b"", b"\n", b"\r\n\r\n", b"\n\n\n"]))  # trailing blank lines
    if draw(st.booleans()):
        text = text[: -draw(st.integers(1, 300))]  # not strip(): its last row may stay whole
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(STRAY) + text[at:]
    if not draw(st.booleans()):
        return text, "plain"
    packed = gzip.compress(text)
    if draw(st.booleans()):
        return packed[: draw(st.integers(0, len(packed) - 1))], "cut gzip"
    return packed, "gzip"


# A HIGGS number as the reference reads it: optional sign, digits and point, optional exponent,
# spaces or tabs around. Written here independently of the reader.
NUMBER = re.compile(rb"[ \t]*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?[ \t]*")


def reference_rows(text: bytes) -> tuple[np.ndarray | None, int | None]:
    """(the rows a careful reader must find in ``text``, or None when it must refuse it;
    the number of the first line it must refuse, or None when no line is at fault)."""
    lines = re.split(rb"\r\n|\r|\n", text)
    while lines and lines[-1] == b"":  # the last line end and blank lines after the last row
        lines.pop()
    rows = []
    for lineno, line in enumerate(lines, 1):
        if len(line) > MAX_LINE_BYTES:
            return None, lineno
        fields = line.split(b",")
        if len(fields) != len(COLUMNS) or not all(NUMBER.fullmatch(f) for f in fields):
            return None, lineno
        with np.errstate(over="ignore"):
            values = np.array([float(f) for f in fields]).astype(np.float32)
        if not np.isfinite(values).all() or values[0] not in (0, 1):
            return None, lineno
        rows.append(values)
    return (np.array(rows) if len(rows) >= 10 else None), None  # 10: the fewest splits allow


def prepared_rows(out: Path) -> np.ndarray:
    tables = [pq.read_table(out / f"{split}.parquet") for split in ("train", "val", "test")]
    return np.concatenate(
        [np.stack([t.column(c).to_numpy() for c in COLUMNS], axis=1) for t in tables]
    )


@pytest.fixture
def genuine_rows(higgs_sample) -> list[bytes]:
    with gzip.open(higgs_sample, "rb") as f:
        return f.read().split(b"\r\n")[:ROWS]  # the sample's rows end in \r\n


@settings(
    max_examples=200,
    deadline=None,
    database=None,  # nothing written into the checkout; a failure prints its example
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_prepare_writes_exactly_the_valid_rows_or_refuses_cleanly(genuine_rows, data):
    raw, kind = data.draw(corrupted_files(genuine_rows), label="file")
    # a cut gzip stream must be refused, whatever the rows before the cut
    expected, bad_line = {
        "plain": lambda: reference_rows(raw),
        "gzip": lambda: reference_rows(gzip.decompress(raw)),
        "cut gzip": lambda: (None, None),
    }[kind]()
    with tempfile.TemporaryDirectory() as work:
        src = Path(work) / ("in.csv" if kind == "plain" else "in.csv.gz")
        src.write_bytes(raw)
        parent = Path(work) / "out"
        parent.mkdir()
        try:
            stats = prepare(src, parent / "p", show_progress=False)
        except HiggsbenchError as exc:
            message = str(exc)
            event(f"{kind}: refused, " + re.sub(r"line \d+|'.*'|\(.*\)|/\S+", "…", message)[:70])
            assert expected is None, f"refused a valid file: {message}"
            assert len(message.splitlines()) == 1 and str(src) in message, message
            # the slow path found no fault where the parser saw one: a rule said twice unlike
            assert "could not be read as HIGGS CSV" not in message, message
            named = re.search(r", line (\d+):", message)
            if named and kind != "cut gzip":
                assert int(named[1]) == bad_line, f"expected line {bad_line}: {message}"
            assert list(parent.iterdir()) == [], "partial output left behind"
            return
        event(f"{kind}: accepted")
        assert expected is not None, "accepted a file the reference refuses"
        assert sum(stats["rows"].values()) == len(expected)
        np.testing.assert_array_equal(prepared_rows(parent / "p"), expected)
        assert [p.name for p in parent.iterdir()] == ["p"]
