"""engine=spark on a real Spark standalone cluster (master + workers from the pip pyspark),
with RPC authentication on, trained on genuine HIGGS rows."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from higgsbench.common.progress import REMOTE_TAG
from higgsbench.data.prepared import PreparedDataset
from higgsbench.spark import cluster as spark_cluster
from higgsbench.spark.cluster import cluster_processes, kill_worker
from tests.helpers import auc_tolerance, run_cli

pytestmark = pytest.mark.spark


def _up(state_dir: Path, workers: int) -> dict:
    run_cli(
        "cluster",
        "up",
        "--workers",
        workers,
        "--cores",
        1,
        "--memory",
        "1g",
        "--state-dir",
        state_dir,
        check=True,
        timeout=300,
    )
    return json.loads((state_dir / "cluster.json").read_text())


def _down_and_check(state_dir: Path) -> None:
    run_cli("cluster", "down", "--state-dir", state_dir, check=True, timeout=180)
    assert cluster_processes(state_dir.resolve()) == []
    spark = [
        p
        for p in psutil.process_iter(["cmdline"])
        if any(str(state_dir) in c for c in (p.info["cmdline"] or []))
    ]
    assert spark == [], f"Spark processes left: {[p.pid for p in spark]}"


@pytest.fixture(scope="module")
def module_cluster(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("spark") / "state"
    state = {**_up(state_dir, 2), "state_dir": state_dir}
    yield state
    _down_and_check(state_dir)


def _healthy(cluster: dict) -> dict:
    """``cluster`` as it should be, two workers alive: made again if it is not."""
    state_dir = cluster["state_dir"]
    health = spark_cluster.status(state_dir)
    if not (health["master_up"] and health["alive_workers"] == 2):
        print(f"the module's cluster was not healthy ({health}): made again")
        run_cli("cluster", "down", "--state-dir", state_dir, check=True, timeout=180)
        cluster.update({**_up(state_dir, 2), "state_dir": state_dir})
    return cluster


@pytest.fixture
def cluster(module_cluster):
    """The module's two-worker cluster, checked before each test that uses it: one that a
    test left without its master or a worker is made again, so that one failure does not
    become the next tests' failures too."""
    return _healthy(module_cluster)


@pytest.fixture(scope="module")
def sample_prepared(tmp_path_factory, request):
    from tests.conftest import SAMPLE, require_data

    require_data(SAMPLE)
    out = tmp_path_factory.mktemp("sample") / "prepared"
    run_cli("data", "prepare", SAMPLE, "--out", out, check=True)
    return out


def _spark_env(cluster) -> dict:
    return {"HIGGSBENCH_STATE_DIR": str(cluster["state_dir"])}


def test_cluster_is_authenticated_loopback_and_without_rest(cluster):
    conf = cluster["state_dir"] / "conf" / "spark-defaults.conf"
    assert oct(conf.stat().st_mode & 0o777) == "0o600"
    assert oct((cluster["state_dir"] / "secret").stat().st_mode & 0o777) == "0o600"
    text = conf.read_text()
    assert "spark.authenticate true" in text and "spark.master.rest.enabled false" in text
    status = json.loads(
        run_cli(
            "cluster", "status", "--json", "--state-dir", cluster["state_dir"], check=True
        ).stdout
    )
    assert status["alive_workers"] == 2 and status["cores"] == 2
    # every listening socket of the cluster is on 127.0.0.1, and no REST server (6066)
    pids = {p.pid for p in cluster_processes(cluster["state_dir"].resolve())}
    listening = [
        c for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN and c.pid in pids
    ]
    assert listening and all(c.laddr.ip in ("127.0.0.1", "::ffff:127.0.0.1") for c in listening)
    assert 6066 not in {c.laddr.port for c in listening}
    # the secret is not on any command line
    secret = (cluster["state_dir"] / "secret").read_text().strip()
    for p in cluster_processes(cluster["state_dir"].resolve()):
        assert secret not in " ".join(p.cmdline())


