"""engine=torch end to end on the CPU, through the same device-resident loader the GPU uses."""

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from higgsbench.core.config import plateau_reached
from higgsbench.core.network import NetworkSpec, build_torch
from higgsbench.data.prepared import PreparedDataset
from higgsbench.engines.torch_training import Batches, DeviceData
from higgsbench.records.result import REQUIRED_KEYS, parse_result_line
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
    assert record["fraction_of_peak"] == pytest.approx(record["gflops"] / record["peak_gflops"])
    # throughput is the rows stepped over ÷ the median epoch (of two: their mean) time, and
    # 6 FLOPs per multiply-add of 28 → 300 → 300 → 300 → 1, worked out by hand
    seconds = record["epoch_seconds"]
    assert record["events_per_second"] == pytest.approx(6400 // 256 * 256 / (sum(seconds) / 2))
    assert record["flops_per_event"] == 6 * (28 * 300 + 2 * 300 * 300 + 300) == 1_132_200
    assert record["gflops"] == pytest.approx(record["events_per_second"] * 1_132_200 / 1e9)
    # It learnt: the training loss falls from epoch 1 to 2, and the test AUC is one no
    # untrained network reaches (the same network untrained, below; on the first generator
    # twenty untrained seeds scored 0.44–0.57 on this 800-event test set). Two epochs of
    # Adagrad reach 0.680. The validation loss is not compared: on 800 events it moves by
    # more than one epoch of Adagrad gains (0.665 then 0.681 here).
    first, last = record["history"][0], record["history"][-1]
    assert last["train_loss"] < first["train_loss"]
    untrained = _auc_of_weights(
        build_torch(
            NetworkSpec(**record["network"]), generator=torch.Generator().manual_seed(42)
        ).state_dict(),
        record,
        toy_dataset,
        "test",
    )
    assert record["test_auc"] > max(0.62, untrained + 0.05), (record["test_auc"], untrained)
    # the physics numbers are those of the saved network's test scores, recomputed here
    weights = torch.load(tmp_path / "run" / "model.pt")
    labels, scores = _scores_of_weights(weights, record, toy_dataset, "test")
    assert record["test_auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-6)
    assert record["test_accuracy"] == pytest.approx(np.mean((scores > 0.5) == (labels > 0.5)))
    assert record["fom_max"] == pytest.approx(_fom_max_by_hand(labels, scores), rel=1e-3)


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
    "args, words",
    [
        # the option and the value refused, however the refusal is worded
        (["--optimizer", "rmsprop"], ["optimizer", "'rmsprop'"]),
        (["--features", "mid"], ["feature", "'mid'"]),
        (["--batch-size", "100000"], ["--batch-size", "exceeds the 6400 training rows"]),
        (["--precision", "fp8"], ["--precision", "'fp8'"]),
        (["--engine", "jax"], ["--engine", "'jax'"]),
    ],
)
def test_bad_settings_are_named(toy_dataset, tmp_path, args, words):
    proc = run_cli("train", "--data", toy_dataset, "--out", tmp_path / "r", *args)
    assert proc.returncode == 2, proc.stderr
    assert all(word in proc.stderr for word in words), proc.stderr
    assert not (tmp_path / "r").exists()
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


def _scores_of_weights(weights: dict, record: dict, data, split: str) -> tuple:
    """Labels and output of the network the record describes, holding ``weights``, on
    ``split``: computed here, with torch, not by the code under test."""
    model = build_torch(NetworkSpec(**record["network"]))
    model.load_state_dict(weights)
    rows = PreparedDataset(data).load(split, record["features"])
    with torch.no_grad():
        scores = torch.sigmoid(model(torch.from_numpy(rows.x))).squeeze(-1).numpy()
    return rows.y, scores


def _auc_of_weights(weights: dict, record: dict, data, split: str) -> float:
    """AUC on ``split`` of the network the record describes, holding ``weights`` (scikit-learn)."""
    return float(roc_auc_score(*_scores_of_weights(weights, record, data, split)))


def _fom_max_by_hand(labels: np.ndarray, scores: np.ndarray) -> float:
    """max S/√B over cuts 0, 0.001, …, 1 with S = 100 ε_S, B = 1000 ε_B, each cut keeping ≥ 20
    events of either class (README, physics metrics)."""
    signal, background = scores[labels > 0.5], scores[labels <= 0.5]
    cuts = np.linspace(0, 1, 1001)[:, None]
    n_s, n_b = (signal > cuts).sum(1), (background > cuts).sum(1)
    ok = (n_s >= 20) & (n_b >= 20)
    s, b = 100 * n_s[ok] / len(signal), 1000 * n_b[ok] / len(background)
    return float((s / np.sqrt(b)).max())


def test_until_plateau_tests_the_weights_of_the_best_validation_epoch(toy_dataset, tmp_path):
    # 1024 training rows in batches of 128 at a learning rate 10 × Adam's: the validation AUC
    # peaks and then wanders, so the plateau rule stops the run before the cap, the best epoch
    # not the last (measured: best epoch 9, stopped after 14)
    out = tmp_path / "run"
    _train(
        toy_dataset, out, "--epochs", 20, "--until-plateau", "--max-train-rows", 1024,
        "--batch-size", 128, "--lr", 0.01,
    )  # fmt: skip
    record = json.loads((out / "result.json").read_text())
    history = record["history"]
    assert record["epochs"] == len(history) < 20, "the plateau rule should have stopped it"
    best = max(history, key=lambda h: h["val_auc"])
    last = history[-1]
    assert record["plateau"]["best_epoch"] == best["epoch"]
    assert record["plateau"]["best_val_auc"] == best["val_auc"]
    assert best["epoch"] < last["epoch"], "precondition: these settings must peak before the end"
    assert best["val_auc"] - last["val_auc"] > 1e-3, "precondition: best and last must differ"

    saved = torch.load(out / "model.pt", weights_only=True)
    last_weights = torch.load(out / "checkpoint.pt", weights_only=False)["model"]
    # the checkpoint holds the last epoch's weights, model.pt those of the best epoch
    assert _auc_of_weights(last_weights, record, toy_dataset, "val") == pytest.approx(
        last["val_auc"], abs=1e-6
    )
    assert _auc_of_weights(saved, record, toy_dataset, "val") == pytest.approx(
        best["val_auc"], abs=1e-6
    )
    # and the test metrics are those of the best epoch's weights
    test_auc = _auc_of_weights(saved, record, toy_dataset, "test")
    assert record["test_auc"] == pytest.approx(test_auc, abs=1e-6)
    assert record["test_auc"] != pytest.approx(
        _auc_of_weights(last_weights, record, toy_dataset, "test"), abs=1e-6
    )
