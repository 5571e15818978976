"""Each `train` option that shapes a run, passed with a value other than its default, and its
effect checked in what the run wrote (result.json, model.pt), not only in what it says it did.

Every run: the toy dataset (6 400 training rows), engine torch on the CPU, one thread, batch
256, seed 42, 2 epochs unless a test says otherwise; the reference is the same run with every
option at its default."""

import contextlib
import json
import os

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from higgsbench.core.network import NetworkSpec, build_torch
from higgsbench.data.prepared import PreparedDataset
from tests.helpers import run_cli

COMMON = ("--batch-size", 256, "--threads", 1, "--seed", 42)
# a core count no default gives: one more than this machine lets the process use
CORES = len(os.sched_getaffinity(0)) + 1


def _train(data, out, *extra, env=None):
    run_cli(
        "train", "--data", data, "--out", out, *COMMON, "--epochs", 2, *extra, check=True, env=env
    )  # fmt: skip
    return json.loads((out / "result.json").read_text())


def _weights(run) -> dict:
    return torch.load(run / "model.pt", weights_only=True)


def _linear_shapes(weights: dict) -> list[tuple[int, ...]]:
    return [tuple(w.shape) for k, w in weights.items() if k.endswith("weight")]


def _parameters(weights: dict) -> int:
    return sum(w.numel() for w in weights.values())


def _initial(record) -> torch.nn.Module:
    """The network the run started from: the one the engine builds from the record's
    description and seed, before any step."""
    spec = NetworkSpec(**record["network"])
    return build_torch(spec, generator=torch.Generator().manual_seed(record["seed"]))


def _val_auc(model, data) -> float:
    rows = PreparedDataset(data).load("val", "all")
    with torch.no_grad():
        scores = torch.sigmoid(model(torch.from_numpy(rows.x))).squeeze(-1).numpy()
    return float(roc_auc_score(rows.y, scores))


def _largest_change(record, run) -> float:
    start = _initial(record).state_dict()
    return max(float((w - start[k]).abs().max()) for k, w in _weights(run).items())