def test_a_cluster_a_test_left_broken_is_made_again_for_the_next(module_cluster):
    state_dir = module_cluster["state_dir"]
    kill_worker(state_dir, 2)  # as a test that fails half-way might leave it
    deadline = time.monotonic() + 120
    while spark_cluster.status(state_dir)["alive_workers"] == 2:
        assert time.monotonic() < deadline, "the master never noticed the lost worker"
        time.sleep(1)
    again = _healthy(module_cluster)
    assert again["state_dir"] == state_dir and isinstance(again["state_dir"], Path)
    health = spark_cluster.status(state_dir)
    assert health["master_up"] and health["alive_workers"] == 2 and health["cores"] == 2


def test_two_worker_epoch_on_the_genuine_sample(cluster, sample_prepared, tmp_path):
    out = tmp_path / "run"
    proc = run_cli(
        "train",
        "--engine",
        "spark",
        "--master",
        cluster["master_url"],
        "--nodes",
        2,
        "--data",
        sample_prepared,
        "--out",
        out,
        "--epochs",
        1,
        "--batch-size",
        512,
        # bars forced on, as on a terminal: rank 0's progress reaches the driver's
        env={**_spark_env(cluster), "HIGGSBENCH_PROGRESS": "1"},
        check=True,
        timeout=600,
    )
    record = json.loads((out / "result.json").read_text())
    assert record["engine"] == "spark" and record["nodes"] == 2
    # the driver drew it (17 steps of 256 events per rank), and no raw progress line leaked
    assert re.search(r"2 ranks, epoch 1/1 .* 17/17 +[0-9,]+ events/s", proc.stderr), proc.stderr
    assert REMOTE_TAG not in proc.stderr + proc.stdout
    assert record["cores_per_node"] == 1
    ranks = record["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert len({r["pid"] for r in ranks}) == 2, "the two ranks must be two processes"
    assert all(len(r["epoch_seconds"]) == 1 and r["epoch_seconds"][0] > 0 for r in ranks)
    assert sum(r["shard_rows"] for r in ranks) == record["train_rows"] == 8788
    # each rank trained on its own shard, exactly the rows a load of that shard gives here
    data = PreparedDataset(sample_prepared)
    shards = [data.load("train", shard=r, num_shards=2).digest() for r in (0, 1)]
    assert [r["shard_sha256"] for r in ranks] == shards and shards[0] != shards[1]
    # the global batch of 512 shared: 256 per rank, 4394 // 256 = 17 steps an epoch each
    assert [(r["batch_size"], r["steps_per_epoch"]) for r in ranks] == [(256, 17), (256, 17)]
    assert record["epoch_seconds"] == [max(r["epoch_seconds"][0] for r in ranks)]
    assert record["test_rows"] == 1098 and 0.0 <= record["test_auc"] <= 1.0
    # the fixed start-up, part by part, adds up to what the run reports as start-up
    parts = record["startup_breakdown"]
    assert list(parts) == [
        "checks", "spark_session", "executors", "launch", "process_group", "rank_data",
        "rank_setup", "after_training",
    ]  # fmt: skip
    assert all(v >= 0 for v in parts.values()), parts
    assert sum(parts.values()) == pytest.approx(record["startup_seconds"], abs=2.0), parts
    assert {r["kernels"] for r in ranks} == {"onednn"}  # float32 on the CPU, as torch's engine
    # DDP kept the replicas in step: both ranks end with the same weights, bit for bit (ranks
    # that never synchronised their gradients would differ after the first step)
    digests = {r["weights_sha256"] for r in ranks}
    assert len(digests) == 1 and re.fullmatch(r"[0-9a-f]{64}", digests.pop()), ranks
    # and the two ranks learn what one torch process learns from the same rows, batch and seed:
    # the shards are shuffled differently, so within what another seed changes (measured by
    # scripts/seed-spread.py, tests/seed_spread.json), not bit for bit
    ref = tmp_path / "torch"
    run_cli(
        "train", "--engine", "torch", "--data", sample_prepared, "--out", ref, "--epochs", 1,
        "--batch-size", 512, check=True, timeout=300,
    )  # fmt: skip
    torch_auc = json.loads((ref / "result.json").read_text())["test_auc"]
    print(f"test AUC: torch {torch_auc:.4f}, spark n=2 {record['test_auc']:.4f}")
    assert abs(record["test_auc"] - torch_auc) < auc_tolerance("batch-512-adam")
    assert record["generated_data"] is False and len(record["hosts"]) == 2


def test_more_nodes_than_alive_workers_is_refused(cluster, sample_prepared, tmp_path):
    proc = run_cli(
        "train",
        "--engine",
        "spark",
        "--master",
        cluster["master_url"],
        "--nodes",
        3,
        "--batch-size",
        768,
        "--data",
        sample_prepared,
        "--out",
        tmp_path / "r",
        env=_spark_env(cluster),
    )
    assert proc.returncode != 0
    assert "only 2 worker(s) alive" in proc.stderr


def test_a_driver_without_the_secret_is_refused(cluster, sample_prepared, tmp_path):
    # Not the cluster's state directory, so the driver finds no secret. (A wrong secret is
    # refused the same way, by the master's SASL handshake; each try costs Spark's 3 × 20 s
    # registration attempts, so the suite checks one.)
    env = {"HIGGSBENCH_STATE_DIR": str(tmp_path / "elsewhere")}
    started = time.monotonic()
    proc = run_cli(
        "train",
        "--engine",
        "spark",
        "--master",
        cluster["master_url"],
        "--nodes",
        2,
        "--data",
        sample_prepared,
        "--out",
        tmp_path / "r",
        "--worker-timeout",
        25,
        env=env,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "did not accept this driver" in proc.stderr and "secret" in proc.stderr
    assert time.monotonic() - started < 200
    # Refused by the master's authentication handler (encryption on, no SASL fallback: it logs
    # nothing at INFO, but its answer reaches the driver), not merely unreachable.
    assert "AuthRpcHandler" in proc.stderr and "Unknown challenge message" in proc.stderr
    assert not (tmp_path / "r" / "result.json").exists()


def _train_popen(cluster, data: Path, out: Path, *extra) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable, "-m", "higgsbench", "train", "--engine", "spark",
            "--master", cluster["master_url"], "--nodes", "2", "--data", str(data),
            "--out", str(out), *map(str, extra),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HIGGSBENCH_PROGRESS": "0", **_spark_env(cluster)},
    )  # fmt: skip


def _run_tree(root_pids: set[int]) -> list[psutil.Process]:
    procs = {}
    for pid in root_pids:
        try:
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                procs[proc.pid] = proc
        except psutil.NoSuchProcess:
            continue
    return list(procs.values())


def _cmdlines() -> dict[int, str]:
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out[int(entry.name)] = (
                    (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                )
            except OSError:
                continue
    return out


def test_training_keeps_the_secret_off_every_command_line_and_sockets_on_loopback(
    cluster, sample_prepared, tmp_path
):
    """While a two-rank run trains, no command line on the machine holds the secret, and every
    listening socket of the run (driver, daemons, executors, Python workers, torchrun, ranks)
    is on loopback, but for torchrun's rendezvous store (TCPStore has no bind address)."""
    secret = (cluster["state_dir"] / "secret").read_text().strip()
    proc = _train_popen(
        cluster, sample_prepared, tmp_path / "run", "--epochs", 4, "--batch-size", 256
    )
    leaks, seen, listeners, store_ports = set(), set(), set(), set()
    daemons = {p.pid for p in cluster_processes(cluster["state_dir"].resolve())}
    while proc.poll() is None:
        for pid, cmd in _cmdlines().items():
            if secret in cmd:
                leaks.add((pid, cmd[:120]))
            for kind in ("SparkSubmit", "CoarseGrainedExecutorBackend", "torch.distributed.run"):
                if kind in cmd:
                    seen.add(kind)
            if "torch.distributed.run" in cmd and "--rdzv_endpoint=" in cmd:
                store_ports.add(int(cmd.split("--rdzv_endpoint=")[1].split()[0].rsplit(":")[1]))
        for p in _run_tree({proc.pid, *daemons}):
            try:
                for c in p.net_connections("inet"):
                    if c.status == psutil.CONN_LISTEN:
                        listeners.add((c.laddr.ip, c.laddr.port, " ".join(p.cmdline())[:80]))
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        time.sleep(0.1)
    _, stderr = proc.communicate()
    assert proc.returncode == 0, stderr[-2000:]
    assert seen == {"SparkSubmit", "CoarseGrainedExecutorBackend", "torch.distributed.run"}, (
        "the scan did not see the driver, executors and ranks"
    )
    assert leaks == set(), f"the secret is on a command line: {leaks}"
    loopback = ("127.0.0.1", "::ffff:127.0.0.1", "::1")
    wide = {(ip, port, cmd) for ip, port, cmd in listeners if ip not in loopback}
    assert {port for _, port, _ in wide} <= store_ports, f"listening beyond loopback: {wide}"
    # master and worker RPC and UIs, driver, executors: the scan saw them all on loopback
    assert len(listeners - wide) >= 6, listeners


def _bare_driver(cluster, tmp_path, encrypt: bool) -> int:
    """How many executors a plain pyspark driver gets within 30 s, with the cluster's secret
    (from a private properties file) and RPC encryption on or off."""
    props = tmp_path / f"driver-{encrypt}.properties"
    secret = (cluster["state_dir"] / "secret").read_text().strip()
    props.write_text(
        "spark.authenticate true\n"
        f"spark.authenticate.secret {secret}\n"
        f"spark.network.crypto.enabled {str(encrypt).lower()}\n"
        "spark.driver.host 127.0.0.1\nspark.driver.bindAddress 127.0.0.1\n"
        "spark.ui.enabled false\nspark.cores.max 1\nspark.executor.memory 512m\n"
    )
    props.chmod(0o600)
    script = (
        "import time\n"
        "from pyspark.sql import SparkSession\n"
        f"spark = SparkSession.builder.master({cluster['master_url']!r}).getOrCreate()\n"
        "sc = spark.sparkContext._jsc.sc()\n"
        "deadline = time.monotonic() + 30\n"
        "while time.monotonic() < deadline and sc.getExecutorIds().size() == 0:\n"
        "    time.sleep(0.5)\n"
        "print('EXECUTORS', sc.getExecutorIds().size(), flush=True)\n"
        "spark.stop()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYSPARK_SUBMIT_ARGS": f"--properties-file {props} pyspark-shell"},
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("EXECUTORS ")]
    return int(lines[-1].split()[1]) if lines else 0


def test_a_driver_that_does_not_encrypt_is_refused(cluster, tmp_path):
    # The same driver with the right secret: refused without encryption, accepted with it.
    assert _bare_driver(cluster, tmp_path, encrypt=False) == 0
    assert _bare_driver(cluster, tmp_path, encrypt=True) >= 1


def test_the_cluster_encrypts_rpc_without_sasl_fallback(cluster):
    conf = (cluster["state_dir"] / "conf" / "spark-defaults.conf").read_text().splitlines()
    assert "spark.network.crypto.enabled true" in conf
    assert "spark.network.crypto.saslFallback false" in conf
    assert "spark.ui.killEnabled false" in conf


def test_killing_a_worker_mid_epoch_ends_the_run_naming_it(tmp_path_factory, tmp_path):
    data = tmp_path / "toy"
    run_cli("data", "synth", "--events", 150_000, "--out", data, "--seed", 5, check=True)
    state_dir = tmp_path_factory.mktemp("spark-kill") / "state"
    state = _up(state_dir, 2)
    try:
        out = tmp_path / "run"
        env = {**os.environ, "HIGGSBENCH_STATE_DIR": str(state_dir), "HIGGSBENCH_PROGRESS": "0"}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "higgsbench",
                "train",
                "--engine",
                "spark",
                "--master",
                state["master_url"],
                "--nodes",
                "2",
                "--data",
                str(data),
                "--out",
                str(out),
                "--epochs",
                "50",
                "--batch-size",
                "1024",
                "--worker-timeout",
                "60",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        deadline = time.monotonic() + 400
        while not (out / "checkpoint.pt").exists():  # epoch 1 done: we are inside epoch 2
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "training never finished an epoch"
            time.sleep(0.5)
        time.sleep(1.0)
        killed_at = time.monotonic()
        kill_worker(state_dir, 2)
        try:
            _, stderr = proc.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("the run did not end within 180 s of losing a worker")
        ended = time.monotonic() - killed_at
        print(f"the run ended {ended:.1f} s after worker 2 was killed")  # shown with -s
        assert proc.returncode != 0
        message = stderr.strip().splitlines()[-1]
        assert "was lost during training" in message and "worker-" in message, message
        assert "--resume" in message
        assert ended < 180
        assert not (out / "result.json").exists()
    finally:
        _down_and_check(state_dir)


def test_bench_sweeps_nodes_with_a_torch_baseline_and_predicts(cluster, sample_prepared, tmp_path):
    out = tmp_path / "bench"
    proc = run_cli(
        "bench",
        "--engines",
        "spark",
        "--nodes",
        "1,2",
        "--optimizers",
        "adam",
        "--epochs",
        2,
        "--batch-size",
        1024,
        "--master",
        cluster["master_url"],
        "--data",
        sample_prepared,
        "--out",
        out,
        "--predict",
        "1,2,4,8,16",
        "--bandwidth",
        "10Gbit",
        "--verbose",
        env={**_spark_env(cluster), "HIGGSBENCH_PROGRESS": "1"},  # as on a terminal
        check=True,
        timeout=900,
    )
    assert proc.stdout.strip().splitlines()[-1].startswith("RESULT {")
    # --verbose: every line timestamped, each run's own output streamed under its name
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d"
    assert re.search(rf"^{stamp} \[3/3\] spark-n2-adam$", proc.stderr, re.M), proc.stderr
    streamed = rf"^{stamp}   spark-n2-adam \| Started distributed training with 2 executor"
    assert re.search(streamed, proc.stderr, re.M), proc.stderr
    assert "bench [3/3] spark-n2-adam" in proc.stderr  # the sweep's bar
    # the children drew no bars: their logs hold no progress, raw or drawn
    for run in ("torch-n1-adam", "spark-n1-adam", "spark-n2-adam"):
        log = (out / run / "train.log").read_text()
        assert REMOTE_TAG not in log and "ranks, epoch" not in log
    bench = json.loads((out / "bench.json").read_text())
    rows = {(r["engine"], r["nodes"]): r for r in bench["rows"]}
    assert set(rows) == {("torch", 1), ("spark", 1), ("spark", 2)}
    assert rows[("torch", 1)]["cores_per_node"] == 2  # the baseline uses the cluster's 2 cores
    assert rows[("spark", 1)]["speedup"] == 1.0
    two = rows[("spark", 2)]
    assert two["speedup"] == pytest.approx(
        rows[("spark", 1)]["epoch_seconds"] / two["epoch_seconds"]
    )
    assert two["efficiency"] == pytest.approx(two["speedup"] / 2)
    p = bench["prediction"]
    assert [q["nodes"] for q in p["points"]] == [1, 2, 4, 8, 16]
    assert p["points"][0]["epoch_seconds"] == pytest.approx(rows[("spark", 1)]["epoch_seconds"])
    assert p["model"]["gradient_bytes"] > 0 and p["measured_network_bits_per_second"] > 0
    assert "communication_dominates_from" in p
    for png in ("epoch_time_vs_nodes.png", "speedup.png", "efficiency.png", "prediction.png"):
        assert (out / png).stat().st_size > 10_000
