"""The result record's headline numbers, from a training outcome made up by hand."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import types
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from higgsbench import __version__
from higgsbench.core.config import EpochRecord, RunConfig, TrainOutcome
from higgsbench.core.network import network_spec
from higgsbench.records import result
from higgsbench.records.result import (
    _DISTRIBUTIONS,
    build_record,
    git_sha,
    machine,
    parse_result_line,
    result_line,
    versions,
    write_json_atomic,
)


class _Data:
    """What build_record reads of a prepared dataset, without one on disk."""

    generated = True

    def describe(self) -> dict:
        return {"path": "nowhere", "source": "hand", "generated": True, "rows": {}}


def _outcome(epoch_seconds: list[float], rows_per_epoch: int) -> TrainOutcome:
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(200), np.zeros(200)]
    history = [EpochRecord(i + 1, 0.6, 0.6, 0.7, s, s) for i, s in enumerate(epoch_seconds)]
    return TrainOutcome(
        device="cpu",
        nodes=1,
        cores_per_node=1,
        hosts=["here"],
        startup_seconds=0.5,
        epoch_seconds=epoch_seconds,
        history=history,
        test_labels=labels,
        test_scores=np.clip(0.3 * labels + rng.uniform(0, 0.7, 400), 0, 1),
        train_rows=rows_per_epoch,
        train_rows_per_epoch=rows_per_epoch,
        peak_gflops=100.0,
    )


def test_events_per_second_comes_from_the_median_epoch():
    # a slow first epoch (warm-up) among two fast ones: the median epoch is 1 s, so
    # 12 000 events per epoch are 12 000 events/s (the mean, 4 s, would say 3 000)
    config = RunConfig(data=Path("nowhere"), out=Path("nowhere"), epochs=3)
    spec = network_spec(28)
    record = build_record(config, spec, _Data(), _outcome([10.0, 1.0, 1.0], 12_000), lr=1e-3)
    assert record["epoch_seconds_median"] == 1.0
    assert record["events_per_second"] == pytest.approx(12_000.0)
    # 6 FLOPs per multiply-add of 28 → 300 → 300 → 300 → 1, counted by hand
    flops_per_event = 6 * (28 * 300 + 300 * 300 + 300 * 300 + 300 * 1)
    assert record["gflops"] == pytest.approx(12_000 * flops_per_event / 1e9)
    assert record["fraction_of_peak"] == pytest.approx(12_000 * flops_per_event / 1e9 / 100.0)


def _record(**config_fields) -> tuple[dict, RunConfig]:
    config = RunConfig(
        data=Path("nowhere"), out=Path("nowhere"), epochs=4, optimizer="sgd", batch_size=256,
        features="low", precision="fp32", seed=7, **config_fields,
    )  # fmt: skip
    outcome = _outcome([3.0, 2.0], 1_000)
    outcome.nodes, outcome.cores_per_node, outcome.hosts = 3, 2, ["a", "b", "c"]
    outcome.train_rows, outcome.extra = 2_500, {"allreduce": {"bytes": 8}}
    spec = network_spec(21, layers=2, width=50)
    return build_record(config, spec, _Data(), outcome, lr=0.25), config


def test_every_field_of_the_record_comes_from_its_own_source():
    record, config = _record()
    assert {k: record[k] for k in (
        "engine", "device", "nodes", "cores_per_node", "optimizer", "learning_rate", "batch_size",
        "epochs", "epochs_requested", "features", "inputs", "layers", "width", "precision",
        "seed", "train_rows", "train_rows_per_epoch", "test_rows", "startup_seconds",
        "epoch_seconds", "epoch_seconds_median", "events_per_second", "hosts", "generated_data",
    )} == {
        "engine": config.engine, "device": "cpu", "nodes": 3, "cores_per_node": 2,
        "optimizer": "sgd", "learning_rate": 0.25, "batch_size": 256,
        "epochs": 2, "epochs_requested": 4,  # epochs run (an early stop runs fewer) and asked
        "features": "low", "inputs": 21, "layers": 2, "width": 50, "precision": "fp32",
        "seed": 7, "train_rows": 2_500, "train_rows_per_epoch": 1_000, "test_rows": 400,
        "startup_seconds": 0.5, "epoch_seconds": [3.0, 2.0], "epoch_seconds_median": 2.5,
        "events_per_second": 400.0, "hosts": ["a", "b", "c"], "generated_data": True,
    }  # fmt: skip
    assert record["network"] == network_spec(21, layers=2, width=50).to_dict()
    assert record["flops_per_event"] == 6 * (21 * 50 + 50 * 50 + 50 * 1)
    assert record["allreduce"] == {"bytes": 8}  # the engine's extra, as it gave it
    assert record["data"] == _Data().describe() and record["config"] == config.to_dict()
    assert [h["epoch"] for h in record["history"]] == [1, 2]
    assert record["history"][1]["seconds"] == 2.0
    assert set(record["curves"]) >= {"roc"}
    assert record["finished"].endswith("+00:00")


def test_no_epoch_and_no_peak_give_no_throughput_and_no_fraction():
    config = RunConfig(data=Path("nowhere"), out=Path("nowhere"), epochs=1)
    outcome = _outcome([], 1_000)
    outcome.peak_gflops = None
    record = build_record(config, network_spec(28), _Data(), outcome, lr=1e-3)
    assert np.isnan(record["epoch_seconds_median"]) and np.isnan(record["events_per_second"])
    assert record["fraction_of_peak"] is None and record["epochs"] == 0


def test_the_result_line_is_the_record_without_curves_and_config_and_reads_back(tmp_path):
    record, _ = _record()
    line = result_line(record)
    assert line.startswith("RESULT {") and "\n" not in line
    back = parse_result_line(f"starting\n{line}\nRESULT-ish noise\n")
    assert back == json.loads(json.dumps({k: v for k, v in record.items()
                                          if k not in ("curves", "config")}))  # fmt: skip
    older = result_line({"engine": "old"})
    assert parse_result_line(f"{older}\n{line}\n")["engine"] == record["engine"]  # the last
    with pytest.raises(ValueError, match="no RESULT line"):
        parse_result_line("RESULT{}\nnothing here\n")
    # numpy values and paths become JSON; anything else is refused, not written as its repr
    write_json_atomic(tmp_path / "r.json", {"a": np.arange(3), "p": Path("/x")})
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": [0, 1, 2], "p": "/x"}
    assert (tmp_path / "r.json").read_text().endswith("}\n")
    with pytest.raises(TypeError, match="cannot write object to JSON"):
        write_json_atomic(tmp_path / "bad.json", {"o": object()})
    assert not (tmp_path / "bad.json").exists()


def test_the_versions_are_those_of_the_libraries_imported(monkeypatch):
    # An earlier test in the same process may have imported TensorFlow (the Keras engine's):
    # the record must follow sys.modules, whatever the order the tests ran in.
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    found = versions()
    assert found["higgsbench"] == __version__ and found["python"] == platform.python_version()
    assert found["numpy"] == metadata.version("numpy")
    assert "tensorflow" not in found
    monkeypatch.setitem(sys.modules, "keras", types.SimpleNamespace(__version__="9.9"))
    monkeypatch.setitem(_DISTRIBUTIONS, "keras", "no-such-distribution-here")
    assert versions()["keras"] == "9.9"  # not installed as a distribution: the module's own


def test_the_commit_is_the_images_or_the_packages_checkouts_from_any_directory(
    monkeypatch, tmp_path
):
    monkeypatch.setenv("HIGGSBENCH_GIT_SHA", "abc123")
    assert git_sha() == "abc123"
    monkeypatch.delenv("HIGGSBENCH_GIT_SHA")
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True,
        cwd=Path(result.__file__).parent,
    )  # fmt: skip
    assert head.returncode == 0, "the tests run from a git checkout"
    monkeypatch.chdir(tmp_path)  # not a repository
    assert git_sha() == head.stdout.strip()
    # a repository without a commit: git prints "HEAD" and fails
    subprocess.run(["git", "init", "-q", tmp_path / "empty"], check=True)
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "empty" / ".git"))
    assert git_sha() == "unknown"
    monkeypatch.setenv("GIT_DIR", str(tmp_path))  # git, but no repository: it fails
    assert git_sha() == "unknown"
    monkeypatch.setenv("PATH", "/nowhere")  # no git at all
    assert git_sha() == "unknown"


def test_the_machine_is_named_by_its_cpu_model():
    info = machine()
    assert info["hostname"] == platform.node() and info["cpu_count"] == os.cpu_count()
    models = [
        line.split(":", 1)[1].strip()
        for line in Path("/proc/cpuinfo").read_text().splitlines()
        if line.startswith("model name")
    ]
    assert info["processor"] == (models[0] if models else platform.processor() or "unknown")
    assert info["platform"] == platform.platform()


def test_the_result_line_is_compact_json_with_numpy_values_as_lists():
    line = result_line({"a": np.float32(0.5), "b": np.arange(2), "curves": {}})
    assert line == 'RESULT {"a":0.5,"b":[0,1]}'


def test_a_json_record_is_indented_by_two(tmp_path):
    record = {"a": {"b": [1, 2]}, "c": "d"}
    write_json_atomic(tmp_path / "r.json", record)
    assert (tmp_path / "r.json").read_text() == json.dumps(record, indent=2) + "\n"


def test_a_module_without_a_version_or_a_distribution_is_unknown(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras", types.SimpleNamespace())
    monkeypatch.setitem(_DISTRIBUTIONS, "keras", "no-such-distribution-here")
    assert versions()["keras"] == "unknown"


def test_the_gpu_is_the_first_cuda_device_when_torch_sees_one(monkeypatch):
    names = ["NVIDIA H100 80GB HBM3", "NVIDIA L4"]
    cuda = types.SimpleNamespace(is_available=lambda: True, get_device_name=names.__getitem__)
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    assert machine()["gpu"] == "NVIDIA H100 80GB HBM3"
    cuda.is_available = lambda: False
    assert "gpu" not in machine()
    monkeypatch.delitem(sys.modules, "torch")  # not imported by the run: no GPU looked for
    assert "gpu" not in machine()


def test_the_cpu_model_is_all_after_the_first_colon_else_the_platforms(monkeypatch):
    cpuinfo = "processor\t: 0\nmodel name\t: Vendor CPU: model 9\nflags\t: avx2\n"
    monkeypatch.setattr(
        result, "Path", lambda path: types.SimpleNamespace(read_text=lambda: cpuinfo)
    )
    assert result._cpu_model() == "Vendor CPU: model 9"

    def unreadable():
        raise PermissionError("/proc/cpuinfo")

    monkeypatch.setattr(result, "Path", lambda path: types.SimpleNamespace(read_text=unreadable))
    monkeypatch.setattr(platform, "processor", lambda: "x86_64")
    assert result._cpu_model() == "x86_64"
    monkeypatch.setattr(platform, "processor", lambda: "")
    assert result._cpu_model() == "unknown"


def test_the_record_keeps_the_peak_the_machine_and_gflops_from_events_per_second():
    record, _ = _record()
    assert record["peak_gflops"] == 100.0 and record["machine"] == machine()
    # 400 events/s of 6·(21·50 + 50·50 + 50·1) = 21 600 FLOP each: 8.64 MFLOP/s
    assert record["gflops"] == 400 * 21_600 / 1e9
    config = RunConfig(data=Path("nowhere"), out=Path("nowhere"), epochs=1)
    instant = build_record(config, network_spec(28), _Data(), _outcome([0.0], 1_000), lr=1e-3)
    assert np.isnan(instant["events_per_second"])  # an epoch the clock could not time
