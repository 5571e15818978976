"""`higgsbench report` turns result.json files into plots and report.md."""

import json
import math

import numpy as np
import pytest
import torch

from higgsbench.common.paths import OUTPUT_MARKER
from higgsbench.core.network import NetworkSpec, build_torch
from higgsbench.data.prepared import PreparedDataset
from tests.helpers import run_cli


def test_report_writes_plots_and_markdown(toy_dataset, tmp_path):
    for opt in ("adam", "sgd"):
        run_cli(
            "train",
            "--data",
            toy_dataset,
            "--out",
            tmp_path / opt,
            "--epochs",
            2,
            "--optimizer",
            opt,
            "--batch-size",
            512,
            check=True,
        )
    run_cli("report", tmp_path / "adam", tmp_path / "sgd", "--out", tmp_path / "rep", check=True)
    names = sorted(p.name for p in (tmp_path / "rep").iterdir())
    # the report's files, and the marker that says the directory is higgsbench's
    assert names == [OUTPUT_MARKER, "fom.png", "history.png", "outputs.png", "report.md", "roc.png"]
    for png in (tmp_path / "rep").glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "GENERATED DATA" in md
    assert "torch adam all (cpu)" in md and "torch sgd all (cpu)" in md
    assert "![roc](roc.png)" in md
    # each run's row quotes its own result.json, not another run's
    for opt in ("adam", "sgd"):
        r = json.loads((tmp_path / opt / "result.json").read_text())
        row = next(line for line in md.splitlines() if f"torch {opt} all (cpu)" in line)
        assert f"| {r['test_auc']:.4f} | {r['test_accuracy']:.4f} " in row
        assert f"| {r['fom_max']:.2f} @ {r['fom_cut']:.3f} | {r['significance']:.2f} |" in row


def test_report_on_a_missing_run_is_a_clear_error(tmp_path):
    proc = run_cli("report", tmp_path / "nothing")
    assert proc.returncode != 0 and "no result.json" in proc.stderr


def test_a_run_whose_test_set_has_one_class_trains_and_is_reported(tmp_path):
    """A test split of signal only (the last 300 rows of a CSV): AUC, FOM and significance are
    undefined, written as NaN (see test_metrics); the run still ends well and `report` draws
    it rather than failing on the empty background histogram."""
    rng = np.random.default_rng(0)
    labels = (rng.random(3000) < 0.5).astype(float)
    labels[-300:] = 1.0
    features = rng.normal(size=(3000, 28)) + labels[:, None]
    csv = tmp_path / "one-class.csv"
    csv.write_text(
        "".join(
            ",".join([f"{y:.1f}", *(f"{v:.5f}" for v in x)]) + "\n"
            for y, x in zip(labels, features, strict=True)
        )
    )
    prepared, run = tmp_path / "prepared", tmp_path / "run"
    run_cli("data", "prepare", csv, "--out", prepared, "--val-rows", 300, "--test-rows", 300,
            check=True)  # fmt: skip
    proc = run_cli(
        "train", "--data", prepared, "--out", run, "--epochs", 1, "--batch-size", 256,
        "--threads", 1, check=True,
    )  # fmt: skip
    assert "Warning" not in proc.stderr, proc.stderr
    record = json.loads((run / "result.json").read_text())
    assert record["test_rows"] == 300
    assert math.isnan(record["test_auc"]) and math.isnan(record["fom_max"])
    # signal only: the accuracy is the fraction of the saved network's outputs above 0.5
    model = build_torch(NetworkSpec(**record["network"]))
    model.load_state_dict(torch.load(run / "model.pt"))
    with torch.no_grad():
        logits = model(torch.from_numpy(PreparedDataset(prepared).load("test").x)).squeeze(-1)
    assert record["test_accuracy"] == pytest.approx(float((logits.sigmoid() > 0.5).float().mean()))
    run_cli("report", run, "--out", tmp_path / "rep", check=True)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| nan |" in md  # said as undefined, not as a number
    assert (tmp_path / "rep" / "outputs.png").stat().st_size > 10_000