@pytest.fixture(scope="module")
def reference(toy_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "run"
    return out, _train(toy_dataset, out)


def test_the_reference_run_has_the_defaults(reference):
    run, record = reference
    assert record["optimizer"] == "adam" and record["learning_rate"] == 0.001
    assert (record["layers"], record["width"], record["precision"]) == (3, 300, "fp32")
    assert record["network"]["init_std_first"] == 0.05
    assert record["train_rows"] == 6400
    # 28 → 300 → 300 → 300 → 1, worked out by hand
    assert _linear_shapes(_weights(run)) == [(300, 28), (300, 300), (300, 300), (1, 300)]
    assert _parameters(_weights(run)) == 28 * 300 + 300 + 2 * (300 * 300 + 300) + 301 == 189_601
    assert record["flops_per_event"] == 6 * (28 * 300 + 2 * 300 * 300 + 300) == 1_132_200


def test_lr_is_the_step_size_the_optimizer_takes(toy_dataset, tmp_path, reference):
    ref_run, ref = reference
    record = _train(toy_dataset, tmp_path / "tiny", "--lr", 1e-6)
    assert record["learning_rate"] == 1e-6 and record["config"]["lr"] == 1e-6
    # Adam moves each weight by about lr per step: 2 epochs × 25 steps × 1e-6 ≈ 5e-5 at most
    # (a few times that early on, while its moment estimates warm up). The default lr
    # (1e-3) moves weights a thousand times further.
    tiny_change = _largest_change(record, tmp_path / "tiny")
    assert 0 < tiny_change < 2e-4
    assert _largest_change(ref, ref_run) > 1e-2
    # so the tiny-lr network is still, to the eye, the untrained one; the reference learnt
    untrained = _val_auc(_initial(record), toy_dataset)
    assert record["history"][-1]["val_auc"] == pytest.approx(untrained, abs=0.03)
    # (the reference gains 0.095 on the toy set; the tiny-lr run stays within 0.03)
    assert ref["history"][-1]["val_auc"] > untrained + 0.06
    assert record["history"] != ref["history"]


def test_recipe_baldi_builds_four_layers_with_its_initial_weights(toy_dataset, tmp_path):
    # one short epoch (2 steps of Adam, each moving a weight by ~1e-3) leaves the first
    # layer's spread where the recipe drew it
    run = tmp_path / "baldi"
    record = _train(toy_dataset, run, "--recipe", "baldi", "--epochs", 1, "--max-train-rows", 512)
    assert record["config"]["recipe"] == "baldi"
    assert (record["layers"], record["width"]) == (4, 300)
    net = record["network"]
    assert (net["init_std_first"], net["init_std_hidden"], net["init_std_output"]) == (
        0.1,
        0.05,
        0.001,
    )
    weights = _weights(run)
    assert _linear_shapes(weights) == [(300, 28), *[(300, 300)] * 3, (1, 300)]
    assert _parameters(weights) == 28 * 300 + 300 + 3 * (300 * 300 + 300) + 301 == 279_901
    assert record["flops_per_event"] == 6 * (28 * 300 + 3 * 300 * 300 + 300)
    # Gaussian widths as drawn: 0.1 in the first layer (the thesis recipe: 0.05), 0.05 after
    assert float(weights["0.weight"].std()) == pytest.approx(0.1, abs=0.005)
    assert float(weights["2.weight"].std()) == pytest.approx(0.05, abs=0.005)


def test_layers_and_width_shape_the_network_that_is_trained(toy_dataset, tmp_path):
    run = tmp_path / "small"
    record = _train(toy_dataset, run, "--layers", 2, "--width", 64)
    assert (record["layers"], record["width"]) == (2, 64)
    weights = _weights(run)
    assert _linear_shapes(weights) == [(64, 28), (64, 64), (1, 64)]
    # parameters and training FLOPs of 28 → 64 → 64 → 1, by hand
    assert _parameters(weights) == (28 * 64 + 64) + (64 * 64 + 64) + (64 + 1) == 6081
    assert record["flops_per_event"] == 6 * (28 * 64 + 64 * 64 + 64) == 35_712


def test_max_train_rows_trains_on_that_many_rows(toy_dataset, tmp_path):
    record = _train(toy_dataset, tmp_path / "rows", "--max-train-rows", 3000)
    assert record["train_rows"] == 3000
    # 3000 rows make 11 full batches of 256; the 184 left over are dropped each epoch
    assert record["steps_per_epoch"] == 11
    assert record["train_rows_per_epoch"] == 11 * 256 == 2816
    # throughput is the rows stepped over ÷ the (median) epoch time
    assert record["events_per_second"] == pytest.approx(
        2816 / float(np.median(record["epoch_seconds"]))
    )
    assert record["test_rows"] == 800  # the test set is not cut


def test_cores_per_node_sets_the_threads_of_a_torch_run(toy_dataset, tmp_path):
    run_cli(
        "train",
        "--data",
        toy_dataset,
        "--out",
        tmp_path / "cores",
        "--batch-size",
        256,
        "--epochs",
        1,
        "--cores-per-node",
        CORES,
        check=True,
    )
    record = json.loads((tmp_path / "cores" / "result.json").read_text())
    assert record["threads"] == CORES and record["cores_per_node"] == CORES


def test_cores_per_node_of_a_torch_bench_sets_the_threads_of_its_run(toy_dataset, tmp_path):
    out = tmp_path / "sweep"
    run_cli(
        "bench",
        "--data",
        toy_dataset,
        "--out",
        out,
        "--engines",
        "torch",
        "--optimizers",
        "adam",
        "--epochs",
        1,
        "--batch-size",
        256,
        "--cores-per-node",
        CORES,
        check=True,
    )
    record = json.loads((out / "torch-n1-adam" / "result.json").read_text())
    assert record["threads"] == CORES and record["cores_per_node"] == CORES
    assert json.loads((out / "bench.json").read_text())["rows"][0]["cores_per_node"] == CORES


def _val_loss(run, record, data, autocast) -> float:
    """Mean BCE on the validation split of model.pt's weights, evaluated here in fp32 or under
    bfloat16 autocast, summed as the engine sums it."""
    model = build_torch(NetworkSpec(**record["network"]))
    model.load_state_dict(_weights(run))
    rows = PreparedDataset(data).load("val", "all")
    x, y = torch.from_numpy(rows.x), torch.from_numpy(rows.y)
    with torch.no_grad(), autocast:
        logits = model(x).squeeze(-1).float()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="sum")
    return float(loss.double()) / len(y)


def test_precision_bf16_trains_and_evaluates_in_bfloat16_on_the_cpu(
    toy_dataset, tmp_path, reference
):
    _, ref = reference
    run = tmp_path / "bf16"
    # what is checked here is the arithmetic, on any CPU (emulated where it has no bf16 units)
    flags = {"HIGGSBENCH_CPU_FLAGS": "avx512_bf16"}
    record = _train(toy_dataset, run, "--precision", "bf16", env=flags)
    assert record["precision"] == "bf16"
    # The last validation loss is that of model.pt evaluated under bfloat16 autocast (to float
    # rounding, ~1e-7); evaluated in fp32 the same weights give another loss (bfloat16 keeps 8
    # bits of mantissa: the logits move by ~0.4 %, the mean loss by ~3e-5 here).
    recorded = record["history"][-1]["val_loss"]
    bf16 = torch.autocast("cpu", dtype=torch.bfloat16)
    assert _val_loss(run, record, toy_dataset, bf16) == pytest.approx(recorded, rel=1e-6)
    fp32 = _val_loss(run, record, toy_dataset, contextlib.nullcontext())
    assert abs(fp32 - recorded) > 3e-6 * recorded
    # Same seed, same batches: training in bfloat16 takes another path than fp32 (whose runs
    # repeat bit for bit), and learns as well: within 0.02 of fp32's validation AUC.
    for a, b in zip(record["history"], ref["history"], strict=True):
        assert a["train_loss"] != b["train_loss"]
        assert a["val_auc"] == pytest.approx(b["val_auc"], abs=0.02)
