"""The scaling model's arithmetic, against numbers worked out by hand."""

import json

import pytest

from higgsbench.common.errors import HiggsbenchError
from higgsbench.sweep.scaling import ScalingModel, model_from_bench, parse_bandwidth, predict
from tests.unit.sweeps import GRADIENT_BYTES, MEASURED, NETWORK, worked_sweep


def test_bandwidth_units():
    assert parse_bandwidth("10Gbit") == 10e9
    assert parse_bandwidth("1 gbit/s") == 1e9
    assert parse_bandwidth("100Mbit") == 100e6
    assert parse_bandwidth("125MB/s") == 1e9  # bytes
    assert parse_bandwidth("1kbyte/s") == parse_bandwidth("1 kByte/s") == 8000
    with pytest.raises(HiggsbenchError, match="--bandwidth"):
        parse_bandwidth("fast")


def test_step_time_is_compute_share_plus_ring_allreduce():
    model = ScalingModel(
        seconds_per_event=1e-5,
        cores_per_node=8,
        gradient_bytes=1_000_000,
        latency_seconds=1e-4,
        rows_per_epoch=4096 * 10,
        batch_size=4096,
    )
    compute, comm = model.step_seconds(4, 8e9)  # 1 GB/s
    assert compute == pytest.approx(4096 / 4 * 1e-5)
    # 2(N-1) = 6 hops of 100 µs, and 2(N-1)/N = 1.5 MB at 1 GB/s
    assert comm == pytest.approx(6e-4 + 1.5e-3)
    assert model.epoch_seconds(4, 8e9) == pytest.approx(10 * (compute + comm))
    assert model.step_seconds(1, 8e9) == (pytest.approx(4096 * 1e-5), 0.0)
    # compute 40.96 ms / N falls, communication grows: they cross between 8 and 16 nodes
    assert model.crossover([1, 2, 4, 8, 16, 32], 8e9) == 16
    assert model.crossover([1, 2], 8e9) is None


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_predict_reproduces_the_points_the_model_was_fitted_on(tmp_path, optimizer):
    bench, folder = worked_sweep(tmp_path)
    p = predict(bench, folder, [4, 1, 2, 4], "10Gbit", optimizer=optimizer)
    assert p["optimizer"] == optimizer
    assert [q["nodes"] for q in p["points"]] == [1, 2, 4]
    measured = MEASURED[optimizer]
    assert p["measured"] == [{"nodes": n, "epoch_seconds": measured[n]} for n in (1, 2, 4)]
    # At the network the sweep ran on, the model gives back what was measured. The numbers
    # follow the model exactly, so only float rounding separates them: tolerance 1e-9.
    for q in p["points"]:
        assert q["epoch_seconds_at_measured_network"] == pytest.approx(
            measured[q["nodes"]], rel=1e-9
        ), q
    assert p["measured_network_bits_per_second"] == NETWORK[optimizer]["bytes_per_second"] * 8
    # each measured node count carries its measurement and the prediction's error at 10Gbit
    for q in p["points"]:
        assert q["measured_epoch_seconds"] == measured[q["nodes"]]
        assert q["error"] == pytest.approx(q["epoch_seconds"] / measured[q["nodes"]] - 1)
    assert p["points"][0]["error"] == pytest.approx(0.0)  # one node: no network in it
    model = p["model"]
    assert model["seconds_per_event"] == pytest.approx(measured[1] / 409_600)
    assert model["gradient_bytes"] == GRADIENT_BYTES
    assert model["latency_seconds"] == NETWORK[optimizer]["latency_seconds"]


def test_predict_defaults_to_the_sweeps_first_optimizer(tmp_path):
    bench, folder = worked_sweep(tmp_path)
    assert predict(bench, folder, [1, 2], "1Gbit")["optimizer"] == "sgd"


def test_predict_extrapolates_sensibly(tmp_path):
    bench, folder = worked_sweep(tmp_path)
    nodes = [1, 2, 4, 8, 16, 64, 1024]
    slow = predict(bench, folder, nodes, "1Gbit", optimizer="adam")
    fast = predict(bench, folder, nodes, "10Gbit", optimizer="adam")
    # one node has no network: the same time at any bandwidth, all of it compute
    assert slow["points"][0]["epoch_seconds"] == fast["points"][0]["epoch_seconds"]
    assert fast["points"][0]["epoch_seconds"] == pytest.approx(0.8192, rel=1e-9)
    assert slow["points"][0]["compute_share"] == 1.0
    for a, b in zip(slow["points"][1:], fast["points"][1:], strict=True):
        assert 0 < b["epoch_seconds"] < a["epoch_seconds"]  # a faster network is faster
    for p in (slow, fast):
        shares = [q["compute_share"] for q in p["points"]]
        assert all(0 < s <= 1 for s in shares)
        assert shares == sorted(shares, reverse=True)  # more nodes, more of it talking
        # far out the latency of 2(N − 1) hops dominates: 1024 nodes are slower than 64
        assert p["points"][-1]["epoch_seconds"] > p["points"][-2]["epoch_seconds"]
    # 64 nodes at 10 Gbit/s, by hand: compute 4096/64 × 2 µs = 0.128 ms; 126 hops × 50 µs =
    # 6.3 ms; 2·63/64 × 754 804 × 8 bits / 1e10 = 1.18886... ms
    by_nodes = {q["nodes"]: q for q in fast["points"]}
    volume = 2 * 63 / 64 * GRADIENT_BYTES * 8 / 1e10
    assert by_nodes[64]["epoch_seconds"] == pytest.approx(100 * (0.128e-3 + 6.3e-3 + volume))
    assert by_nodes[64]["compute_share"] == pytest.approx(0.128e-3 / (0.128e-3 + 6.3e-3 + volume))
    # communication overtakes compute at 2 nodes on 1 Gbit/s (6.14 ms > 4.10 ms) and at 8 on
    # 10 Gbit/s (0.7 ms + 1.06 ms > 1.02 ms, while at 4: 1.21 ms < 2.05 ms)
    assert slow["communication_dominates_from"] == 2
    assert fast["communication_dominates_from"] == 8


