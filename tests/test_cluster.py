"""`cluster up` and `cluster down` touch only what the kit made: its own marked state directory,
the processes it started, nothing a path in a command line merely points at."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from higgsbench.spark.cluster import (
    MARKER,
    MASTER_CLASS,
    TOKEN_ENV,
    ClusterState,
    cluster_processes,
    is_ours,
)
from higgsbench.spark.security import driver_properties
from tests.helpers import refused, run_cli


def _cluster_state(
    state: Path, pid_files: dict | None = None, started: float = 0.0, rpc_encryption: bool = True
) -> str:
    """A cluster state directory as `up` leaves it (after a crash or a reboot, say): marked,
    its record written at ``started``, pid files holding what ``pid_files`` says; its token."""
    (state / "pids").mkdir(parents=True)
    token = "a" * 32
    (state / MARKER).write_text(token + "\n")
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
        started=started,
        rpc_encryption=rpc_encryption,
    ).save()
    for name, text in (pid_files or {}).items():
        (state / "pids" / f"spark-root-org.apache.spark.deploy.{name}-1.pid").write_text(text)
    return token


def test_up_refuses_a_directory_that_is_not_a_cluster_state_and_keeps_its_files(tmp_path):
    mine = tmp_path / "results"
    mine.mkdir()
    (mine / "thesis.tex").write_text("four years of work\n")
    (mine / "plots").mkdir()
    proc = run_cli("cluster", "up", "--workers", 1, "--state-dir", mine)
    message = refused(proc)
    assert str(mine) in message and "not a higgsbench cluster" in message
    assert sorted(p.name for p in mine.iterdir()) == ["plots", "thesis.tex"]
    assert (mine / "thesis.tex").read_text() == "four years of work\n"


@pytest.mark.parametrize("where", ["/", "~"])
def test_up_refuses_the_root_and_the_home_directory(where):
    message = refused(run_cli("cluster", "up", "--workers", 1, "--state-dir", where))
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
        message = refused(run_cli("cluster", "down", "--state-dir", other))
        assert "not a higgsbench cluster" in message and "nothing was stopped" in message
        assert bystander.poll() is None, "cluster down killed a process it did not start"
    finally:
        bystander.kill()
        bystander.wait()


def _exited(proc: psutil.Process) -> bool:
    """Gone, or a zombie: it runs nothing, and its parent (init, for a daemon whose starter
    has exited) reaps it in its own time."""
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


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
        assert all(_exited(p) for p in daemons), "a daemon still runs after down"
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
        message = refused(run_cli(*args))
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
    _cluster_state(state, rpc_encryption=encryption)
    (state / "secret").write_text("s3cr3t\n")
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


def _with_child() -> tuple[subprocess.Popen, psutil.Process]:
    """A process of the user's that has a child of its own, both living until killed."""
    parent = subprocess.Popen(
        ["sh", "-c", "sleep 600 & wait"], start_new_session=True, stdout=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while not psutil.Process(parent.pid).children() and time.monotonic() < deadline:
        time.sleep(0.05)
    (child,) = psutil.Process(parent.pid).children()
    return parent, child


def test_down_never_kills_what_a_stale_pid_file_names_now(tmp_path):
    """After a reboot the master's old pid belongs to someone else's process: down must
    leave it and its child alone, whatever the pid file says."""
    state = tmp_path / "state"
    bystander, child = _with_child()
    try:
        _cluster_state(
            state,
            {"master.Master": f"{bystander.pid}\n", "worker.Worker": f"{child.pid}\n"},
            started=time.time() - 3600,
        )
        proc = run_cli("cluster", "down", "--state-dir", state, check=True)
        assert proc.stdout.strip() == "cluster stopped: 0 processes"
        assert bystander.poll() is None and child.is_running(), "down killed a bystander"
        assert not list((state / "pids").iterdir()), "the stale pid files stay"
    finally:
        os.killpg(bystander.pid, 9)
        bystander.wait()


@pytest.mark.parametrize("text", ["1", "-1", "0", "abc", "", "１２３４"])
def test_down_refuses_a_pid_file_that_holds_no_process_id(tmp_path, text):
    state = tmp_path / "state"
    bystander, child = _with_child()
    try:
        _cluster_state(state, {"master.Master": f"{bystander.pid}\n", "worker.Worker": text}, 0)
        message = refused(run_cli("cluster", "down", "--state-dir", state))
        assert "Worker-1.pid" in message and "nothing was stopped" in message
        assert bystander.poll() is None and child.is_running()
    finally:
        os.killpg(bystander.pid, 9)
        bystander.wait()


def test_down_spares_a_process_of_another_cluster(tmp_path):
    """Tokens are per cluster: a process carrying another cluster's token is not this one's;
    one carrying this cluster's is stopped as its daemons are, with SIGTERM first."""
    state = tmp_path / "state"
    token = _cluster_state(state, {}, started=time.time())
    other = _sleeper([], env={TOKEN_ENV: "b" * 32})
    # ours is asked first (SIGTERM, so that it can clean up), as the daemons are, not killed
    # after down's timeout
    asked = tmp_path / "asked"
    ours = subprocess.Popen(
        [sys.executable, "-c",
         "import signal, sys, time\n"
         f"def asked(*_):\n    open({str(asked)!r}, 'w').close()\n    sys.exit(0)\n"
         "signal.signal(signal.SIGTERM, asked)\n"
         f"open({str(tmp_path / 'ready')!r}, 'w').close()\n"
         "time.sleep(600)\n"],
        env={**os.environ, TOKEN_ENV: token}, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (tmp_path / "ready").exists():
        assert time.monotonic() < deadline and ours.poll() is None, "the process did not start"
        time.sleep(0.05)
    try:
        proc = run_cli("cluster", "down", "--state-dir", state, check=True)
        assert proc.stdout.strip() == "cluster stopped: 1 process"
        ours.wait(timeout=30)
        assert asked.exists(), "down killed the cluster's process without SIGTERM first"
        assert other.poll() is None, "down killed a process of another cluster"
    finally:
        for p in (other, ours):
            p.kill()
            p.wait()


class _Unreadable:
    """A process whose environment cannot be read (another user's, for a non-root user):
    what /proc says of it otherwise is given. Root reads every environment, so this case
    cannot be made for real on our machines."""

    def __init__(self, name: str, cmdline: list[str], created: float):
        self._name, self._cmdline, self._created = name, cmdline, created

    def environ(self):
        raise psutil.AccessDenied()

    def name(self):
        return self._name

    def cmdline(self):
        return self._cmdline

    def create_time(self):
        return self._created


@pytest.mark.parametrize(
    "name, cls, created, ours",
    [
        ("java", "org.apache.spark.deploy.master.Master", 1000.0, True),
        ("java", "org.apache.spark.deploy.master.Master", 900.0, False),  # older than the state
        ("java", "org.apache.spark.deploy.worker.Worker", 1000.0, False),  # another class
        ("python3", "org.apache.spark.deploy.master.Master", 1000.0, False),  # not a JVM
    ],
)
def test_a_daemon_whose_environment_cannot_be_read_must_be_the_jvm_started_after_up(
    name, cls, created, ours
):
    proc = _Unreadable(name, ["/usr/bin/java", "-cp", "x", cls, "--port", "7"], created)
    assert is_ours(proc, "t", "org.apache.spark.deploy.master.Master", started=999.5) is ours
    assert is_ours(proc, "t", "org.apache.spark.deploy.master.Master", started=None) is False


@pytest.mark.parametrize("memory", ["x; touch /tmp/owned", "2 g", "-1g", "2gib", ""])
def test_up_refuses_a_memory_that_is_no_size_at_once(tmp_path, memory):
    started = time.monotonic()
    message = refused(run_cli("cluster", "up", "--memory", memory, "--state-dir", tmp_path / "s"))
    assert "--memory" in message
    assert time.monotonic() - started < 30
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    "text, named",
    [
        ("{not json", "not valid JSON"),
        ('{"master_url": "spark://x:1"}', "lacks"),
        ("[]", "expected an object"),
        (None, "unknown key 'surprise'"),
        (None, "workers is a string"),
    ],
)
def test_status_refuses_a_damaged_cluster_json_in_one_line(tmp_path, text, named):
    state = tmp_path / "state"
    _cluster_state(state, {}, started=time.time())
    record = json.loads((state / "cluster.json").read_text())
    if text is None and "surprise" in named:
        text = json.dumps({**record, "surprise": 1})
    elif text is None:
        text = json.dumps({**record, "workers": "two"})
    (state / "cluster.json").write_text(text)
    message = refused(run_cli("cluster", "status", "--state-dir", state))
    assert "cluster.json" in message and named in message


@pytest.mark.spark
def test_a_second_up_on_the_same_state_directory_is_refused_while_the_first_runs(tmp_path):
    state = tmp_path / "state"
    first = subprocess.Popen(
        [sys.executable, "-m", "higgsbench", "cluster", "up", "--workers", "1", "--memory", "1g",
         "--state-dir", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (state / MARKER).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        second = run_cli("cluster", "up", "--workers", 1, "--memory", "1g", "--state-dir", state)
        message = refused(second)
        assert "another `higgsbench cluster up` or `down`" in message
        _, err = first.communicate(timeout=300)
        assert first.returncode == 0, err
        masters = [p for p in cluster_processes(state.resolve()) if MASTER_CLASS in p.cmdline()]
        assert len(masters) == 1, "a second master was started"
    finally:
        first.kill()
        run_cli("cluster", "down", "--state-dir", state, check=True, timeout=180)
