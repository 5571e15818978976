"""`bench --repeat R`: every configuration runs R times, each in its own run directory;
bench.json keeps every repeat's epoch times, each row the median over the repeats with the
min–max; speed-up and efficiency are ratios of the medians, their range from the fastest and
slowest repeats; the scaling model takes medians. A bench.json from before repeats still reads.

The runs here are a stand-in interpreter (--python ENGINE=…) that prints the RESULT line of a
run with the epoch times given below, so every number can be worked out by hand."""

import json
import statistics
import sys
from pathlib import Path

import pytest

from higgsbench.common.errors import HiggsbenchError
from higgsbench.records.bench import read_bench, repeat_dirs, spread
from higgsbench.sweep.plan import BenchPlan
from higgsbench.sweep.plots import _run_spread
from higgsbench.sweep.summary import summarise, table
from tests.helpers import fake_run_record, run_cli, write_fake_bench

ROWS = 409_600  # training events stepped over per epoch, every run
# each run's epoch times: configuration → one list per repeat
EPOCHS = {
    "torch-n1": [[3.0, 3.0], [2.0, 2.0], [2.4, 2.6]],  # medians 3.0, 2.0, 2.5
    "spark-n1": [[4.0, 4.2], [4.4, 4.4], [3.6, 4.0]],  # medians 4.1, 4.4, 3.8
    "spark-n2": [[2.0, 2.1], [2.1, 2.1], [2.5, 2.5]],  # medians 2.05, 2.1, 2.5
}
# the all-reduce as each repeat of the 2-node run timed it
ALLREDUCE = [
    {"bytes": 754_804, "latency_seconds": 50e-6, "bytes_per_second": 1.0e8},
    {"bytes": 754_804, "latency_seconds": 70e-6, "bytes_per_second": 1.5e8},
    {"bytes": 754_804, "latency_seconds": 60e-6, "bytes_per_second": 1.25e8},
]

FAKE_TRAIN = """#!{python}
# `higgsbench train` as a bench child is called, answering with the run of EPOCHS
import json, pathlib, statistics, sys
argv = sys.argv[1:]
def option(name, default):
    return argv[argv.index(name) + 1] if name in argv else default
out = pathlib.Path(option("--out", None))
engine, nodes = option("--engine", "torch"), int(option("--nodes", "1"))
repeat = int(out.name.rpartition("-r")[2]) - 1
record = json.loads(pathlib.Path({base!r}).read_text())
seconds = json.loads(pathlib.Path({epochs!r}).read_text())[f"{{engine}}-n{{nodes}}"][repeat]
median = statistics.median(seconds)
record.update(engine=engine, nodes=nodes, epoch_seconds=seconds, epoch_seconds_median=median,
              events_per_second={rows} / median, test_auc=0.80 + 0.01 * repeat)
if engine == "spark" and nodes > 1:
    record["allreduce"] = json.loads(pathlib.Path({allreduce!r}).read_text())[repeat]
out.mkdir(parents=True, exist_ok=True)
(out / "result.json").write_text(json.dumps(record))
print("RESULT " + json.dumps(record))
"""


def _fake_train(tmp_path: Path) -> Path:
    base = fake_run_record(
        gflops=1.0,
        fraction_of_peak=0.5,
        data={"rows": {"train": ROWS}},
        machine={"processor": "x"},
        generated_data=True,
        train_rows_per_epoch=ROWS,
    )
    files = {"base": base, "epochs": EPOCHS, "allreduce": ALLREDUCE}
    for name, value in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(value))
    script = tmp_path / "fake-train"
    script.write_text(
        FAKE_TRAIN.format(
            python=sys.executable,
            rows=ROWS,
            **{name: str(tmp_path / f"{name}.json") for name in files},
        )
    )
    script.chmod(0o755)
    return script


