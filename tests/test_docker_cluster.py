"""The compose mini-cluster for real: a Docker engine, the Spark node image, genuine HIGGS rows.

As a user would meet them: bring up a master and 2 workers, train one epoch across both on
the genuine sample, scale to 3 workers, kill a worker container mid-training, show a driver
without the secret is refused, check what is published, run `make bench-local` (also logging
to the cluster's MLflow service), and tear down.
Each test makes what it needs and leaves the cluster as it found it (2 workers), so any one
runs alone or in any order. Skipped when no Docker engine answers, unless
HIGGSBENCH_REQUIRE_DOCKER=1 (CI), which turns the skip into a failure.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time

import pytest

from higgsbench.core.network import network_spec
from higgsbench.records.result import parse_result_line
from tests.compose import (
    DOCKER,
    SPARK_IMAGE,
    TRACKING_IMAGE,
    Cluster,
    ensure_image,
    require_docker,
    train_argv,
)
from tests.helpers import free_port

pytestmark = pytest.mark.docker
require_docker()
PROJECT = "hbtest"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("compose"), PROJECT, SPARK_IMAGE)
    c.up(workers=2, make_target="images")
    yield c
    c.down()


def test_1_two_workers_up_as_non_root(cluster):
    assert cluster.alive_workers() == 2
    for service in ("master", "worker", "history"):
        uid = cluster.compose("exec", "-T", service, "id", "-u").stdout.strip()
        assert uid != "0" and uid == "10001", f"{service} runs as uid {uid}"


def test_1b_rpc_is_encrypted_and_the_containers_hardened(cluster):
    # what the running daemons were started with (the entrypoint's spark-defaults.conf)
    for service in ("master", "worker", "history"):
        conf = cluster.spark_defaults(service)
        assert conf["spark.authenticate"] == "true", service
        assert conf["spark.network.crypto.enabled"] == "true", service
        assert conf["spark.network.crypto.saslFallback"] == "false", service
        assert conf["spark.ui.killEnabled"] == "false", service
    inspected = json.loads(
        subprocess.run(
            [DOCKER, "inspect", *cluster.containers()], capture_output=True, text=True, check=True
        ).stdout
    )
    assert len(inspected) >= 5  # secret-init, master, 2 workers, history
    for c in inspected:
        host, name = c["HostConfig"], c["Name"]
        assert host["CapDrop"] == ["ALL"], name
        assert "no-new-privileges:true" in host["SecurityOpt"], name
        assert host["ReadonlyRootfs"] is True, name
        assert 0 < host["PidsLimit"] <= 1024 and 0 < host["Memory"] <= 8 * 2**30, name
        if not name.endswith("secret-init-1"):
            assert not host["CapAdd"], name
            assert "exec" in host["Tmpfs"]["/tmp"], name
    # the root is read-only indeed, /tmp is not
    denied = cluster.compose("exec", "-T", "master", "touch", "/opt/x", check=False)
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    cluster.compose("exec", "-T", "master", "touch", "/tmp/x")


def test_2_one_epoch_on_the_genuine_sample_across_both_workers(cluster):
    data = cluster.prepare_sample()
    proc = cluster.driver(
        *train_argv("spark", 2, data, "/shared/runs/sample", "--epochs", 1, "--batch-size", 512)
    )
    line = parse_result_line(proc.stdout)
    stored = cluster.read_json("/shared/runs/sample/result.json")
    assert stored["test_auc"] == line["test_auc"]
    assert stored["engine"] == "spark" and stored["nodes"] == 2
    assert [r["rank"] for r in stored["ranks"]] == [0, 1]
    assert len({r["host"] for r in stored["ranks"]}) == 2, "ranks must run in two containers"
    assert all(len(r["epoch_seconds"]) == 1 for r in stored["ranks"])
    assert stored["train_rows"] == 8788 and stored["generated_data"] is False
    # DDP kept the replicas in step: the same weights on both ranks, bit for bit
    assert len({r["weights_sha256"] for r in stored["ranks"]}) == 1, stored["ranks"]
    assert 0.0 <= stored["test_auc"] <= 1.0
    assert stored["allreduce"]["bytes"] == 4 * network_spec(28).parameters()
    # event logging is on: the history server's directory holds this application
    events = cluster.compose("exec", "-T", "history", "ls", "/shared/events").stdout.split()
    assert events, "no event log written"


@contextlib.contextmanager
def scaled(cluster, workers: int):
    """The cluster with this many workers ALIVE; back to the fixture's 2 afterwards."""
    try:
        cluster.compose(
            "up", "-d", "--wait", "--scale", f"worker={workers}", "--no-recreate", "worker",
            timeout=300,
        )  # fmt: skip
        cluster.wait_for_workers(workers)
        yield
    finally:
        cluster.compose("up", "-d", "--wait", "--scale", "worker=2", "worker", timeout=300)
        cluster.wait_for_workers(2, timeout=120)  # the master forgets a removed worker late


