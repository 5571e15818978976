"""engine=bigdl: Intel BigDL DLlib, in its own environment (.venv-bigdl: pyspark 3.4.1, numpy
1.26), trained on genuine HIGGS rows with --master local[2]. Skipped when .venv-bigdl is
missing, unless HIGGSBENCH_REQUIRE_BIGDL=1 (CI), which turns the skip into a failure."""

import json
import os
import re

import pytest

from higgsbench.records.result import REQUIRED_KEYS, parse_result_line
from tests.conftest import REPO
from tests.helpers import auc_tolerance, run_cli

BIGDL_PYTHON = REPO / ".venv-bigdl" / "bin" / "python"

if not BIGDL_PYTHON.exists():
    if os.environ.get("HIGGSBENCH_REQUIRE_BIGDL") == "1":
        raise RuntimeError(f"HIGGSBENCH_REQUIRE_BIGDL=1 but {BIGDL_PYTHON} is missing")
    pytest.skip("no .venv-bigdl (make venv-bigdl)", allow_module_level=True)


def _bigdl(*args, check=True, env=None):
    return run_cli(*args, check=check, timeout=900, python=BIGDL_PYTHON, env=env)


def _train_locally(prepared, out, *extra, check=True, env=None):
    """engine=bigdl on a local[2] master, in the BigDL environment."""
    return _bigdl(
        "train",
        "--engine",
        "bigdl",
        "--master",
        "local[2]",
        "--data",
        prepared,
        "--out",
        out,
        *extra,
        check=check,
        env=env,
    )


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from tests.conftest import SAMPLE, require_data

    require_data(SAMPLE)
    out = tmp_path_factory.mktemp("bigdl") / "prepared"
    _bigdl("data", "prepare", SAMPLE, "--out", out)  # in the BigDL environment, pyarrow 21
    return out


def test_bigdl_trains_an_epoch_on_the_genuine_sample_in_local_mode(prepared, tmp_path):
    proc = _train_locally(
        prepared, tmp_path / "run", "--epochs", 1, "--batch-size", 256, "--optimizer", "adam",
        env={"HIGGSBENCH_PROGRESS": "1"},  # bars forced on, as on a terminal
    )  # fmt: skip
    record = json.loads((tmp_path / "run" / "result.json").read_text())
    # the epoch's bar followed BigDL's iterations to the last of ⌈8788 / 256⌉ = 35
    assert re.search(r"epoch 1/1 .* 35/35 +[0-9,]+ events/s", proc.stderr), proc.stderr
    assert parse_result_line(proc.stdout)["test_auc"] == record["test_auc"]
    assert [k for k in REQUIRED_KEYS if k not in record] == []
    assert record["engine"] == "bigdl" and (record["nodes"], record["cores_per_node"]) == (1, 2)
    assert record["versions"]["pyspark"] == "3.4.1"
    assert record["epochs"] == 1 and record["train_rows"] == 8788
    # BigDL learns what one torch process learns from the same rows, batch, optimizer and seed
    # (another framework: within what another seed changes, tests/seed_spread.json); an
    # untrained network scores 0.45-0.58 on this set
    ref = tmp_path / "torch"
    run_cli(
        "train", "--engine", "torch", "--data", prepared, "--out", ref, "--epochs", 1,
        "--batch-size", 256, "--optimizer", "adam", check=True, timeout=300,
    )  # fmt: skip
    torch_run = json.loads((ref / "result.json").read_text())
    print(f"test AUC: torch {torch_run['test_auc']:.4f}, bigdl {record['test_auc']:.4f}")
    print(f"train loss: torch {torch_run['history'][0]['train_loss']:.4f}, "
          f"bigdl {record['history'][0]['train_loss']:.4f}")  # fmt: skip
    assert abs(record["test_auc"] - torch_run["test_auc"]) < auc_tolerance("batch-256-adam")
    assert (tmp_path / "run" / "model.bigdl").exists()


def test_bigdl_refuses_a_batch_it_cannot_split(prepared, tmp_path):
    proc = _train_locally(prepared, tmp_path / "run", "--batch-size", 255, check=False)
    assert proc.returncode != 0 and "multiple of the 2 cores" in proc.stderr
