"""The sweep's plan and summaries, and `higgsbench bench` itself: a failing run, refused
settings, and what it does with a bench.json it is given (--from, --against, --predict)."""

import json
import re
import sys
from pathlib import Path

import pytest

from higgsbench.sweep.plan import BenchPlan
from higgsbench.sweep.summary import gpu_equivalent_cores, summarise, summary_line, table
from tests.helpers import fake_run_record, run_cli, write_fake_bench


def _plan(**kw):
    return BenchPlan.of(data=Path("d"), out=Path("o"), optimizers=["adam"], **kw)


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
    on_gpu = [
        _record("torch", 1, 0, 0.1, device="cuda:0 (H200)"),
        _record("keras", 1, 0, 0.25, device="cuda:0 (H200)"),  # the thesis' engine, same card
    ]
    gpu = summarise(_plan(engines=["torch", "keras"]), on_gpu, [])["rows"]
    # per core: torch 1 × 2 at 100 k events/s = 50 k, spark 1 × 4 = 31 k, spark 4 × 4 = 25 k;
    # the best CPU core of the sweep is the yardstick, for each engine on the GPU
    eq = {g["engine"]: g for g in gpu_equivalent_cores(gpu, bench)}
    assert eq["torch"]["cpu_events_per_second_per_core"] == pytest.approx(50_000)
    assert eq["torch"]["gpu_equals_cores"] == pytest.approx(10_000_000 / 50_000)
    assert eq["keras"]["gpu_equals_cores"] == pytest.approx(4_000_000 / 50_000)
    assert summary_line(bench).startswith('RESULT {"bench":"higgsbench"')
    assert "| spark | 4 × 4 | adam | cpu | 2.500 |" in table(bench)


# ---------------------------------------------------------------- the command: runs, failures


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_a_failing_run_is_reported_exits_1_and_the_other_runs_are_kept(toy_dataset, tmp_path):
    # keras's "interpreter" fails at once, as a broken environment would; torch's records how
    # it is called and then trains for real: --python picks the interpreter of each engine
    calls = tmp_path / "calls.txt"
    broken = _script(
        tmp_path / "broken",
        f'echo "$@" > {tmp_path}/broken.txt\n'
        'echo "keras: cannot start in this environment" >&2\nexit 1\n',
    )
    wrapper = _script(tmp_path / "wrapper", f'echo "$@" >> {calls}\nexec {sys.executable} "$@"\n')
    out = tmp_path / "sweep"
    proc = run_cli(
        "bench", "--data", toy_dataset, "--out", out,
        "--engines", "keras,torch", "--optimizers", "adam",
        "--epochs", 1, "--batch-size", 256, "--threads", 1,
        "--python", f"keras={broken}", "--python", f"torch={wrapper}",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    # the failure is said, with the child's own last words and where its log is
    log = out / "keras-n1-adam" / "train.log"
    assert "keras: cannot start in this environment" in proc.stderr
    assert f"exit 1: keras: cannot start in this environment (log: {log})" in proc.stderr
    assert "keras: cannot start in this environment" in log.read_text()
    assert (tmp_path / "broken.txt").read_text().startswith("-m higgsbench train ")
    assert "--engine keras" in (tmp_path / "broken.txt").read_text()
    # the run after the failure still ran, through its own interpreter, and is kept
    assert calls.read_text().startswith("-m higgsbench train ")
    assert (out / "torch-n1-adam" / "result.json").exists()
    bench = json.loads((out / "bench.json").read_text())
    assert [(r["engine"], r["run_dir"]) for r in bench["rows"]] == [("torch", "torch-n1-adam")]
    assert len(bench["failures"]) == 1
    failure = bench["failures"][0]
    assert (failure["engine"], failure["nodes"], failure["optimizer"]) == ("keras", 1, "adam")
    assert "cannot start in this environment" in failure["error"]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("RESULT {") and json.loads(last[7:])["failures"] == 1
    assert (out / "bench.md").exists()
    # the torch run's throughput is the rows it stepped over ÷ its median epoch time
    record = json.loads((out / "torch-n1-adam" / "result.json").read_text())
    assert bench["rows"][0]["events_per_second"] == pytest.approx(
        6400 // 256 * 256 / record["epoch_seconds"][0]
    )


def test_a_non_empty_out_is_refused_and_left_alone(toy_dataset, tmp_path):
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "earlier.txt").write_text("an earlier sweep's notes")
    proc = run_cli("bench", "--data", toy_dataset, "--out", out, "--optimizers", "adam")
    assert proc.returncode == 2
    assert "exists and is not empty" in proc.stderr and "--out" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert [p.name for p in out.iterdir()] == ["earlier.txt"]
    assert (out / "earlier.txt").read_text() == "an earlier sweep's notes"


