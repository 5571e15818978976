"""No command overwrites or deletes a file it did not write: not a directory that appears at
--out while `data prepare` runs, not a second prepare's dataset, not a user's files beside a
prepared dataset under --force, not the files of a directory that `train --out` names."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.helpers import run_cli


def _prepare_in_background(src, out, *extra) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "higgsbench", "data", "prepare", str(src), "--out", str(out),
         "--no-verify", *map(str, extra)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "HIGGSBENCH_PROGRESS": "0"},
    )  # fmt: skip


def _wait_for(condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def big_csv(sample_text, tmp_path):
    """440 k genuine rows: several seconds to prepare, time enough to act while it runs."""
    path = tmp_path / "big.csv"
    path.write_bytes(sample_text * 40)
    return path


def test_prepare_keeps_a_directory_that_appears_at_out_while_it_runs(big_csv, tmp_path):
    out = tmp_path / "results"
    proc = _prepare_in_background(big_csv, out)
    _wait_for(lambda: any(tmp_path.glob(".results.tmp-*")))
    out.mkdir()
    (out / "thesis.tex").write_text("four years of work\n")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err
    assert "appeared or changed while this command ran" in err and str(out) in err
    assert (out / "thesis.tex").read_text() == "four years of work\n"
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.csv", "results"]


def test_prepare_does_not_replace_even_an_empty_directory_made_meanwhile(big_csv, tmp_path):
    """A plain rename would replace an empty directory in silence: the swap must not."""
    out = tmp_path / "results"
    proc = _prepare_in_background(big_csv, out)
    _wait_for(lambda: any(tmp_path.glob(".results.tmp-*")))
    out.mkdir()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err
    assert list(out.iterdir()) == [], "the user's empty directory was replaced"


def test_two_prepares_to_one_out_end_with_one_refused(big_csv, tmp_path):
    out = tmp_path / "prepared"
    procs = [_prepare_in_background(big_csv, out) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert "already exists" in refused
    assert sorted(p.name for p in out.iterdir()) == [
        "stats.json", "test.parquet", "train.parquet", "val.parquet",
    ]  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.csv", "prepared"]


def _synth(out, *extra):
    return run_cli("data", "synth", "--events", 2000, "--out", out, *extra)


def test_force_replaces_a_dataset_but_not_what_a_user_put_beside_it(tmp_path):
    out = tmp_path / "prepared"
    assert _synth(out).returncode == 0
    (out / "notes.txt").write_text("mine\n")
    (out / "runs").mkdir()
    (out / "runs" / "r1.log").write_text("mine too\n")
    before = (out / "stats.json").read_bytes()
    proc = _synth(out, "--force", "--seed", 7)
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1 and "notes.txt" in line and "runs/" in line
    assert (out / "stats.json").read_bytes() == before, "the dataset was replaced anyway"
    assert (out / "notes.txt").read_text() == "mine\n"
    assert (out / "runs" / "r1.log").read_text() == "mine too\n"
    # the dataset alone: replaced, and nothing left beside it
    (out / "notes.txt").unlink()
    (out / "runs" / "r1.log").unlink()
    (out / "runs").rmdir()
    assert _synth(out, "--force", "--seed", 7).returncode == 0
    assert (out / "stats.json").read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]


@pytest.mark.parametrize("files", [["config.json"], ["model.pt", "checkpoint.pt"], ["notes.md"]])
def test_train_refuses_a_directory_of_the_users_and_keeps_its_files(toy_dataset, tmp_path, files):
    out = tmp_path / "mine"
    out.mkdir()
    for name in files:
        (out / name).write_text(f"the user's {name}\n")
    proc = run_cli("train", "--data", toy_dataset, "--out", out, "--epochs", 1)
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1 and "--out" in line and "not made by higgsbench" in line
    assert sorted(p.name for p in out.iterdir()) == sorted(files)
    for name in files:
        assert (out / name).read_text() == f"the user's {name}\n"


def test_train_writes_into_a_new_or_empty_directory_and_marks_it(toy_dataset, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for out in (empty, tmp_path / "new" / "run"):
        proc = run_cli("train", "--data", toy_dataset, "--out", out, "--epochs", 1)
        assert proc.returncode == 0, proc.stderr
        assert (out / ".higgsbench-output").is_file() and (out / "result.json").is_file()
