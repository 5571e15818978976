"""`data fetch` as UCI serves HIGGS today: higgs.zip, a zip that holds HIGGS.csv.gz, with the
legacy HIGGS.csv.gz address as the fallback. The genuine sample is served from a loopback
server (tests/test_fetch.py's RangeServer) inside zips of each layout: the member stored or
deflated, a .csv.gz or a plain .csv, sizes in the header or in a data descriptor after the data
(as a zip written to a pipe has them)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import zipfile

import numpy as np
import pyarrow.parquet as pq
import pytest

from higgsbench.data import fetch
from higgsbench.data.layout import COLUMNS
from tests.helpers import run_cli
from tests.test_fetch import RangeServer

SAMPLE_ROWS = 10_984
# name: (member name, compression, written to a pipe: sizes in a data descriptor)
LAYOUTS = {
    "stored gz": ("HIGGS.csv.gz", zipfile.ZIP_STORED, False),
    "deflated gz": ("HIGGS.csv.gz", zipfile.ZIP_DEFLATED, False),
    "deflated csv": ("HIGGS.csv", zipfile.ZIP_DEFLATED, False),
    "deflated gz, data descriptor": ("HIGGS.csv.gz", zipfile.ZIP_DEFLATED, True),
}


class _Pipe(io.RawIOBase):
    """Somewhere zipfile cannot seek back to: it writes each member's sizes after its data."""

    def __init__(self):
        self.data = bytearray()

    def writable(self):
        return True

    def write(self, b):
        self.data += b
        return len(b)


def zip_of(text: bytes, layout: str, gz: bytes | None = None) -> bytes:
    """``text`` (CSV) as a zip of ``layout``; ``gz`` is its gzip when already made."""
    name, method, piped = LAYOUTS[layout]
    member = (gz or gzip.compress(text, compresslevel=1)) if name.endswith(".gz") else text
    target = _Pipe() if piped else io.BytesIO()
    with zipfile.ZipFile(target, "w") as zf:
        zf.writestr(name, member, compress_type=method, compresslevel=1)
    return bytes(target.data) if piped else target.getvalue()


@pytest.fixture(scope="module")
def big(sample_text):
    """(text, zip of a layout) for the genuine sample 40 times over (439 k rows): far more
    than the --rows tests read, so stopping early shows in the bytes sent. Each layout's zip
    is made once."""
    text = sample_text * 40
    gz = gzip.compress(text, compresslevel=1)
    made: dict[str, bytes] = {}

    def zipped(layout: str) -> bytes:
        if layout not in made:
            made[layout] = zip_of(text, layout, gz)
        return made[layout]

    return text, zipped


def _rows_of(path) -> list[bytes]:
    data = path.read_bytes()
    return (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).splitlines()


def _prepared_rows(out) -> np.ndarray:
    tables = [pq.read_table(out / f"{s}.parquet") for s in ("train", "val", "test")]
    return np.concatenate(
        [np.stack([t.column(c).to_numpy() for c in COLUMNS], axis=1) for t in tables]
    )


def _sample_values(text: bytes) -> np.ndarray:
    return np.array(
        [[np.float32(float(v)) for v in line.split(b",")] for line in text.splitlines()],
        dtype=np.float32,
    )


def test_the_default_is_uci_s_zip_then_the_legacy_address():
    assert fetch.UCI_URLS == (
        "https://archive.ics.uci.edu/static/public/280/higgs.zip",
        "https://archive.ics.uci.edu/ml/machine-learning-databases/00280/HIGGS.csv.gz",
    )


