"""`cluster up` and `cluster down` touch only what the kit made: its own marked state directory,
the processes it started, nothing a path in a command line merely points at."""

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from higgsbench.cluster import MARKER, TOKEN_ENV, ClusterState, cluster_processes
from higgsbench.spark_security import driver_properties
from tests.helpers import run_cli


def _one_line_error(proc) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("higgsbench: error:"), proc.stderr
    return lines[0]


def test_up_refuses_a_directory_that_is_not_a_cluster_state_and_keeps_its_files(tmp_path):
    mine = tmp_path / "results"
    mine.mkdir()
    (mine / "thesis.tex").write_text("four years of work\n")
    (mine / "plots").mkdir()
    proc = run_cli("cluster", "up", "--workers", 1, "--state-dir", mine)
    message = _one_line_error(proc)
    assert str(mine) in message and "not a higgsbench cluster" in message
    assert sorted(p.name for p in mine.iterdir()) == ["plots", "thesis.tex"]
    assert (mine / "thesis.tex").read_text() == "four years of work\n"


@pytest.mark.parametrize("where", ["/", "~"])
def test_up_refuses_the_root_and_the_home_directory(where):
    message = _one_line_error(run_cli("cluster", "up", "--workers", 1, "--state-dir", where))
    assert "root or your home directory" in message


def test_down_refuses_a_directory_without_the_marker(tmp_path):
    other = tmp_path / "other"
    (other / "pids").mkdir(parents=True)
    # A pid file that points at a live process of the user's: down must not act on it.
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (other / "pids" / "spark-root-org.apache.spark.deploy.master.Master-1.pid").write_text(
            f"{bystander.pid}\n"
        )
        message = _one_line_error(run_cli("cluster", "down", "--state-dir", other))
        assert "not a higgsbench cluster" in message and "nothing was stopped" in message
        assert bystander.poll() is None, "cluster down killed a process it did not start"
    finally:
        bystander.kill()
        bystander.wait()


def _sleeper(argv_tail: list[str], env: dict | None = None) -> subprocess.Popen:
    """A process of the user's that lives until killed, with ``argv_tail`` on its command line;
    in its own session, so it is no child of anything the cluster started."""
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)", *argv_tail],
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )


@pytest.mark.spark
def test_down_kills_only_what_the_cluster_started(tmp_path):
    state = tmp_path / "x"
    run_cli(
        "cluster", "up", "--workers", 1, "--memory", "1g", "--state-dir", state,
        check=True, timeout=300,
    )  # fmt: skip
    assert (state / MARKER).is_file() and json.loads((state / "cluster.json").read_text())
    token = (state / MARKER).read_text().strip()
    daemons = cluster_processes(state.resolve())
    assert len(daemons) == 2  # the master and the worker
    assert all(p.environ().get(TOKEN_ENV) == token for p in daemons)
    # Bystanders whose command lines name the state directory or a sibling of it
    # (`runs/x` vs `runs/x-other`), and a cluster process that lost its parent (it carries the
    # token, as executors inherit it from their worker).
    bystanders = [
        _sleeper([str(state) + "-other/train.log"]),
        _sleeper([str(state / "logs" / "master.out")]),
    ]
    orphan = _sleeper([], env={TOKEN_ENV: token})
    try:
        run_cli("cluster", "down", "--state-dir", state, check=True, timeout=180)
        assert [p.poll() for p in bystanders] == [None, None], "down killed a bystander"
        orphan.wait(timeout=30)  # killed: it carried the cluster's token
        assert not any(psutil.pid_exists(p.pid) for p in daemons if p.is_running())
        assert cluster_processes(state.resolve()) == []
    finally:
        for proc in [*bystanders, orphan]:
            proc.kill()
            proc.wait()


@pytest.mark.spark
def test_up_reuses_its_own_state_directory_and_keeps_what_it_did_not_write(tmp_path):
    state = tmp_path / "cluster"
    args = ("cluster", "up", "--workers", 1, "--memory", "1g", "--state-dir", state)
    run_cli(*args, check=True, timeout=300)
    try:
        first = (state / "secret").read_text()
        message = _one_line_error(run_cli(*args))
        assert "already running" in message
        notes = state / "my-notes.txt"
        notes.write_text("keep me\n")
    finally:
        run_cli("cluster", "down", "--state-dir", state, check=True, timeout=180)
    run_cli(*args, check=True, timeout=300)
    try:
        assert notes.read_text() == "keep me\n"
        assert (state / "secret").read_text() != first, "a new cluster gets a new secret"
    finally:
        run_cli("cluster", "down", "--state-dir", state, check=True, timeout=180)


@pytest.mark.parametrize("encryption", [True, False])
def test_a_driver_reads_the_secret_from_a_private_file_that_follows_the_cluster(
    tmp_path, monkeypatch, encryption
):
    state = tmp_path / "state"
    state.mkdir()
    (state / "secret").write_text("s3cr3t\n")
    ClusterState(
        master_url="spark://127.0.0.1:7",
        ui_url="http://127.0.0.1:8",
        workers=1,
        cores=1,
        memory="1g",
        state_dir=str(state),
        secret_file=str(state / "secret"),
        worker_ui_ports=[],
        python=sys.executable,
        started=0.0,
        rpc_encryption=encryption,
    ).save()
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "spark-defaults.conf").write_text("spark.eventLog.enabled true\n")
    monkeypatch.setenv("HIGGSBENCH_STATE_DIR", str(state))
    monkeypatch.setenv("SPARK_CONF_DIR", str(conf))
    monkeypatch.delenv("PYSPARK_SUBMIT_ARGS", raising=False)
    monkeypatch.delenv("HIGGSBENCH_SPARK_SECRET", raising=False)
    monkeypatch.delenv("HIGGSBENCH_SPARK_SECRET_FILE", raising=False)
    with driver_properties("spark://127.0.0.1:7"):
        args = os.environ["PYSPARK_SUBMIT_ARGS"].split()
        assert args[0] == "--properties-file" and args[-1] == "pyspark-shell"
        props = Path(args[1])
        assert props.stat().st_mode & 0o777 == 0o600
        lines = props.read_text().splitlines()
        assert "s3cr3t" not in os.environ["PYSPARK_SUBMIT_ARGS"]
    assert lines[0] == "spark.eventLog.enabled true"  # spark-defaults.conf carried over
    assert "spark.authenticate.secret s3cr3t" in lines
    assert f"spark.network.crypto.enabled {str(encryption).lower()}" in lines
    assert "spark.network.crypto.saslFallback false" in lines
    assert not props.exists() and "PYSPARK_SUBMIT_ARGS" not in os.environ


def test_a_driver_for_another_master_gets_encryption_whatever_the_local_cluster_says(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("HIGGSBENCH_SPARK_SECRET", "elsewhere")
    monkeypatch.setenv("HIGGSBENCH_STATE_DIR", str(tmp_path / "none"))
    monkeypatch.delenv("SPARK_CONF_DIR", raising=False)
    with driver_properties("spark://10.0.0.5:7077") as props:
        assert props["spark.network.crypto.enabled"] == "true"
        assert props["spark.authenticate.secret"] == "elsewhere"