def test_3_scale_to_three_workers(cluster):
    with scaled(cluster, 3):
        assert cluster.alive_workers() == 3


def test_4_killing_a_worker_container_ends_the_run_naming_it(cluster):
    with scaled(cluster, 3):
        _kill_a_worker_mid_run(cluster)


def _kill_a_worker_mid_run(cluster):
    assert cluster.alive_workers() == 3
    cluster.driver(
        "driver", "data", "synth", "--events", "150000", "--seed", "5", "--force",
        "--out", "/shared/data/toy",
    )  # fmt: skip
    cmd = cluster.command(
        "run",
        "--rm",
        "--no-TTY",
        *train_argv(
            "spark",
            3,
            "/shared/data/toy",
            "/shared/runs/kill",
            "--epochs",
            50,
            "--batch-size",
            1023,
            "--worker-timeout",
            60,
        ),
    )
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.env
    )
    deadline = time.monotonic() + 400
    while cluster.compose(
        "exec", "-T", "master", "test", "-f", "/shared/runs/kill/checkpoint.pt", check=False
    ).returncode:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "training never finished an epoch"
        time.sleep(1)
    time.sleep(1)
    victim = f"{cluster.project}-worker-3"
    subprocess.run([DOCKER, "kill", victim], check=True, capture_output=True)
    killed_at = time.monotonic()
    try:
        _, stderr = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the run did not end within 180 s of losing a worker container")
    assert proc.returncode != 0
    message = [line for line in stderr.splitlines() if "higgsbench: error" in line][-1]
    assert "was lost during training" in message and "--resume" in message, message
    assert time.monotonic() - killed_at < 180


def test_5_a_driver_without_the_secret_is_refused(cluster):
    cluster.driver(
        "driver", "data", "synth", "--events", "3000", "--seed", "6", "--force",
        "--out", "/shared/data/small",
    )  # fmt: skip
    proc = cluster.compose(
        "run",
        "--rm",
        "--no-TTY",
        "-e",
        "SPARK_RPC_SECRET_FILE=/nonexistent",
        "-e",
        "HIGGSBENCH_SPARK_SECRET_FILE=",
        *train_argv(
            "spark", 2, "/shared/data/small", "/shared/runs/nosecret", "--worker-timeout", 20
        ),
        check=False,
        timeout=400,
    )
    assert proc.returncode != 0
    assert "did not accept this driver" in proc.stderr
    # refused by the master's encrypted-auth handler, which has no SASL to fall back on (it
    # logs that at debug level only; the driver receives its answer)
    assert "Unknown challenge message" in proc.stderr
    assert "org.apache.spark.network.crypto.AuthRpcHandler.doAuthChallenge" in proc.stderr


def test_6_nothing_is_published_beyond_loopback(cluster):
    ids = cluster.containers()
    inspected = json.loads(
        subprocess.run([DOCKER, "inspect", *ids], capture_output=True, text=True, check=True).stdout
    )
    published = []
    for c in inspected:
        for port, bindings in (c["HostConfig"].get("PortBindings") or {}).items():
            for b in bindings or []:
                published.append((c["Name"], port, b["HostIp"]))
    assert published, "the master and history UIs should be published"
    assert all(ip == "127.0.0.1" for _, _, ip in published), published
    assert {p for _, p, _ in published} == {"8080/tcp", "18080/tcp"}


# what one worker sends another, timed by the receiver (Mbit/s): the probe of test_8
_RECEIVE = """
import socket, time
server = socket.create_server(("0.0.0.0", 7999))
conn, _ = server.accept()
size, began = 0, None
while chunk := conn.recv(1 << 16):
    began = began or time.perf_counter()
    size += len(chunk)
print(size * 8 / (time.perf_counter() - began) / 1e6)
"""
_SEND = """
import socket, sys, time
for _ in range(100):
    try:
        conn = socket.create_connection((sys.argv[1], 7999))
        break
    except OSError:
        time.sleep(0.1)
conn.sendall(bytes(6_000_000))
conn.close()
"""


def _worker_to_worker_mbit(cluster) -> float:
    receiver = subprocess.Popen(
        cluster.command("exec", "-T", "--index", "1", "worker", "python", "-c", _RECEIVE),
        stdout=subprocess.PIPE,
        text=True,
        env=cluster.env,
    )
    workers = cluster.inspect("worker")
    first = next(c["Name"].lstrip("/") for c in workers if c["Name"].endswith("worker-1"))
    cluster.compose("exec", "-T", "--index", "2", "worker", "python", "-c", _SEND, first)
    out, _ = receiver.communicate(timeout=120)
    return float(out.strip())


