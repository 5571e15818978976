"""A sweep's summary, in this process (so that mutation testing reaches it): the rows of
bench.json from its runs' records, speed-up and efficiency, the GPU in CPU cores, the RESULT
line and the table, each number worked out by hand from the records below."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from higgsbench.sweep import summary
from higgsbench.sweep.plan import BenchPlan
from tests.helpers import fake_run_record

ROWS = 409_600
# configuration → each repeat's epoch times; their medians are noted
EPOCHS = {
    ("torch", 1): [[3.0, 3.0], [2.0, 2.0], [2.4, 2.6]],  # 3.0, 2.0, 2.5
    ("spark", 1): [[4.0, 4.2], [4.4, 4.4], [3.6, 4.0]],  # 4.1, 4.4, 3.8
    ("spark", 2): [[2.0, 2.1], [2.1, 2.1], [2.5, 2.5]],  # 2.05, 2.1, 2.5
}
PLAN = BenchPlan.of(data=Path("d"), out=Path("o"), engines=["spark"], optimizers=["adam"])


def _record(engine: str, nodes: int, repeat: int, **fields) -> dict:
    seconds = EPOCHS[(engine, nodes)][repeat]
    median = statistics.median(seconds)
    return {
        **fake_run_record(
            engine=engine,
            nodes=nodes,
            epoch_seconds=seconds,
            epoch_seconds_median=median,
            events_per_second=ROWS / median,
            test_auc=0.80 + 0.01 * repeat,
            startup_seconds=1.0 + repeat,
            fraction_of_peak=0.1 * (repeat + 1),
        ),
        "gflops": 10.0 * (repeat + 1),
        "run_dir": f"{engine}-n{nodes}-adam-r{repeat + 1}",
        "data": {"rows": {"train": ROWS}},
        "machine": {"processor": "cpu-x", "gpu": None},
        **fields,
    }


def _records(**fields) -> list[dict]:
    return [_record(e, n, k, **fields) for (e, n) in EPOCHS for k in range(3)]


@pytest.fixture
def bench() -> dict:
    return summary.summarise(PLAN, _records(), [{"run_dir": "spark-n4-adam-r1", "exit": 1}])


def test_each_row_holds_the_medians_of_its_repeats_and_their_range(bench):
    rows = {(r["engine"], r["nodes"]): r for r in bench["rows"]}
    assert list(rows) == list(EPOCHS)
    two = rows[("spark", 2)]
    assert {k: two[k] for k in ("engine", "nodes", "cores_per_node", "optimizer", "device")} == {
        "engine": "spark", "nodes": 2, "cores_per_node": 4, "optimizer": "adam", "device": "cpu",
    }  # fmt: skip
    assert (two["epoch_seconds"], two["epoch_seconds_min"], two["epoch_seconds_max"]) == (
        pytest.approx((2.1, 2.05, 2.5))
    )
    assert (two["events_per_second"], two["events_per_second_min"]) == pytest.approx(
        (ROWS / 2.1, ROWS / 2.5)
    )
    assert two["events_per_second_max"] == pytest.approx(ROWS / 2.05)
    assert (two["test_auc"], two["test_auc_min"], two["test_auc_max"]) == pytest.approx(
        (0.81, 0.80, 0.82)
    )
    assert (two["gflops"], two["gflops_min"], two["gflops_max"]) == (20.0, 10.0, 30.0)
    assert two["startup_seconds"] == 2.0 and two["fraction_of_peak"] == pytest.approx(0.2)
    assert two["run_dir"] == "spark-n2-adam-r1"
    assert [r["run_dir"] for r in two["repeats"]] == [f"spark-n2-adam-r{k}" for k in (1, 2, 3)]
    assert two["repeats"][2] == {
        "run_dir": "spark-n2-adam-r3",
        "epoch_seconds": [2.5, 2.5],
        "epoch_seconds_median": 2.5,
        "events_per_second": ROWS / 2.5,
        "test_auc": pytest.approx(0.82),
    }


def test_speedup_and_efficiency_are_ratios_of_medians_with_the_range_of_the_repeats(bench):
    rows = {(r["engine"], r["nodes"]): r for r in bench["rows"]}
    one, two, torch = rows[("spark", 1)], rows[("spark", 2)], rows[("torch", 1)]
    assert "speedup" not in torch and "efficiency" not in torch  # one process: no cluster
    assert (one["speedup"], one["efficiency"]) == (1.0, 1.0)
    assert "speedup_min" not in one  # the base against itself has no range
    assert two["speedup"] == pytest.approx(4.1 / 2.1)
    assert two["efficiency"] == pytest.approx(4.1 / 2.1 / 2)
    # one node's fastest over two nodes' slowest, and the other way round
    assert (two["speedup_min"], two["speedup_max"]) == pytest.approx((3.8 / 2.5, 4.4 / 2.05))
    assert (two["efficiency_min"], two["efficiency_max"]) == pytest.approx(
        (3.8 / 2.5 / 2, 4.4 / 2.05 / 2)
    )


def test_no_speedup_without_a_sweep_over_nodes_or_without_one_node():
    only_two = [_record("spark", 2, k) for k in range(3)]
    (row,) = summary.summarise(PLAN, only_two, [])["rows"]
    assert "speedup" not in row
    one_count = [_record("spark", 1, k) for k in range(3)]
    (row,) = summary.summarise(PLAN, one_count, [])["rows"]
    assert "speedup" not in row
    # another optimizer's one-node run is not this optimizer's base
    other = [_record("spark", 1, 0, optimizer="sgd"), _record("spark", 2, 0)]
    assert all("speedup" not in r for r in summary.summarise(PLAN, other, [])["rows"])
    # single repeats: a speed-up, without a range
    single = [_record("spark", 1, 0), _record("spark", 2, 0)]
    two = summary.summarise(PLAN, single, [])["rows"][1]
    assert two["speedup"] == pytest.approx(4.1 / 2.05) and "speedup_min" not in two


def test_the_bench_keeps_the_plan_the_runs_provenance_and_the_failures(bench):
    assert bench["format"] == summary.FORMAT
    assert bench["plan"] == PLAN.to_dict()
    assert bench["generated_data"] is False
    assert bench["data"] == {"rows": {"train": ROWS}}
    assert bench["machine"] == {"processor": "cpu-x", "gpu": None}  # the runs', not this one's
    assert bench["failures"] == [{"run_dir": "spark-n4-adam-r1", "exit": 1}]
    records = _records()
    records[4]["generated_data"] = True  # one generated run makes the sweep generated
    assert summary.summarise(PLAN, records, [])["generated_data"] is True
    empty = summary.summarise(PLAN, [], [])
    assert (empty["rows"], empty["data"]) == ([], None)
    assert set(empty["machine"]) >= {"processor"} and empty["versions"]


def test_the_result_line_rounds_and_leaves_out_the_run_directories(bench):
    line = summary.summary_line(bench)
    assert line.startswith(summary.RESULT_PREFIX) and "\n" not in line
    slim = json.loads(line.removeprefix(summary.RESULT_PREFIX))
    assert slim["bench"] == "higgsbench" and slim["generated_data"] is False
    assert (slim["machine"], slim["gpu"], slim["failures"]) == ("cpu-x", None, 1)
    assert "gpu_equivalent" not in slim
    two = slim["rows"][2]
    assert "run_dir" not in two and "repeats" not in two
    assert two["speedup"] == round(4.1 / 2.1, 5) and two["nodes"] == 2
    bench["gpu_equivalent"] = [{"engine": "torch", "gpu_equals_cores": 12.5}]
    slim = json.loads(summary.summary_line(bench).removeprefix(summary.RESULT_PREFIX))
    assert slim["gpu_equivalent"] == [{"engine": "torch", "gpu_equals_cores": 12.5}]


def test_the_gpu_is_worth_its_events_over_the_best_events_per_core_of_the_cluster():
    cluster = {
        "rows": [
            {"engine": "spark", "optimizer": "adam", "device": "cpu", "nodes": 2,
             "cores_per_node": 4, "events_per_second": 8000.0},  # 1000 per core
            {"engine": "torch", "optimizer": "adam", "device": "cpu", "nodes": 1,
             "cores_per_node": 2, "events_per_second": 2500.0},  # 1250 per core: the best
            {"engine": "bigdl", "optimizer": "adam", "device": "cpu", "nodes": 1,
             "cores_per_node": None, "events_per_second": 1100.0},  # cores unknown: 1
            {"engine": "torch", "optimizer": "sgd", "device": "cpu", "nodes": 1,
             "cores_per_node": 1, "events_per_second": 9000.0},  # another optimizer
            {"engine": "torch", "optimizer": "adam", "device": "cuda:0", "nodes": 1,
             "cores_per_node": 1, "events_per_second": 1e6},  # a GPU is no yardstick
            {"engine": "keras", "optimizer": "adam", "device": "cpu", "nodes": 1,
             "cores_per_node": 1, "events_per_second": 5000.0},  # not a cluster engine
        ]
    }  # fmt: skip
    gpu = [
        {"engine": "torch", "optimizer": "adam", "device": "cuda:0", "events_per_second": 50_000.0},
        {"engine": "torch", "optimizer": "rmsprop", "device": "cuda:0", "events_per_second": 1.0},
    ]
    assert summary.gpu_equivalent_cores(gpu, cluster) == [
        {
            "engine": "torch",
            "optimizer": "adam",
            "gpu_events_per_second": 50_000.0,
            "cpu_events_per_second_per_core": 1250.0,
            "gpu_equals_cores": 40.0,
        }
    ]  # rmsprop: the cluster ran none, so no comparison
    # each cluster engine is a yardstick of its own; a GPU row without one does not stop those
    # after it; a run of unknown cores counts as one core
    for row, per_core in ((cluster["rows"][0], 1000.0), (cluster["rows"][2], 1100.0)):
        (found,) = summary.gpu_equivalent_cores(gpu[::-1], {"rows": [row]})
        assert found["cpu_events_per_second_per_core"] == per_core, row["engine"]


def test_the_table_reads_median_and_range_per_cell(bench):
    lines = summary.table(bench).splitlines()
    assert lines[0] == (
        "| engine | nodes × cores | optimizer | device | epoch s, median of 3 runs (min–max) "
        "| events/s | speed-up | efficiency | test AUC |"
    )
    assert lines[1] == "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |"
    assert lines[2] == (
        "| torch | 1 × 4 | adam | cpu | 2.500 (2.000–3.000) | 163,840 (136,533–204,800) "
        "| – | – | 0.8100 |"
    )
    assert lines[4] == (
        "| spark | 2 × 4 | adam | cpu | 2.100 (2.050–2.500) | 195,048 (163,840–199,805) "
        "| 1.95 (1.52–2.15) | 98 % (76–107 %) | 0.8100 |"
    )
    assert len(lines) == 5


def test_the_table_header_names_the_range_of_repeat_counts_and_none_for_single_runs():
    mixed = _records()[:2] + _records()[3:4]  # torch twice, spark on one node once
    lines = summary.table(summary.summarise(PLAN, mixed, [])).splitlines()
    assert "epoch s, median of 1–2 runs (min–max)" in lines[0]
    assert lines[2].startswith("| torch | 1 × 4 | adam | cpu | 2.500 (2.000–3.000) |")
    assert lines[3] == "| spark | 1 × 4 | adam | cpu | 4.100 | 99,902 | – | – | 0.8000 |"
    single = summary.summarise(PLAN, [_record("spark", 1, 0)], [])
    assert summary.table(single).splitlines()[0] == (
        "| engine | nodes × cores | optimizer | device | epoch s | events/s | speed-up "
        "| efficiency | test AUC |"
    )


def test_the_prediction_says_where_communication_overtakes_and_how_far_off_it_was():
    said: list[str] = []
    points = [
        {"nodes": 1, "epoch_seconds": 4.0, "measured_epoch_seconds": 4.1, "error": -0.025},
        {"nodes": 2, "epoch_seconds": 2.3, "measured_epoch_seconds": 2.1, "error": 0.095},
        {"nodes": 4, "epoch_seconds": 1.4},
    ]
    prediction = {"bandwidth": "1Gbit", "communication_dominates_from": 4, "points": points}
    summary._say_prediction(prediction, [1, 2, 4], said.append)
    assert said == [
        "prediction at 1Gbit: communication dominates from 4 nodes",
        "prediction at 1Gbit against the sweep: 1 node 4.00 s predicted, 4.10 s measured "
        "(-2%), 2 nodes 2.30 s predicted, 2.10 s measured (+10%)",
    ]
    said.clear()
    prediction = {"bandwidth": "10Gbit", "communication_dominates_from": None, "points": []}
    summary._say_prediction(prediction, [1, 8, 2], said.append)
    assert said == ["prediction at 10Gbit: compute dominates up to 8 nodes"]


def test_the_header_spans_the_fewest_to_the_most_repeats_and_a_nan_reads_nan():
    records = _records()
    counts = records[:3] + records[3:5] + records[6:7]  # torch ×3, spark 1 node ×2, 2 nodes ×1
    lines = summary.table(summary.summarise(PLAN, counts, [])).splitlines()
    assert "epoch s, median of 1–3 runs (min–max)" in lines[0]
    nan = float("nan")  # a run without a timed epoch
    row = {"engine": "spark", "nodes": 1, "cores_per_node": 1, "optimizer": "adam",
           "device": "cpu", "run_dir": "r", "epoch_seconds": nan, "events_per_second": nan,
           "speedup": nan, "efficiency": nan, "test_auc": nan}  # fmt: skip
    assert summary.table({"rows": [row]}).splitlines()[2] == (
        "| spark | 1 × 1 | adam | cpu | nan | nan | nan | nan % | nan |"
    )


def test_the_sweep_records_the_runs_library_versions_and_this_commit(monkeypatch):
    records = _records(versions={"torch": "2.13.0"})
    monkeypatch.setattr(summary, "git_sha", lambda: "c0ffee")
    bench = summary.summarise(PLAN, records, [])
    assert (bench["versions"], bench["git_sha"]) == ({"torch": "2.13.0"}, "c0ffee")


def test_the_result_line_is_compact_and_names_the_gpu(bench):
    bench["machine"]["gpu"] = "NVIDIA H100"
    line = summary.summary_line(bench)
    assert json.loads(line.removeprefix(summary.RESULT_PREFIX))["gpu"] == "NVIDIA H100"
    assert ", " not in line and '": ' not in line
