"""engine=torch end to end on the CPU, through the same device-resident loader the GPU uses."""

import json

import numpy as np
import pytest
import torch

from higgsbench.contract import plateau_reached
from higgsbench.engines.torch_training import Batches, DeviceData
from higgsbench.results import REQUIRED_KEYS, parse_result_line
from tests.helpers import run_cli


def _train(data, out, *extra):
    return run_cli(
        "train",
        "--data",
        data,
        "--out",
        out,
        "--batch-size",
        256,
        "--threads",
        1,
        *extra,
        check=True,
    )


def test_result_contract_and_result_line(toy_dataset, tmp_path):
    proc = _train(toy_dataset, tmp_path / "run", "--epochs", 2, "--optimizer", "adagrad")
    record = json.loads((tmp_path / "run" / "result.json").read_text())
    assert [k for k in REQUIRED_KEYS if k not in record] == []
    assert proc.stdout.strip().splitlines()[-1].startswith("RESULT {")
    line = parse_result_line(proc.stdout)
    assert line["test_auc"] == record["test_auc"] and "curves" not in line
    assert record["engine"] == "torch" and record["device"] == "cpu"
    assert record["optimizer"] == "adagrad" and record["learning_rate"] == 0.01
    assert record["epochs"] == 2 and len(record["epoch_seconds"]) == 2
    assert [h["epoch"] for h in record["history"]] == [1, 2]
    assert record["train_rows"] == 6400 and record["test_rows"] == 800
    assert record["train_rows_per_epoch"] == 6400 // 256 * 256
    assert record["generated_data"] is True
    assert record["peak_gflops"] > 0 and record["fraction_of_peak"] > 0
    assert record["gflops"] == pytest.approx(
        record["events_per_second"] * record["flops_per_event"] / 1e9
    )
    assert 0.5 < record["test_auc"] <= 1 and record["fom_max"] > 0
    assert (tmp_path / "run" / "model.pt").exists()


def test_resume_continues_exactly_where_the_checkpoint_left_off(toy_dataset, tmp_path):
    _train(toy_dataset, tmp_path / "straight", "--epochs", 3)
    _train(toy_dataset, tmp_path / "split", "--epochs", 2)
    proc = run_cli(
        "train",
        "--data",
        toy_dataset,
        "--out",
        tmp_path / "split",
        "--batch-size",
        256,
        "--threads",
        1,
        "--epochs",
        2,
    )
    assert proc.returncode != 0 and "--resume" in proc.stderr  # result.json is not overwritten
    _train(toy_dataset, tmp_path / "split", "--epochs", 3, "--resume")
    straight = json.loads((tmp_path / "straight" / "result.json").read_text())
    split = json.loads((tmp_path / "split" / "result.json").read_text())
    assert [h["epoch"] for h in split["history"]] == [1, 2, 3]
    for a, b in zip(straight["history"], split["history"], strict=True):
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-6)
    assert split["test_auc"] == pytest.approx(straight["test_auc"], rel=1e-6)


def test_cuda_without_a_gpu_says_so(toy_dataset, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    proc = run_cli("train", "--data", toy_dataset, "--out", tmp_path / "r", "--device", "cuda")
    assert proc.returncode != 0
    assert "no CUDA GPU is available" in proc.stderr and "--device cpu" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--optimizer", "rmsprop"], "unknown optimizer 'rmsprop'"),
        (["--features", "mid"], "unknown feature set 'mid'"),
        (["--batch-size", "100000"], "exceeds the 6400 training rows"),
        (["--precision", "fp8"], "--precision 'fp8'"),
        (["--engine", "jax"], "--engine 'jax'"),
    ],
)
def test_bad_settings_are_named(toy_dataset, tmp_path, args, message):
    proc = run_cli("train", "--data", toy_dataset, "--out", tmp_path / "r", *args)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_device_batches_cover_a_permutation_in_fixed_buffers():
    x = np.arange(50, dtype=np.float32).reshape(25, 2)
    y = np.arange(25, dtype=np.float32)
    batches = Batches(DeviceData(x, y, torch.device("cpu")), 8, torch.Generator().manual_seed(1))
    assert batches.steps == 3
    addresses = {batches.x.data_ptr()}
    seen = []
    batches.shuffle()
    for i in range(batches.steps):
        batches.load(i)
        addresses.add(batches.x.data_ptr())
        np.testing.assert_array_equal(batches.x[:, 0].numpy(), 2 * batches.y.numpy())
        seen += batches.y.tolist()
    assert len(addresses) == 1, "batches must land in the same buffer (CUDA graphs need it)"
    assert len(set(seen)) == 24  # one incomplete batch (1 row) dropped, no row twice


def test_plateau_rule():
    assert not plateau_reached([0.7, 0.71, 0.72])
    assert plateau_reached([0.7, 0.8, 0.80001, 0.80002, 0.8, 0.80003, 0.8])
    assert not plateau_reached([0.7, 0.8, 0.8, 0.8, 0.8, 0.8, 0.801])
