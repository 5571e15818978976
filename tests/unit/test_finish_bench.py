"""What a bench does after its sweep (summary.finish_bench), in this process so that mutation
testing reaches it: the scaling prediction with the options it was given, the GPU in CPU cores,
what it says, which files it writes where, and none of them when it fails."""

from __future__ import annotations

import copy
import json

import pytest

from higgsbench.common.errors import HiggsbenchError
from higgsbench.sweep import plots, summary
from higgsbench.sweep.scaling import predict
from tests.helpers import fake_run_record, write_fake_bench
from tests.unit.sweeps import worked_sweep

PLOTS = {"epoch_time_vs_nodes.png", "speedup.png", "efficiency.png", "engines.png"}


def _finish(bench, out, runs_dir, **options):
    said = []
    line = summary.finish_bench(bench, out, runs_dir=runs_dir, echo=said.append, **options)
    return said, line


def _files(folder):
    return {p.name for p in folder.iterdir() if not p.name.startswith(".")}


def test_without_options_it_writes_the_table_and_plots_and_leaves_bench_json(tmp_path):
    bench, runs = worked_sweep(tmp_path)
    before = (runs / "bench.json").read_text()
    said, line = _finish(bench, tmp_path / "out", runs)
    assert _files(tmp_path / "out") == {"bench.md", *PLOTS}  # no bench.json: nothing new in it
    assert (tmp_path / "out" / "bench.md").read_text() == summary.table(bench) + "\n"
    assert said == [summary.table(bench)]
    assert line == summary.summary_line(bench) and "prediction" not in bench
    assert (runs / "bench.json").read_text() == before


def test_the_prediction_is_the_models_at_the_bandwidth_and_cores_asked_for(tmp_path):
    bench, runs = worked_sweep(tmp_path)
    expected = predict(copy.deepcopy(bench), runs, [8, 1, 2, 4], "1Gbit", cores=8)
    said, _ = _finish(bench, runs, runs, predict=[8, 1, 2, 4], bandwidth="1Gbit", predict_cores=8)
    assert bench["prediction"] == expected
    assert expected["bandwidth"] == "1Gbit" and expected["model"]["cores_per_node"] == 8
    written = json.loads((runs / "bench.json").read_text())  # in the sweep's own folder
    assert written["prediction"] == json.loads(json.dumps(expected))
    assert {"bench.md", "prediction.png", *PLOTS} <= _files(runs)
    crossover = expected["communication_dominates_from"]
    assert crossover is not None
    assert said[0] == f"prediction at 1Gbit: communication dominates from {crossover} nodes"
    points = {p["nodes"]: p for p in expected["points"]}
    checked = ", ".join(
        f"{n} node{'s' if n > 1 else ''} {points[n]['epoch_seconds']:.2f} s predicted, "
        f"{points[n]['measured_epoch_seconds']:.2f} s measured ({points[n]['error']:+.0%})"
        for n in (1, 2, 4)  # the node counts the sweep measured: 8 was not
    )
    assert said[1] == f"prediction at 1Gbit against the sweep: {checked}"
    assert said[2:] == [summary.table(bench)]


def test_a_prediction_without_a_crossover_says_compute_dominates_up_to_the_largest(tmp_path):
    bench, runs = worked_sweep(tmp_path)
    said, _ = _finish(bench, runs, runs, predict=[2, 1], bandwidth="100Gbit")
    assert bench["prediction"]["communication_dominates_from"] is None
    assert said[0] == "prediction at 100Gbit: compute dominates up to 2 nodes"


def test_the_gpu_is_worth_its_events_over_the_best_cpu_core_of_the_same_optimizer(tmp_path):
    gpu = fake_run_record(engine="torch", device="cuda:0", nodes=1, cores_per_node=None,
                          optimizer="sgd", epoch_seconds_median=0.8192)  # fmt: skip
    bench = json.loads(write_fake_bench(tmp_path / "gpu", [gpu]).read_text())
    rows = [
        # per core: 80 000 / (2 × 4) = 10 000; 48 000 / 4 = 12 000, the best; 90 000 / 1
        {"engine": "spark", "nodes": 2, "cores_per_node": 4, "optimizer": "sgd",
         "device": "cpu", "events_per_second": 80_000.0},
        {"engine": "torch", "nodes": 1, "cores_per_node": 4, "optimizer": "sgd",
         "device": "cpu", "events_per_second": 48_000.0},
        {"engine": "spark", "nodes": 1, "cores_per_node": 1, "optimizer": "adam",
         "device": "cpu", "events_per_second": 90_000.0},  # another optimizer
        {"engine": "torch", "nodes": 1, "cores_per_node": 1, "optimizer": "sgd",
         "device": "cuda:1", "events_per_second": 9e9},  # another GPU is no yardstick
    ]  # fmt: skip
    said, line = _finish(bench, tmp_path / "gpu", tmp_path / "gpu", against={"rows": rows})
    # the GPU run: 409 600 events in 0.8192 s = 500 000 events/s, worth 500 000 / 12 000 cores
    want = {"engine": "torch", "optimizer": "sgd", "gpu_events_per_second": 500_000.0,
            "cpu_events_per_second_per_core": 12_000.0,
            "gpu_equals_cores": 500_000 / 12_000}  # fmt: skip
    assert bench["gpu_equivalent"] == [pytest.approx(want)]
    assert said[0] == "this GPU equals 42 CPU cores of the cluster (torch sgd)"
    written = json.loads((tmp_path / "gpu" / "bench.json").read_text())
    assert written["gpu_equivalent"] == bench["gpu_equivalent"]
    assert json.loads(line.partition("RESULT")[2])["gpu_equivalent"] == bench["gpu_equivalent"]


def test_a_failure_leaves_no_file_and_a_users_folder_is_refused_unless_forced(
    tmp_path, monkeypatch
):
    bench, runs = worked_sweep(tmp_path)

    def broken(*args, **kwargs):
        raise RuntimeError("plotting broke")

    with monkeypatch.context() as patched:
        patched.setattr(plots, "write_plots", broken)
        with pytest.raises(RuntimeError, match="plotting broke"):
            _finish(bench, tmp_path / "new", runs, predict=[1, 2])
    assert not (tmp_path / "new").exists()
    bench = json.loads((runs / "bench.json").read_text())  # without the failed call's prediction
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("a user's\n")
    with pytest.raises(HiggsbenchError, match="--out"):
        _finish(bench, mine, runs)
    assert _files(mine) == {"notes.txt"}
    _finish(bench, mine, runs, force=True)
    assert _files(mine) == {"notes.txt", "bench.md", *PLOTS}
