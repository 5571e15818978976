"""Integrity: an input with as many rows as UCI's HIGGS file must start with its published first
rows (the app keeps a digest of them, not the rows); the row count is reported. The expected
row count is a parameter of prepare(), so 11-row files stand in for the 11,000,000-row one."""

from __future__ import annotations

import gzip
import json
import zipfile

import numpy as np
import pytest

from higgsbench.common.errors import HiggsbenchError
from higgsbench.data import integrity
from higgsbench.data.csv_source import read_higgs_csv
from higgsbench.data.prepare import prepare
from tests.helpers import run_cli


def _prepare(src, out, **kw) -> dict:
    return prepare(src, out, show_progress=False, **kw)


def test_the_digest_is_that_of_the_genuine_first_11_rows(higgs_head):
    chunks = list(read_higgs_csv(higgs_head))
    labels = np.concatenate([c.labels for c in chunks])
    features = np.concatenate([c.features for c in chunks])
    assert integrity.head_digest(labels, features) == integrity.HEAD_SHA256
    # and it is a digest of values: one changed in its last float32 bit changes it
    features[10, 27] = np.nextafter(features[10, 27], np.float32(np.inf))
    assert integrity.head_digest(labels, features) != integrity.HEAD_SHA256


def test_the_uci_file_is_verified_and_its_rows_counted(higgs_head, tmp_path):
    stats = _prepare(higgs_head, tmp_path / "p", uci_rows=11)
    assert stats["integrity"]["uci_file"] is True and stats["integrity"]["rows"] == 11
    assert integrity.summary(stats["integrity"]) == (
        "verified: UCI's HIGGS file, 11 rows, the first 11 exactly as published"
    )
    saved = json.loads((tmp_path / "p" / "stats.json").read_text())
    assert saved["integrity"] == stats["integrity"]


@pytest.mark.parametrize("form", ["crlf", "gzip", "zip"])
def test_the_same_rows_in_another_form_are_verified_too(higgs_head, tmp_path, form):
    text = higgs_head.read_bytes()
    src = tmp_path / "higgs"
    if form == "crlf":
        src.write_bytes(text.replace(b"\n", b"\r\n"))
    elif form == "gzip":
        src.write_bytes(gzip.compress(text))
    else:
        with zipfile.ZipFile(src, "w") as zf:
            zf.writestr("HIGGS.csv.gz", gzip.compress(text))
    assert _prepare(src, tmp_path / "p", uci_rows=11)["integrity"]["uci_file"] is True


def test_a_changed_value_in_the_first_rows_is_an_error(higgs_head, tmp_path):
    lines = higgs_head.read_text().splitlines()
    fields = lines[6].split(",")
    fields[5] = f"{float(fields[5]) * 1.001:.18e}"  # row 7, one feature 0.1 % off
    lines[6] = ",".join(fields)
    src = tmp_path / "HIGGS.csv"
    src.write_text("\n".join(lines) + "\n")
    with pytest.raises(HiggsbenchError) as err:
        _prepare(src, tmp_path / "p", uci_rows=11)
    message = str(err.value)
    assert message.startswith(f"{src}: holds 11 rows, as many as UCI's HIGGS file")
    assert "first 11 rows differ" in message and "--no-verify" in message
    assert not (tmp_path / "p").exists()
    # --no-verify: prepared as it is, and stats.json says it was not checked
    stats = _prepare(src, tmp_path / "p", uci_rows=11, verify=False)
    assert stats["integrity"] == {"checked": False}
    assert integrity.summary(stats["integrity"]) == "integrity not checked (--no-verify)"


def test_other_rows_of_the_full_file_s_length_are_an_error(higgs_sample, tmp_path):
    """Genuine rows, but not UCI's first ones (as after a shuffle)."""
    with gzip.open(higgs_sample, "rt") as f:
        rows = [next(f) for _ in range(11)]
    src = tmp_path / "shuffled.csv"
    src.write_text("".join(rows))
    with pytest.raises(HiggsbenchError, match="first 11 rows differ"):
        _prepare(src, tmp_path / "p", uci_rows=11)


def test_files_that_do_not_claim_to_be_uci_s_pass(higgs_head, higgs_sample, tmp_path):
    # the genuine sample: other rows, another count
    stats = _prepare(higgs_sample, tmp_path / "a", uci_rows=11)
    assert stats["integrity"]["head_matches_uci"] is False
    assert integrity.summary(stats["integrity"]) is None
    # --rows 11 of the sample: the count of the whole file is unknown, so no claim
    stats = _prepare(higgs_sample, tmp_path / "b", rows=11, uci_rows=11)
    assert stats["integrity"]["whole_file"] is False and not stats["integrity"]["uci_file"]
    # UCI's first rows and more: reported with their count, not an error
    src = tmp_path / "longer.csv"
    src.write_bytes(higgs_head.read_bytes() + gzip.decompress(higgs_sample.read_bytes()))
    stats = _prepare(src, tmp_path / "c", uci_rows=11)
    assert stats["integrity"]["head_matches_uci"] is True
    assert stats["integrity"]["uci_file"] is False
    assert integrity.summary(stats["integrity"]) == (
        "note: the first 11 rows are UCI's HIGGS file's; 10,995 rows, the full file has 11"
    )


def test_the_command_line_reports_it_and_no_verify_skips_it(higgs_head, tmp_path):
    proc = run_cli("data", "prepare", higgs_head, "--out", tmp_path / "a", check=True)
    assert proc.stdout.splitlines()[-1] == (
        "note: the first 11 rows are UCI's HIGGS file's; 11 rows, the full file has 11,000,000"
    )
    proc = run_cli(
        "data", "prepare", higgs_head, "--out", tmp_path / "b", "--no-verify", check=True
    )
    assert proc.stdout.splitlines()[-1] == "integrity not checked (--no-verify)"
    stats = json.loads((tmp_path / "b" / "stats.json").read_text())
    assert stats["integrity"] == {"checked": False}