@pytest.mark.parametrize("nodes", ["1,two", "1;2", "2.5", "", ",", "1,,x"])
def test_malformed_nodes_are_refused_before_anything_is_made(toy_dataset, tmp_path, nodes):
    out = tmp_path / "sweep"
    proc = run_cli("bench", "--data", toy_dataset, "--out", out, "--nodes", nodes)
    assert proc.returncode == 2, proc.stderr
    assert "--nodes" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "python, message",
    [("torch", "expected ENGINE=INTERPRETER"), ("torch=/no/such/python", "--python")],
)
def test_a_bad_python_is_refused_before_any_run(toy_dataset, tmp_path, python, message):
    out = tmp_path / "sweep"
    proc = run_cli("bench", "--data", toy_dataset, "--out", out, "--python", python)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


# ---------------------------------------------------------------- --from, --against, --predict


def _cpu_sweep(folder):
    """A CPU sweep: torch on 2 threads at 120 000 events/s (60 000 per core) and spark on
    4 nodes × 4 cores at 800 000 events/s (50 000 per core)."""
    return write_fake_bench(
        folder,
        [
            fake_run_record(
                engine="torch", cores_per_node=2, epoch_seconds_median=409_600 / 120_000
            ),
            fake_run_record(nodes=4, cores_per_node=4, epoch_seconds_median=409_600 / 800_000),
        ],
    )


def test_from_redraws_a_sweep_without_running_it(tmp_path):
    bench_json = _cpu_sweep(tmp_path / "sweep")
    before = bench_json.read_text()
    proc = run_cli("bench", "--from", bench_json, "--out", tmp_path / "again", check=True)
    again = tmp_path / "again"
    assert (again / "bench.md").exists() and (again / "epoch_time_vs_nodes.png").exists()
    table_text = (again / "bench.md").read_text()
    assert "| torch | 1 × 2 | adam | cpu | 3.413 | 120,000 |" in table_text
    assert "| spark | 4 × 4 | adam | cpu | 0.512 | 800,000 |" in table_text
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("RESULT {") and json.loads(last[7:])["failures"] == 0
    # no run was started, the sweep read is not rewritten
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir()) == [
        "bench.json", "spark-n4-adam", "torch-n1-adam"
    ]  # fmt: skip
    assert bench_json.read_text() == before


def test_against_says_how_many_cluster_cores_the_gpu_equals(tmp_path):
    cluster = _cpu_sweep(tmp_path / "cluster")
    gpu = write_fake_bench(
        tmp_path / "gpu",
        [
            fake_run_record(
                engine="torch", device="cuda:0 (H100)", cores_per_node=0,
                epoch_seconds_median=409_600 / 10_000_000,
            )
        ],
    )  # fmt: skip
    proc = run_cli("bench", "--from", gpu, "--against", cluster, check=True)
    # 10 M events/s ÷ the best CPU core of the cluster sweep (torch: 60 000/s) = 166.7 cores
    assert "this GPU equals 167 CPU cores of the cluster (torch adam)" in proc.stderr
    eq = json.loads(gpu.read_text())["gpu_equivalent"]
    assert eq == [
        {
            "engine": "torch",
            "optimizer": "adam",
            "gpu_events_per_second": pytest.approx(10_000_000),
            "cpu_events_per_second_per_core": pytest.approx(60_000),
            "gpu_equals_cores": pytest.approx(10_000_000 / 60_000),
        }
    ]


def test_from_with_predict_fits_the_sweep_and_reproduces_its_points(tmp_path):
    # epoch = 100 × (4096/N × 2 µs + 2(N − 1) × 50 µs + 2(N − 1)/N × 754 804 B / 1.25e8 B/s),
    # by hand: N = 1: 0.8192 s, N = 2: 1.0234432 s, N = 4: 1.1405648 s (see test_scaling)
    measured = {1: 0.8192, 2: 1.0234432, 4: 1.1405648}
    network = {"bytes": 754_804, "latency_seconds": 50e-6, "bytes_per_second": 1.25e8}
    bench_json = write_fake_bench(
        tmp_path / "sweep",
        [
            fake_run_record(nodes=n, epoch_seconds_median=s, allreduce=network if n > 1 else None)
            for n, s in measured.items()
        ],
    )
    proc = run_cli(
        "bench", "--from", bench_json, "--predict", "1,2,4,8,16", "--bandwidth", "10Gbit",
        check=True,
    )  # fmt: skip
    # at 10 Gbit/s communication overtakes compute at 8 nodes (1.76 ms against 1.02 ms)
    assert "communication dominates from 8 nodes" in proc.stderr
    prediction = json.loads(bench_json.read_text())["prediction"]
    assert [p["nodes"] for p in prediction["points"]] == [1, 2, 4, 8, 16]
    for point in prediction["points"][:3]:
        assert point["epoch_seconds_at_measured_network"] == pytest.approx(
            measured[point["nodes"]], rel=1e-9
        )
    assert (tmp_path / "sweep" / "prediction.png").exists()