def test_8_a_worker_link_limited_with_tc_sends_at_the_rate(cluster):
    """`make mini-netlimit RATE=…` (docker/netlimit.sh): tc inside each worker's network
    namespace, from the host, the containers unprivileged; RATE=off frees them again."""

    def netlimit(rate):
        return cluster.make(
            "mini-netlimit", f"RATE={rate}", f"SPARK_IMAGE={SPARK_IMAGE}", timeout=120
        ).stdout

    try:
        said = netlimit("40mbit")
        assert said.count(": 40mbit (burst 25000 bytes)") == 2, said  # 5 ms at 40 Mbit/s
        limited = _worker_to_worker_mbit(cluster)
    finally:
        freed = netlimit("off")
    assert freed.count(": no limit") == 2, freed
    free = _worker_to_worker_mbit(cluster)
    print(f"worker to worker: {limited:.1f} Mbit/s limited to 40, {free:.0f} Mbit/s free")
    assert 0.75 * 40 < limited < 1.1 * 40
    assert free > 5 * 40
    # the workers stayed unprivileged: the limit came from outside
    for c in cluster.inspect("worker"):
        assert c["HostConfig"]["CapDrop"] == ["ALL"] and not c["HostConfig"]["CapAdd"]
        assert c["HostConfig"]["Privileged"] is False


def test_9_make_bench_local_leaves_bench_json_plots_and_logs_to_mlflow(cluster, tmp_path):
    """`make bench-local NODES=2 TRACKING=1`: bench.json with the torch baseline and Spark on 1
    and 2 workers, the plots; and the compose service mlflow (the tracking image, non-root,
    published on loopback only) beside the cluster holds the sweep and each of its runs, read
    back from the host through MLflow's client."""
    from mlflow.tracking import MlflowClient

    ensure_image(TRACKING_IMAGE, "images-tracking")
    port = free_port()
    env = {"TRACKING_PORT": str(port), "HIGGSBENCH_TRACKING_IMAGE": TRACKING_IMAGE}
    runs = tmp_path / "runs"
    try:
        cluster.compose("--profile", "tracking", "up", "-d", "--wait", "mlflow", env=env)
        (mlflow,) = cluster.inspect("mlflow", env=env)
        assert mlflow["Config"]["User"] == "10001:10001"  # the image's user spark, not root
        assert mlflow["HostConfig"]["PortBindings"] == {
            "5000/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
        }
        try:
            cluster.make(
                "bench-local", "NODES=2", "EVENTS=20000", "EPOCHS=1", "TRACKING=1",
                f"SPARK_IMAGE={SPARK_IMAGE}", f"RUNS={runs}", env=env,
            )  # fmt: skip
        except AssertionError as failed:  # the server's side of it too
            logs = cluster.compose("--profile", "tracking", "logs", "--tail", "40", "mlflow",
                                   check=False, env=env)  # fmt: skip
            raise AssertionError(f"{failed}\nmlflow's log:\n{logs.stdout}{logs.stderr}") from None
        (sweep,) = runs.glob("bench-local-*")
        bench = json.loads((sweep / "bench.json").read_text())
        assert [(r["engine"], r["nodes"]) for r in bench["rows"]] == [
            ("torch", 1),
            ("spark", 1),
            ("spark", 2),
        ]
        for png in ("epoch_time_vs_nodes.png", "speedup.png", "efficiency.png", "engines.png"):
            assert (sweep / png).stat().st_size > 10_000

        client = MlflowClient(tracking_uri=f"http://127.0.0.1:{port}")
        experiment = client.get_experiment_by_name("higgsbench").experiment_id
        logged = client.search_runs(
            [experiment], filter_string=f"tags.`higgsbench.sweep` = '{sweep.name}'"
        )
        (parent,) = [r for r in logged if r.data.tags.get("higgsbench.kind") == "bench"]
        children = [r for r in logged if r is not parent]
        assert parent.info.status == "FINISHED"
        assert "bench.json" in {a.path for a in client.list_artifacts(parent.info.run_id)}
        assert (
            sorted(r.info.run_name for r in children)
            == sorted(row["run_dir"] for row in bench["rows"])
            == ["spark-n1-adam", "spark-n2-adam", "torch-n1-adam"]
        )
        for child in children:
            assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
            assert child.data.tags["higgsbench.generated_data"] == "true"
            assert len(client.get_metric_history(child.info.run_id, "val_auc")) == 1
    finally:
        cluster.compose("--profile", "tracking", "rm", "--stop", "--force", "mlflow", env=env)
