"""The sweep's plan and summaries (the runs themselves are exercised by the engine tests)."""

from pathlib import Path

import pytest

from higgsbench.bench import BenchPlan, gpu_equivalent_cores, summarise, summary_line, table


def _plan(**kw):
    return BenchPlan(data=Path("d"), out=Path("o"), optimizers=["adam"], **kw)


def test_a_spark_sweep_measures_single_process_torch_first_and_bigdl_beside_it_locally():
    plan = _plan(
        engines=["spark", "bigdl"], nodes=[1, 2], master="spark://m:7077", cores_per_node=2
    )
    assert [(r["engine"], r["nodes"]) for r in plan.runs()] == [
        ("torch", 1),
        ("spark", 1),
        ("spark", 2),
        ("bigdl", 1),
    ]
    assert plan.master_for("spark") == "spark://m:7077"
    assert plan.master_for("bigdl") == "local[4]"  # as many cores as the largest spark run
    alone = _plan(engines=["bigdl"], nodes=[1, 2], master="spark://m:7077")
    assert [(r["engine"], r["nodes"]) for r in alone.runs()] == [("bigdl", 1), ("bigdl", 2)]
    assert alone.master_for("bigdl") == "spark://m:7077"


def _record(engine, nodes, cores, seconds, device="cpu", rows=1_000_000):
    return {
        "engine": engine,
        "nodes": nodes,
        "cores_per_node": cores,
        "optimizer": "adam",
        "device": device,
        "epoch_seconds_median": seconds,
        "events_per_second": rows / seconds,
        "startup_seconds": 1.0,
        "test_auc": 0.8,
        "gflops": 1.0,
        "fraction_of_peak": None,
        "run_dir": f"{engine}-{nodes}",
        "generated_data": True,
        "data": {},
        "machine": {"processor": "x"},
        "versions": {},
    }


def test_speedup_efficiency_and_the_gpu_in_cpu_cores():
    records = [
        _record("torch", 1, 2, 10.0),
        _record("spark", 1, 4, 8.0),
        _record("spark", 4, 4, 2.5),
    ]
    bench = summarise(_plan(engines=["spark"]), records, [])
    rows = {(r["engine"], r["nodes"]): r for r in bench["rows"]}
    assert "speedup" not in rows[("torch", 1)]
    assert rows[("spark", 4)]["speedup"] == pytest.approx(3.2)
    assert rows[("spark", 4)]["efficiency"] == pytest.approx(0.8)
    gpu = summarise(
        _plan(engines=["torch"]), [_record("torch", 1, 0, 0.1, device="cuda:0 (H200)")], []
    )["rows"]
    # per core: torch 1 × 2 at 100 k events/s = 50 k, spark 1 × 4 = 31 k, spark 4 × 4 = 25 k;
    # the best CPU core of the sweep is the yardstick
    eq = gpu_equivalent_cores(gpu, bench)
    assert eq[0]["cpu_events_per_second_per_core"] == pytest.approx(50_000)
    assert eq[0]["gpu_equals_cores"] == pytest.approx(10_000_000 / 50_000)
    assert summary_line(bench).startswith('RESULT {"bench":"higgsbench"')
    assert "| spark | 4 × 4 | adam | cpu | 2.500 |" in table(bench)