@pytest.fixture
def repeated_sweep(toy_dataset, tmp_path):
    """A sweep of torch on 1 node and spark on 1 and 2, three repeats each, run by the CLI."""
    fake = _fake_train(tmp_path)
    out = tmp_path / "sweep"
    proc = run_cli(
        "bench", "--data", toy_dataset, "--out", out, "--engines", "spark",
        "--nodes", "1,2", "--master", "spark://nowhere:7077", "--optimizers", "adam",
        "--batch-size", 256, "--repeat", 3,
        "--python", f"torch={fake}", "--python", f"spark={fake}",
        check=True,
    )  # fmt: skip
    return out, proc


def test_every_repeat_runs_in_its_own_directory_and_bench_json_keeps_its_epochs(repeated_sweep):
    out, proc = repeated_sweep
    bench = json.loads((out / "bench.json").read_text())
    assert bench["plan"]["repeat"] == 3 and bench["failures"] == []
    rows = {(r["engine"], r["nodes"]): r for r in bench["rows"]}
    assert list(rows) == [("torch", 1), ("spark", 1), ("spark", 2)]
    for (engine, nodes), row in rows.items():
        name = f"{engine}-n{nodes}-adam"
        assert repeat_dirs(row) == [f"{name}-r1", f"{name}-r2", f"{name}-r3"]
        assert row["run_dir"] == f"{name}-r1"
        for k in (1, 2, 3):
            assert (out / f"{name}-r{k}" / "result.json").exists()
        assert [r["epoch_seconds"] for r in row["repeats"]] == EPOCHS[f"{engine}-n{nodes}"]
        assert [r["test_auc"] for r in row["repeats"]] == pytest.approx([0.80, 0.81, 0.82])
        assert row["test_auc"] == pytest.approx(0.81)
    assert "[9/9] spark-n2-adam-r3" in proc.stderr
    # the median over the repeats' median epochs, and their min–max, by hand
    torch, one, two = rows[("torch", 1)], rows[("spark", 1)], rows[("spark", 2)]
    assert (torch["epoch_seconds"], *spread(torch)) == pytest.approx((2.5, 2.0, 3.0))
    assert (one["epoch_seconds"], *spread(one)) == pytest.approx((4.1, 3.8, 4.4))
    assert (two["epoch_seconds"], *spread(two)) == pytest.approx((2.1, 2.05, 2.5))
    assert (two["events_per_second"], *spread(two, "events_per_second")) == pytest.approx(
        (ROWS / 2.1, ROWS / 2.5, ROWS / 2.05)
    )
    # speed-up and efficiency from the medians; their range: slowest over fastest and back
    assert "speedup" not in torch
    assert (two["speedup"], *spread(two, "speedup")) == pytest.approx(
        (4.1 / 2.1, 3.8 / 2.5, 4.4 / 2.05)
    )
    assert (two["efficiency"], *spread(two, "efficiency")) == pytest.approx(
        (4.1 / 2.1 / 2, 3.8 / 2.5 / 2, 4.4 / 2.05 / 2)
    )
    assert one["speedup"] == 1.0 and spread(one, "speedup") == (1.0, 1.0)  # by definition
    # the table shows the median (min–max); the RESULT line leaves the repeats' lists out
    md = (out / "bench.md").read_text()
    assert "epoch s, median of 3 runs (min–max)" in md
    assert (
        "| spark | 2 × 4 | adam | cpu | 2.100 (2.050–2.500) | 195,048 (163,840–199,805) "
        "| 1.95 (1.52–2.15) | 98 % (76–107 %) | 0.8100 |"
    ) in md
    last = json.loads(proc.stdout.strip().splitlines()[-1].removeprefix("RESULT "))
    assert "repeats" not in last["rows"][0] and last["rows"][2]["epoch_seconds_min"] == 2.05
    # the plots' bars span the repeats
    assert _run_spread(two, out) == {"lo": 2.05, "hi": 2.5, "test_rows": 1000}


