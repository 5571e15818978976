"""Every kind of bad input exits non-zero, names the file and line, and leaves nothing behind."""

import gzip
import shutil

import pytest

from tests.helpers import run_cli


def _rows(sample, n):
    with gzip.open(sample, "rt") as f:
        return [next(f).rstrip("\n") for _ in range(n)]


def _with_line(rows, lineno, line):
    rows = list(rows)
    rows[lineno - 1] = line
    return "\n".join(rows) + "\n"


def _replace_field(row, index, value):
    fields = row.split(",")
    fields[index] = value
    return ",".join(fields)


CASES = {
    # name: (builder(rows) -> bytes written to the file, suffix, expected message parts)
    "wrong column count": (
        lambda r: _with_line(r, 1500, ",".join(r[1499].split(",")[:28])).encode(),
        ".csv",
        ["line 1500", "expected 29 comma-separated values", "found 28"],
    ),
    "non-numeric value": (
        lambda r: _with_line(r, 2222, _replace_field(r[2221], 4, "abc")).encode(),
        ".csv",
        ["line 2222", "'missing_energy_magnitude'", "'abc'", "not a number"],
    ),
    "NaN": (
        lambda r: _with_line(r, 777, _replace_field(r[776], 9, "nan")).encode(),
        ".csv",
        ["line 777", "'jet1_btag'", "finite"],
    ),
    "infinity": (
        lambda r: _with_line(r, 3000, _replace_field(r[2999], 28, "inf")).encode(),
        ".csv",
        ["line 3000", "'m_wwbb'", "finite"],
    ),
    "missing value": (
        lambda r: _with_line(r, 10, _replace_field(r[9], 2, "")).encode(),
        ".csv",
        ["line 10", "'lepton_eta'", "missing"],
    ),
    "label other than 0/1": (
        lambda r: _with_line(r, 4000, _replace_field(r[3999], 0, "2.0")).encode(),
        ".csv",
        ["line 4000", "label is 2", "expected 0"],
    ),
    "wrong columns in gzip": (
        lambda r: gzip.compress(_with_line(r, 4001, r[4000] + ",1.0").encode()),
        ".csv.gz",
        ["line 4001", "found 30"],
    ),
    "empty file": (lambda r: b"", ".csv", ["the file is empty"]),
    "empty gzip": (lambda r: gzip.compress(b""), ".csv.gz", ["no rows found"]),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_named_and_nothing_is_written(higgs_sample, tmp_path, case):
    build, suffix, expected = CASES[case]
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(build(_rows(higgs_sample, 5000)))
    out_parent = tmp_path / "out"
    out_parent.mkdir()
    proc = run_cli("data", "prepare", bad, "--out", out_parent / "prepared")
    assert proc.returncode != 0, proc.stdout
    message = proc.stderr.strip().splitlines()[-1]
    assert str(bad) in message
    for part in expected:
        assert part in message, message
    assert list(out_parent.iterdir()) == [], "partial output left behind"


def test_truncated_gzip_is_reported_and_nothing_is_written(higgs_sample, tmp_path):
    bad = tmp_path / "cut.csv.gz"
    data = higgs_sample.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    proc = run_cli("data", "prepare", bad, "--out", tmp_path / "out" / "prepared")
    assert proc.returncode != 0
    message = proc.stderr.strip().splitlines()[-1]
    assert str(bad) in message and "truncated" in message and "line" in message
    assert "higgsbench data fetch" in message
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_missing_file(tmp_path):
    proc = run_cli("data", "prepare", tmp_path / "nope.csv.gz", "--out", tmp_path / "p")
    assert proc.returncode != 0
    assert f"{tmp_path / 'nope.csv.gz'}: no such file" in proc.stderr
    assert not (tmp_path / "p").exists()


def test_failed_prepare_keeps_an_existing_dataset(higgs_sample, tmp_path):
    out = tmp_path / "prepared"
    run_cli("data", "prepare", higgs_sample, "--out", out, check=True)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = tmp_path / "bad.csv"
    shutil.copy(higgs_sample, tmp_path / "s.csv.gz")
    bad.write_text("1,2,3\n")
    proc = run_cli("data", "prepare", bad, "--out", out, "--force")
    assert proc.returncode != 0 and "line 1" in proc.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "prepared", "s.csv.gz"]