def test_predict_without_a_multi_node_run_says_what_it_needs(tmp_path):
    bench_json = write_fake_bench(tmp_path / "sweep", [fake_run_record()])
    proc = run_cli("bench", "--from", bench_json, "--predict", "1,2,4")
    assert proc.returncode == 2 and "--predict needs a run on 2 or more nodes" in proc.stderr


def test_verbose_stamps_every_line_and_streams_each_runs_own_output(toy_dataset, tmp_path):
    talker = _script(
        tmp_path / "talker", 'echo "loading the data" >&2\necho "giving up" >&2\nexit 3\n'
    )
    out = tmp_path / "sweep"
    proc = run_cli(
        "bench", "--data", toy_dataset, "--out", out, "--engines", "torch",
        "--optimizers", "adam,sgd", "--epochs", 1, "--python", f"torch={talker}", "--verbose",
    )  # fmt: skip
    assert proc.returncode == 1
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d"
    lines = proc.stderr.splitlines()
    assert all(re.match(stamp + " ", line) for line in lines), proc.stderr
    said = [re.sub("^" + stamp + " ", "", line) for line in lines]
    assert said[:4] == [
        "[1/2] torch-n1-adam",
        "  torch-n1-adam | loading the data",
        "  torch-n1-adam | giving up",
        f"  failed: exit 3: giving up (log: {out / 'torch-n1-adam' / 'train.log'})",
    ]
    assert "  torch-n1-sgd | giving up" in said
    # and without --verbose, the runs' output stays in their logs
    quiet = run_cli(
        "bench", "--data", toy_dataset, "--out", tmp_path / "quiet", "--engines", "torch",
        "--optimizers", "adam", "--epochs", 1, "--python", f"torch={talker}",
    )  # fmt: skip
    assert "loading the data" not in quiet.stderr
    assert "loading the data" in (tmp_path / "quiet" / "torch-n1-adam" / "train.log").read_text()
    assert quiet.stderr.startswith("[1/1] torch-n1-adam\n")


def test_the_sweep_bar_is_drawn_unless_no_progress(toy_dataset, tmp_path):
    failing = _script(tmp_path / "failing", 'echo "no" >&2\nexit 1\n')
    said = {}
    for name, flags in (("drawn", []), ("hidden", ["--no-progress"])):
        said[name] = run_cli(
            "bench", "--data", toy_dataset, "--out", tmp_path / name, "--engines", "torch",
            "--optimizers", "adam", "--epochs", 1, "--python", f"torch={failing}", *flags,
            env={"HIGGSBENCH_PROGRESS": "1"},  # as on a terminal
        ).stderr  # fmt: skip
    assert "bench [1/1] torch-n1-adam" in said["drawn"], said["drawn"]
    assert "bench [1/1]" not in said["hidden"] and "[1/1] torch-n1-adam" in said["hidden"]


def test_a_run_past_the_timeout_is_stopped_and_the_sweep_goes_on(toy_dataset, tmp_path):
    from higgsbench.sweep.runner import run_bench

    sleeper = _script(tmp_path / "sleeper", "echo started >&2\nexec sleep 600\n")
    plan = BenchPlan.of(
        data=toy_dataset, out=tmp_path / "sweep", engines=["torch"], optimizers=["adam", "sgd"],
        epochs=1, python={"torch": str(sleeper)}, timeout=1.0, progress=False,
    )  # fmt: skip
    said = []
    bench = run_bench(plan, echo=said.append)
    assert [f["optimizer"] for f in bench["failures"]] == ["adam", "sgd"]
    log = tmp_path / "sweep" / "torch-n1-adam" / "train.log"
    assert bench["failures"][0]["error"] == f"still running after 1 s: stopped (log: {log})"
    assert log.read_text() == "started\n"
    assert said[1] == f"  failed: still running after 1 s: stopped (log: {log})"
