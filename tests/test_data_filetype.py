"""`data prepare` reads .csv, .csv.gz and a .zip holding one of those, told from the first bytes,
never the name; anything else (a web page saved in place of the data, an empty or foreign
archive) gets one line saying what it is, and exit status 2."""

from __future__ import annotations

import bz2
import gzip
import io
import tarfile
import zipfile

import numpy as np
import pytest

from higgsbench.common.errors import HiggsbenchError
from higgsbench.data.csv_source import read_higgs_csv
from higgsbench.data.filetype import sniff
from tests.helpers import run_cli

SAMPLE_ROWS = 10_984


def _zip(*members: tuple[str, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members:
            zf.writestr(name, data, compress_type=method, compresslevel=1)
    return out.getvalue()


def _tar_gz(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tf:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _read(path) -> np.ndarray:
    chunks = list(read_higgs_csv(path))
    return np.column_stack(
        [np.concatenate([c.labels for c in chunks]), np.concatenate([c.features for c in chunks])]
    )


# name: (file name, builder(sample_gz, sample_text) -> bytes); the names are chosen to mislead
GOOD = {
    "zip of a stored .csv.gz": (
        "higgs.zip",
        lambda gz, text: _zip(("HIGGS.csv.gz", gz), method=zipfile.ZIP_STORED),
    ),
    "zip of a deflated .csv": ("higgs.zip", lambda gz, text: _zip(("HIGGS.csv", text))),
    "zip under a .csv.gz name": ("HIGGS.csv.gz", lambda gz, text: _zip(("HIGGS.csv.gz", gz))),
    "gzip under a .csv name": ("HIGGS.csv", lambda gz, text: gz),
    "plain CSV under a .zip name": ("higgs.zip", lambda gz, text: text),
    "zip with a folder and a readme": (
        "higgs.zip",
        lambda gz, text: _zip(("higgs/", b""), ("higgs/README.txt", b"hi"), ("higgs/a.csv", text)),
    ),
}


@pytest.mark.parametrize("case", GOOD)
def test_every_kind_of_higgs_file_is_read_by_its_bytes(sample_gz, sample_text, tmp_path, case):
    name, build = GOOD[case]
    path = tmp_path / name
    path.write_bytes(build(sample_gz, sample_text))
    expected = np.array(
        [[np.float32(float(v)) for v in line.split(b",")] for line in sample_text.splitlines()],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(_read(path), expected)


def test_prepare_reads_a_zip_through_the_command_line(sample_gz, tmp_path):
    src = tmp_path / "higgs.zip"
    src.write_bytes(_zip(("HIGGS.csv.gz", sample_gz), method=zipfile.ZIP_STORED))
    proc = run_cli("data", "prepare", src, "--out", tmp_path / "prepared", check=True)
    assert '"train": 8788, "val": 1098, "test": 1098' in proc.stdout


HTML = b"<!DOCTYPE html>\n<html><head><title>UCI Machine Learning Repository</title></head></html>"
# name: (file name, bytes, what the message must say it is)
BAD = {
    "HTML page": ("HIGGS.csv.gz", HTML, "an HTML page"),
    "HTML page with a BOM": ("HIGGS.csv", b"\xef\xbb\xbf\n  <html><body>x</body></html>", "HTML"),
    "XML": ("HIGGS.csv", b'<?xml version="1.0"?><Error>NoSuchKey</Error>', "an XML document"),
    "JSON": ("HIGGS.csv", b'{"error": "not found"}', "JSON text"),
    "empty zip": ("higgs.zip", _zip(), "an empty zip archive"),
    "zip of a folder only": ("higgs.zip", _zip(("higgs/", b"")), "an empty zip archive"),
    "zip of two CSVs": (
        "higgs.zip",
        _zip(("a.csv", b"1,2\n"), ("b.csv", b"1,2\n")),
        "a zip archive holding 2 files (a.csv, b.csv), expected one",
    ),
    "zip of a PDF": (
        "higgs.zip",
        _zip(("HIGGS.csv", b"%PDF-1.7\n...")),
        "a zip archive whose member HIGGS.csv is a PDF document",
    ),
    "zip of an HTML page in gzip": (
        "higgs.zip",
        _zip(("HIGGS.csv.gz", gzip.compress(HTML))),
        "a zip archive whose member HIGGS.csv.gz is a gzip-compressed HTML page",
    ),
    "zip in a zip": (
        "higgs.zip",
        _zip(("inner.zip", _zip(("HIGGS.csv", b"1,2\n")))),
        "whose member inner.zip is a zip archive",
    ),
    "cut zip": ("higgs.zip", None, "a zip archive that is truncated or damaged"),
    "tar.gz": ("HIGGS.csv.gz", _tar_gz("HIGGS.csv", b"1,2\n"), "a gzip-compressed tar archive"),
    "bzip2": ("HIGGS.csv.bz2", bz2.compress(b"1,2\n"), "a bzip2-compressed file"),
    "xz": ("HIGGS.csv.xz", b"\xfd7zXZ\x00\x00\x04", "an xz-compressed file"),
    "7z": ("HIGGS.7z", b"7z\xbc\xaf\x27\x1c\x00\x04", "a 7-Zip archive"),
    "Parquet": ("train.parquet", b"PAR1\x15\x04", "a Parquet file"),
    "binary": ("HIGGS.csv", bytes(range(256)), "binary data of an unknown kind"),
}


@pytest.mark.parametrize("case", BAD)
def test_what_is_not_higgs_data_is_named_in_one_line(sample_gz, tmp_path, case):
    name, data, what = BAD[case]
    if data is None:  # a download of higgs.zip cut half way: no central directory
        data = _zip(("HIGGS.csv.gz", sample_gz), method=zipfile.ZIP_STORED)[: len(sample_gz) // 2]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(HiggsbenchError) as err:
        list(read_higgs_csv(path))
    message = str(err.value)
    assert message.startswith(f"{path}: ") and what in message, message
    assert "\n" not in message


def test_the_command_line_says_it_in_one_line_and_exits_2(tmp_path):
    src = tmp_path / "HIGGS.csv.gz"
    src.write_bytes(HTML)
    proc = run_cli("data", "prepare", src, "--out", tmp_path / "prepared")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"higgsbench: error: {src}: an HTML page, not HIGGS data; expected HIGGS rows as CSV, "
        "gzip-compressed CSV, or a zip holding one of those"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["HIGGS.csv.gz"]


def test_a_damaged_zip_member_names_the_member_and_the_line(sample_gz, tmp_path):
    """A zip whose .csv.gz member was cut (the zip itself is whole): the line where the rows
    stop, and what to do."""
    src = tmp_path / "higgs.zip"
    src.write_bytes(_zip(("HIGGS.csv.gz", sample_gz[: len(sample_gz) // 2])))
    with pytest.raises(HiggsbenchError) as err:
        list(read_higgs_csv(src))
    message = str(err.value)
    assert "the zip member HIGGS.csv.gz is truncated or corrupt after line" in message
    assert "higgsbench data fetch" in message


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\x1f\x8b\x08", "gzip"),
        (b"PK\x03\x04", "zip"),
        (b"1.000000000000000000e+00,8.69e-01\n", "text"),
        (b"", "other"),
        (b"PK\x05\x06" + bytes(18), "other"),
        (b"label,lepton_pT\n0,1.5\n", "text"),  # left to the CSV reader to name the line
    ],
)
def test_sniff(head, kind):
    assert sniff(head)[0] == kind