def test_model_from_bench_scales_compute_with_cores_and_refuses_a_sweep_it_cannot_use(tmp_path):
    bench, folder = worked_sweep(tmp_path)
    runs = {
        r["run_dir"]: json.loads((folder / r["run_dir"] / "result.json").read_text())
        for r in bench["rows"]
    }
    measured = model_from_bench(bench, runs, optimizer="adam")
    assert measured.seconds_per_event == pytest.approx(2e-6)
    assert (measured.cores_per_node, measured.batch_size, measured.rows_per_epoch) == (
        4,
        4096,
        409_600,
    )
    doubled = model_from_bench(bench, runs, optimizer="adam", cores=8)
    assert doubled.cores_per_node == 8 and doubled.seconds_per_event == pytest.approx(1e-6)
    with pytest.raises(HiggsbenchError, match="1-node bigdl run"):
        model_from_bench(bench, runs, engine="bigdl")
    no_one = {**bench, "rows": [r for r in bench["rows"] if r["nodes"] > 1]}
    with pytest.raises(HiggsbenchError, match="1-node spark run"):
        model_from_bench(no_one, runs)
    only_one = {**bench, "rows": [r for r in bench["rows"] if r["nodes"] == 1]}
    with pytest.raises(HiggsbenchError) as refused:
        model_from_bench(only_one, runs)
    assert str(refused.value) == (
        "--predict needs a run on 2 or more nodes, whose ranks time the all-reduce"
    )


def test_a_run_that_does_not_know_its_cores_counts_as_one_core(tmp_path):
    bench, folder = worked_sweep(tmp_path, cores=None)
    model = predict(bench, folder, [2], "1Gbit", optimizer="adam")["model"]
    assert model["cores_per_node"] == 1
    assert model["seconds_per_event"] == pytest.approx(MEASURED["adam"][1] / 409_600)


def test_the_prediction_names_its_inputs_and_keeps_each_measured_rows_spread(tmp_path):
    bench, folder = worked_sweep(tmp_path)
    for row in bench["rows"]:
        row["epoch_seconds_min"], row["epoch_seconds_max"] = row["epoch_seconds"] - 0.1, 9.0
    p = predict(bench, folder, [2], "1Gbit", optimizer="adam")
    assert set(p) == {
        "engine", "optimizer", "bandwidth", "bandwidth_bits_per_second",
        "measured_network_bits_per_second", "model", "points", "measured",
        "communication_dominates_from",
    }  # fmt: skip
    assert (p["engine"], p["bandwidth"], p["bandwidth_bits_per_second"]) == ("spark", "1Gbit", 1e9)
    adam = MEASURED["adam"]
    assert p["measured"] == [
        {"nodes": n, "epoch_seconds": adam[n], "epoch_seconds_min": adam[n] - 0.1,
         "epoch_seconds_max": 9.0}
        for n in (1, 2, 4)
    ]  # fmt: skip


def test_the_network_is_the_one_the_smallest_multi_node_run_measured(tmp_path):
    bench, folder = worked_sweep(tmp_path)
    four = folder / "spark-n4-adam" / "result.json"
    record = json.loads(four.read_text())
    record["allreduce"] = {
        "bytes": GRADIENT_BYTES,
        "latency_seconds": 1e-3,
        "bytes_per_second": 1e6,
    }
    four.write_text(json.dumps(record))
    p = predict(bench, folder, [2], "10Gbit", optimizer="adam")
    assert p["measured_network_bits_per_second"] == NETWORK["adam"]["bytes_per_second"] * 8
    assert p["model"]["latency_seconds"] == NETWORK["adam"]["latency_seconds"]


def test_an_engine_the_sweep_did_not_run_is_refused_and_a_bad_record_named(tmp_path):
    bench, folder = worked_sweep(tmp_path)
    with pytest.raises(HiggsbenchError, match="1-node bigdl run"):
        predict(bench, folder, [2], "1Gbit", engine="bigdl")
    (folder / "spark-n2-adam" / "result.json").write_text("{}")
    with pytest.raises(HiggsbenchError, match=r"the result\.json of a bench run"):
        predict(bench, folder, [2], "1Gbit", optimizer="adam")