@pytest.mark.parametrize("layout", ["stored gz", "deflated gz", "deflated csv"])
def test_a_zip_cut_midway_is_resumed_unpacked_and_prepared(
    sample_gz, sample_text, tmp_path, layout
):
    """The whole chain a new user runs: fetch higgs.zip over a link that drops twice, then
    prepare what fetch wrote; every genuine row arrives, in order, with its exact values."""
    served = zip_of(sample_text, layout, sample_gz)
    out = tmp_path / "data" / "HIGGS.csv.gz"
    with RangeServer(b"", cuts=2, cut_at=len(served) // 3, routes={"/higgs.zip": served}) as s:
        proc = run_cli("data", "fetch", "--url", f"{s.base}/higgs.zip", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert s.requests == [None, f"bytes={len(served) // 3}-", f"bytes={2 * (len(served) // 3)}-"]
    info = json.loads(proc.stdout)
    assert info["served_sha256"] == hashlib.sha256(served).hexdigest()
    assert info["served"].startswith(f"a zip archive holding {LAYOUTS[layout][0]}")
    # OUT is gzip whatever the zip held; a .csv.gz member is copied out byte for byte
    assert out.read_bytes()[:2] == b"\x1f\x8b"
    if layout.endswith("gz"):
        assert out.read_bytes() == sample_gz
    assert gzip.decompress(out.read_bytes()) == sample_text
    assert info["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert sorted(p.name for p in out.parent.iterdir()) == ["HIGGS.csv.gz", "HIGGS.csv.gz.sha256"]

    prepared = tmp_path / "prepared"
    run_cli("data", "prepare", out, "--out", prepared, check=True)
    np.testing.assert_array_equal(_prepared_rows(prepared), _sample_values(sample_text))


def test_out_zip_keeps_the_zip_and_prepare_reads_it(sample_gz, sample_text, tmp_path):
    served = zip_of(sample_text, "stored gz", sample_gz)
    out = tmp_path / "higgs.zip"
    with RangeServer(b"", cuts=1, cut_at=len(served) // 2, routes={"/higgs.zip": served}) as s:
        run_cli("data", "fetch", "--url", f"{s.base}/higgs.zip", "--out", out, check=True)
    assert out.read_bytes() == served
    proc = run_cli("data", "prepare", out, "--out", tmp_path / "prepared", check=True)
    assert '"train": 8788, "val": 1098, "test": 1098' in proc.stdout
    np.testing.assert_array_equal(
        _prepared_rows(tmp_path / "prepared"), _sample_values(sample_text)
    )


def test_a_cut_zip_of_unannounced_size_is_kept_and_resumed(sample_gz, sample_text, tmp_path):
    """No Content-Length: a cut cannot be told from the end until the zip is opened. The
    part file is kept, the command fails saying so, and running it again resumes."""
    served = zip_of(sample_text, "deflated gz", sample_gz)
    out = tmp_path / "HIGGS.csv.gz"
    with RangeServer(served, cuts=1, cut_at=len(served) // 2, no_length=True) as s:
        url = f"{s.base}/higgs.zip"
        first = run_cli("data", "fetch", "--url", url, "--out", out)
        assert first.returncode == 2
        assert "a zip archive that is truncated or damaged" in first.stderr
        assert "higgs.zip.part is kept: run again to resume it" in first.stderr
        run_cli("data", "fetch", "--url", url, "--out", out, check=True)
    assert s.requests == [None, f"bytes={len(served) // 2}-"]
    assert out.read_bytes() == sample_gz
    assert not (tmp_path / "higgs.zip.part").exists()


def test_a_whole_download_of_a_broken_zip_is_removed(sample_gz, sample_text, tmp_path):
    """The server announced the size and sent all of it, but the zip has no end (it was cut
    on the server): nothing to resume, so the .part file goes, with the reason."""
    served = zip_of(sample_text, "stored gz", sample_gz)[: len(sample_gz) // 2]
    with RangeServer(served) as s:
        proc = run_cli("data", "fetch", "--url", s.url, "--out", tmp_path / "HIGGS.csv.gz")
    assert proc.returncode == 2
    message = proc.stderr.strip().splitlines()[-1]
    assert "a zip archive that is truncated or damaged" in message
    assert "the download was removed" in message
    assert list(tmp_path.iterdir()) == []


def test_a_gzip_is_not_kept_under_a_zip_name(sample_gz, tmp_path):
    with RangeServer(sample_gz) as s:
        proc = run_cli("data", "fetch", "--url", s.url, "--out", tmp_path / "higgs.zip")
    assert proc.returncode == 2
    assert "gzip-compressed CSV, not a zip: name --out" in proc.stderr
    assert not (tmp_path / "higgs.zip").exists()


@pytest.mark.parametrize(("path", "status"), [("missing", 404), ("gone", 410)])
def test_a_gone_address_falls_back_to_the_next(sample_gz, tmp_path, path, status):
    out = tmp_path / "HIGGS.csv.gz"
    with RangeServer(sample_gz) as s:
        proc = run_cli(
            "data", "fetch", "--url", f"{s.base}/{path}/higgs.zip", "--url", s.url, "--out", out
        )
    assert proc.returncode == 0, proc.stderr
    assert f"HTTP {status}" in proc.stderr and f"trying {s.url}" in proc.stderr
    assert out.read_bytes() == sample_gz
    assert json.loads(proc.stdout)["url"] == s.url


def test_every_address_failing_names_each(sample_gz, tmp_path):
    with RangeServer(sample_gz) as s:
        proc = run_cli(
            "data",
            "fetch",
            "--url",
            f"{s.base}/missing/higgs.zip",
            "--url",
            f"{s.base}/page",
            "--out",
            tmp_path / "HIGGS.csv.gz",
        )
    assert proc.returncode == 2
    message = proc.stderr.strip().splitlines()[-1]
    assert "missing/higgs.zip: HTTP 404" in message and "/page: the server sent an HTML" in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_rows_stream_through_the_zip_and_the_gzip_and_stop_early(big, tmp_path, layout):
    text, zipped = big
    served = zipped(layout)
    out = tmp_path / "HIGGS-head.csv.gz"
    with RangeServer(served) as s:
        proc = run_cli("data", "fetch", "--url", s.url, "--out", out, "--rows", 1000)
    assert proc.returncode == 0, proc.stderr
    assert _rows_of(out) == text.splitlines()[:1000]
    assert json.loads(proc.stdout)["rows"] == 1000
    assert s.bytes_sent < len(served) / 4, "the download did not stop early"


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_rows_beyond_the_end_of_a_zipped_file_keep_every_row(
    sample_gz, sample_text, tmp_path, layout
):
    served = zip_of(sample_text, layout, sample_gz)
    out = tmp_path / "HIGGS-head.csv"  # plain CSV, as the name says
    with RangeServer(served) as s:
        proc = run_cli("data", "fetch", "--url", s.url, "--out", out, "--rows", 20_000)
    assert proc.returncode == 0, proc.stderr
    assert _rows_of(out) == sample_text.splitlines()
    assert json.loads(proc.stdout)["rows"] == SAMPLE_ROWS


@pytest.mark.parametrize("layout", ["stored gz", "deflated csv"])
def test_rows_from_a_zip_cut_midway_is_an_error_and_writes_nothing(big, tmp_path, layout):
    _, zipped = big
    served = zipped(layout)
    with RangeServer(served, cuts=1, cut_at=len(served) // 8) as s:
        proc = run_cli(
            "data", "fetch", "--url", s.url, "--out", tmp_path / "h.csv.gz", "--rows", 400_000
        )
    assert proc.returncode == 2, proc.stdout
    message = proc.stderr.strip().splitlines()[-1]
    assert "the download was cut" in message and "of the 400000 asked for" in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("rows", [None, 100])
def test_a_zip_holding_something_else_is_not_data(tmp_path, rows):
    served = io.BytesIO()
    with zipfile.ZipFile(served, "w") as zf:
        zf.writestr("HIGGS.csv", b"<!DOCTYPE html><html>Not here</html>")
    extra = ["--rows", rows] if rows else []
    with RangeServer(served.getvalue()) as s:
        proc = run_cli("data", "fetch", "--url", s.url, "--out", tmp_path / "h.csv.gz", *extra)
    assert proc.returncode == 2
    message = proc.stderr.strip().splitlines()[-1]
    assert "a zip archive whose member HIGGS.csv is an HTML page" in message
    assert list(tmp_path.iterdir()) == []