def test_the_scaling_model_takes_the_medians_of_the_repeats(repeated_sweep, tmp_path):
    out, _ = repeated_sweep
    proc = run_cli(
        "bench", "--from", out / "bench.json", "--out", tmp_path / "again",
        "--predict", "1,2,4", check=True,
    )  # fmt: skip
    assert "prediction at 10Gbit" in proc.stderr
    prediction = json.loads((tmp_path / "again" / "bench.json").read_text())["prediction"]
    model = prediction["model"]
    assert model["seconds_per_event"] == pytest.approx(4.1 / ROWS / 1)  # 1 node, median epoch
    assert model["latency_seconds"] == pytest.approx(60e-6)  # median of 50, 70, 60 µs
    assert prediction["measured_network_bits_per_second"] == pytest.approx(1.25e8 * 8)
    assert prediction["measured"][1] == pytest.approx(
        {"nodes": 2, "epoch_seconds": 2.1, "epoch_seconds_min": 2.05, "epoch_seconds_max": 2.5}
    )
    assert (tmp_path / "again" / "prediction.png").exists()


def test_a_bench_json_from_before_repeats_still_reads_and_redraws(tmp_path):
    old = write_fake_bench(
        tmp_path / "old",
        [
            fake_run_record(engine="torch", cores_per_node=2, epoch_seconds_median=3.2),
            fake_run_record(nodes=1, epoch_seconds_median=4.0),
            fake_run_record(nodes=2, epoch_seconds_median=2.5),
        ],
    )
    bench = read_bench(old, "--from")
    row = bench["rows"][2]
    assert "repeats" not in row
    assert repeat_dirs(row) == ["spark-n2-adam"] and spread(row) == (2.5, 2.5)
    proc = run_cli("bench", "--from", old, "--out", tmp_path / "again", check=True)
    md = (tmp_path / "again" / "bench.md").read_text()
    assert md.startswith("| engine | nodes × cores | optimizer | device | epoch s | events/s |")
    assert "| spark | 2 × 4 | adam | cpu | 2.500 | 163,840 | – | – | 0.8000 |" in md
    assert "(" not in md.split("\n", 2)[2]  # no ranges where there are no repeats
    assert (tmp_path / "again" / "engines.png").exists()
    assert proc.stdout.strip().splitlines()[-1].startswith("RESULT {")


def test_malformed_repeats_and_a_repeat_below_one_are_refused(tmp_path, toy_dataset):
    bad = write_fake_bench(tmp_path / "bad", [fake_run_record()])
    bench = json.loads(bad.read_text())
    bench["rows"][0]["repeats"] = [{"run_dir": "x", "epoch_seconds": "fast"}]
    bad.write_text(json.dumps(bench))
    with pytest.raises(HiggsbenchError, match=r"rows\[0\]\.repeats"):
        read_bench(bad, "--from")
    proc = run_cli("bench", "--data", toy_dataset, "--out", tmp_path / "o", "--repeat", 0)
    assert proc.returncode == 2 and "--repeat" in proc.stderr, proc.stderr
    assert not (tmp_path / "o").exists()


def test_one_repeat_keeps_the_single_run_layout_and_table():
    plan = BenchPlan.of(data=Path("d"), out=Path("o"), engines=["torch"], optimizers=["adam"])
    assert plan.repeat == 1
    record = {
        **fake_run_record(engine="torch", epoch_seconds=[1.0, 3.0], epoch_seconds_median=2.0),
        "gflops": 1.0,
        "run_dir": "torch-n1-adam",
        "data": {},
        "machine": {},
        "generated_data": True,
    }
    (row,) = summarise(plan, [record], [])["rows"]
    assert row["epoch_seconds"] == 2.0 and "epoch_seconds_min" not in row
    assert row["repeats"] == [
        {
            "run_dir": "torch-n1-adam",
            "epoch_seconds": [1.0, 3.0],
            "epoch_seconds_median": 2.0,
            "events_per_second": ROWS / 2.0,
            "test_auc": 0.8,
        }
    ]
    assert "| torch | 1 × 4 | adam | cpu | 2.000 | 204,800 | – | – | 0.8000 |" in table(
        {"rows": [row]}
    )
    assert statistics.median([3.0, 2.0, 2.5]) == 2.5  # the rule the sweep above relies on
