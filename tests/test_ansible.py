"""Ansible for real: ansible/site.yml against containers standing in for the cluster's VMs.

The OpenStack VMs cannot be had here, so three Debian containers play master and two workers
(tests/ansible/Dockerfile.standin: python3, sudo, iproute2, sshd, nothing of the project). As
on a cloud, Ansible reaches them over SSH only, as the non-root login user "debian" with
passwordless sudo (`become`), the workers through the master (higgsbench_bastion), every host
key checked against the cluster's known-hosts file; their Docker network has the MTU of an
OpenStack VXLAN network (1450). The real roles run against them: apt installs Docker, the
secret is generated and copied, the Spark master and workers start as containers. Privileged
containers are refused, so the stand-ins cannot run dockerd: they mount the host's Docker
socket (docker_manage_service=false), every container lands on the host's engine, and so the
test gives each its own name, puts them on one Docker network (instead of host networking), and
gives every stand-in a data directory whose path is the same on the host and in the stand-in
(the engine resolves bind mounts on the host). `docker exec` only looks inside, for the checks.

In order, as a user would meet them:
  1. build the stand-in image; start the network and the stand-ins (always removed at the end);
     known_hosts.yml records their SSH host keys (the workers' scanned from the master, their
     bastion), and Ansible reaches every one over SSH through the master with strict checking
  2. site.yml: a cluster whose master counts both workers ALIVE, non-root containers with no
     capabilities and a read-only root, RPC encrypted, the secret 0600 on the control host and
     0400 on the nodes, no REST submission server, daemon.json with the network's MTU
  3. site.yml again, right after: nothing changes (changed=0 on every host; the recap is printed)
  4. `make bench-cluster NODES=2` (bench.yml) over SSH: the genuine sample uploaded and
     prepared on every node, the driver started detached on the master; the connection drops
     (the playbook is killed), the run goes on, `make bench-status` shows it running, and
     `make bench-wait` fetches one epoch on both workers into ./runs; the history server lists it
  5. copies of the data that differ between nodes stop a bench before its driver starts
  6. `make cluster-status` (cluster_status.yml)
Without Docker: ansible-lint (production profile) and --syntax-check on every playbook, the
inventory that provision.yml writes (from recorded OpenStack results) and the SSH options it
gives every host, provision's refusal of wide admin networks, teardown mirrors provision, every
tunable documented in ansible/README.md, the bench plays' checks of their settings; and, against
a real sshd on 127.0.0.1 whose host key changes, that Ansible refuses unknown and changed host
keys.

Skipped when no Docker engine (or no Ansible) is found, unless HIGGSBENCH_REQUIRE_DOCKER=1
(CI), which turns the skip into a failure.
"""

from __future__ import annotations

import configparser
import contextlib
import getpass
import hashlib
import itertools
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from higgsbench import __version__
from tests.conftest import REPO, SAMPLE, require_data
from tests.helpers import DOCKER, docker, run_checked, tool_env, venv_tool

pytestmark = pytest.mark.ansible

ANSIBLE = REPO / "ansible"
IMAGE = os.environ.get("HIGGSBENCH_IMAGE", f"higgsbench-spark:{__version__}")
REQUIRE = os.environ.get("HIGGSBENCH_REQUIRE_DOCKER") == "1"
NAME = "hbt-ansible"  # cluster name, Docker network, and container label of this test
STANDIN_LABEL = "higgsbench.test=ansible"
MASTER, WORKERS = "hbt-master", ["hbt-worker-1", "hbt-worker-2"]
SPARK_MASTER, SPARK_HISTORY = "hbt-spark-master", "hbt-spark-history"
SSH_USER = "debian"  # the stand-ins' login user: not root, sudo without a password
MTU = 1450  # of the stand-ins' network, as on an OpenStack VXLAN network


def _skip_or_fail(reason: str):
    if REQUIRE:
        pytest.fail(f"HIGGSBENCH_REQUIRE_DOCKER=1 but {reason}")
    pytest.skip(f"{reason} (set HIGGSBENCH_REQUIRE_DOCKER=1 to fail instead)")


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    names = ("ansible", "ansible-playbook", "ansible-inventory", "ansible-lint")
    found = {n: venv_tool(n) for n in names}
    missing = [n for n, p in found.items() if p is None]
    if missing:
        _skip_or_fail(f"{', '.join(missing)} not installed (make ansible-tools)")
    return found


def _env(**extra) -> dict:
    return tool_env(
        ANSIBLE_CONFIG=str(ANSIBLE / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        PY_COLORS="0",
        **extra,
    )


def _run(cmd, *, timeout=600, **kw) -> subprocess.CompletedProcess:
    return run_checked(cmd, timeout=timeout, **kw)


def record_known_hosts(tools, inventory: Path, known_hosts: Path, **kw):
    """known_hosts.yml (what `make cluster-known-hosts` runs) into a known-hosts file of ours."""
    return _run(
        [
            tools["ansible-playbook"], "-i", inventory,
            "-e", f"higgsbench_known_hosts_file={known_hosts}", ANSIBLE / "known_hosts.yml",
        ],
        env=_env(), cwd=REPO, **kw,
    )  # fmt: skip


def ansible_ping(tools, inventory: Path, known_hosts: Path, control_dir: Path):
    """`ansible all -m ping` with the project's SSH settings (group_vars/all.yml), a control
    socket directory of its own (a persisting connection would skip the host-key check)."""
    return _run(
        [
            tools["ansible"], "all", "-i", inventory, "-m", "ansible.builtin.ping",
            "-e", f"higgsbench_known_hosts_file={known_hosts}",
        ],
        env=_env(ANSIBLE_SSH_CONTROL_PATH_DIR=str(control_dir)), cwd=REPO, check=False,
        timeout=120,
    )  # fmt: skip


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP of an ansible-playbook run: {host: {ok, changed, failed, …}}."""
    block = output.split("PLAY RECAP", 1)[1]
    hosts = {}
    for line in block.splitlines()[1:]:
        m = re.match(r"^(\S+)\s+:\s+(.*)$", line.strip())
        if not m:
            if hosts:
                break
            continue
        hosts[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return hosts


def recap_text(output: str) -> str:
    lines = output.split("PLAY RECAP", 1)[1].splitlines()
    body = []
    for line in lines[1:]:
        if not line.strip():
            break
        body.append(line)
    return "PLAY RECAP\n" + "\n".join(body)


# --- the cluster of stand-ins ------------------------------------------------------------------


def _docker_ok() -> bool:
    if shutil.which(DOCKER) is None:
        return False
    return subprocess.run([DOCKER, "info"], capture_output=True).returncode == 0


def _remove_everything() -> None:
    for label in (f"higgsbench.cluster={NAME}", STANDIN_LABEL):
        ids = docker("ps", "-aq", "--filter", f"label={label}").stdout.split()
        if ids:
            docker("rm", "-f", "-v", *ids, check=False, timeout=120)
    docker("network", "rm", NAME, check=False)


def _ssh_key(path: Path) -> str:
    """An ed25519 key pair for Fabric (private key file at path); returns the public line."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return public.decode() + " hbt-test\n"


class StandIns:
    def __init__(self, root: Path, tools: dict[str, str]):
        self.root = root
        self.tools = tools
        self.control = root / "control"
        self.nodes = {h: root / "nodes" / h for h in (MASTER, *WORKERS)}
        self.inventory = root / "inventory.ini"  # as provision.yml writes it on a cloud
        self.vars = root / "vars.yml"
        self.runs_dir = root / "runs"  # the control host's ./runs
        self.key = root / "id_ed25519"
        self.known_hosts = root / "known_hosts"  # the cluster's, as .state/openstack/known_hosts
        self.ssh_control = root / "cp"  # ControlPersist sockets of this test's stand-ins only
        self.runs: list[str] = []

    def build_and_start(self) -> None:
        dockerfile = REPO / "tests" / "ansible" / "Dockerfile.standin"
        tag = "hbt-standin:" + hashlib.sha256(dockerfile.read_bytes()).hexdigest()[:12]
        if docker("image", "inspect", tag, check=False).returncode:
            docker(
                "build", "-q", "-t", tag, "-f", dockerfile, dockerfile.parent,
                timeout=900, env={**os.environ, "DOCKER_BUILDKIT": "0"},
            )  # fmt: skip
        for d in (self.control, self.ssh_control):
            d.mkdir(parents=True)
        authorized = self.root / "authorized_keys"
        authorized.write_text(_ssh_key(self.key))
        authorized.chmod(0o644)
        # the MTU of an OpenStack VXLAN tenant network: the docker role must find it
        docker(
            "network", "create", "--label", STANDIN_LABEL,
            "--opt", f"com.docker.network.driver.mtu={MTU}", NAME,
        )  # fmt: skip
        for host, path in self.nodes.items():
            path.mkdir(parents=True)
            docker(
                "run", "-d", "--name", host, "--hostname", host, "--network", NAME,
                "--label", STANDIN_LABEL,
                "-v", "/var/run/docker.sock:/var/run/docker.sock",
                "-v", f"{path}:{path}",
                "-v", f"{authorized}:/home/{SSH_USER}/.ssh/authorized_keys:ro",
                tag,
            )  # fmt: skip
        self._write_inventory()

    def _write_inventory(self) -> None:
        """The inventory, as provision.yml writes it: SSH as the
        image's non-root user, the workers through the master (the bastion), host keys from
        the cluster's file; the master's private_ip is the Spark master's name on the network."""
        inspect = json.loads(docker("inspect", MASTER, *WORKERS).stdout)
        self.ips = ip = {
            c["Name"].lstrip("/"): c["NetworkSettings"]["Networks"][NAME]["IPAddress"]
            for c in inspect
        }
        lines = ["[master]", f"{MASTER} ansible_host={ip[MASTER]} private_ip={SPARK_MASTER} "
                 f"higgsbench_data_dir={self.nodes[MASTER]} "
                 f"spark_master_container_name={SPARK_MASTER} "
                 f"spark_history_container_name={SPARK_HISTORY}", "", "[workers]"]  # fmt: skip
        lines += [
            f"{w} ansible_host={ip[w]} higgsbench_data_dir={self.nodes[w]} "
            f"spark_worker_container_name=hbt-spark-{w.removeprefix('hbt-')} "
            "spark_worker_cores=1 spark_worker_memory=2g"
            for w in WORKERS
        ]
        lines += ["", "[gpu]", "", "[cluster:children]", "master", "workers", "gpu", ""]
        lines += ["[cluster:vars]", f"ansible_user={SSH_USER}"]
        lines += [f"ansible_ssh_private_key_file={self.key}"]
        lines += [f"higgsbench_bastion={SSH_USER}@{ip[MASTER]}", ""]
        self.inventory.write_text("\n".join(lines))
        self.vars.write_text(
            yaml.safe_dump(
                {
                    "higgsbench_cluster_name": NAME,
                    "higgsbench_version": __version__,
                    "higgsbench_spark_image": IMAGE,
                    "higgsbench_network_mode": NAME,
                    "higgsbench_state_dir": str(self.control),
                    "higgsbench_known_hosts_file": str(self.known_hosts),
                    "docker_manage_service": False,
                }
            )
        )

    def site(self) -> subprocess.CompletedProcess:
        began = time.monotonic()
        proc = _run(
            [
                self.tools["ansible-playbook"],
                "-i", self.inventory, "-e", f"@{self.vars}", ANSIBLE / "site.yml",
            ],
            timeout=900, check=False, cwd=REPO,
            env=_env(ANSIBLE_SSH_CONTROL_PATH_DIR=str(self.ssh_control)),
        )  # fmt: skip
        proc.seconds = time.monotonic() - began
        self.runs.append(proc.stdout)
        if proc.returncode != 0:
            raise AssertionError(f"site.yml failed:\n{proc.stdout[-8000:]}\n{proc.stderr[-3000:]}")
        return proc

    def make_args(self, target: str, *settings: str) -> list:
        """`make TARGET` as a user runs it, on this inventory with the test's settings."""
        return [
            "make", "-s", "-C", REPO, target, f"INVENTORY={self.inventory}",
            f"ANSIBLE_ARGS=-e @{self.vars}", f"RUNS={self.runs_dir}", *settings,
        ]  # fmt: skip

    def make(self, target: str, *settings: str, timeout=900, check=True):
        return _run(
            self.make_args(target, *settings), timeout=timeout, check=check,
            env=_env(ANSIBLE_SSH_CONTROL_PATH_DIR=str(self.ssh_control)),
        )  # fmt: skip

    def on(self, host: str, *cmd, check=True) -> subprocess.CompletedProcess:
        """Look inside a stand-in (what the test checks, never how Ansible gets in)."""
        return docker("exec", host, *cmd, check=check)


@pytest.fixture(scope="module")
def standins(tmp_path_factory, tools):
    """The stand-ins, their host keys recorded, and site.yml run twice in a row (the second
    run must change nothing), before any test looks: each test reads what it needs."""
    if not _docker_ok():
        _skip_or_fail("no Docker engine answers `docker info`")
    if docker("image", "inspect", IMAGE, check=False).returncode:
        subprocess.run(["make", "-C", str(REPO), "base-image", "images"], check=True, timeout=1800)
    _remove_everything()
    s = StandIns(tmp_path_factory.mktemp("ansible"), tools)
    try:
        s.build_and_start()
        began = time.monotonic()
        s.scanned = record_known_hosts(tools, s.inventory, s.known_hosts)
        s.scanned.seconds = time.monotonic() - began
        s.first = s.site()
        print(f"\nsite.yml, first run ({s.first.seconds:.0f} s):\n{recap_text(s.first.stdout)}")
        s.second = s.site()
        print(f"\nsite.yml, second run ({s.second.seconds:.0f} s):\n{recap_text(s.second.stdout)}")
        yield s
    finally:
        _remove_everything()
        left = docker("ps", "-aq", "--filter", f"label=higgsbench.cluster={NAME}").stdout.split()
        left += docker("ps", "-aq", "--filter", f"label={STANDIN_LABEL}").stdout.split()
        assert left == [], f"containers left after the test: {left}"


def test_0_known_hosts_are_recorded_and_ssh_goes_through_the_bastion(standins, tools):
    scanned = standins.scanned
    print(f"\nknown_hosts.yml ({scanned.seconds:.0f} s):\n{recap_text(scanned.stdout)}")
    assert recap(scanned.stdout)["localhost"]["changed"] > 0
    lines = standins.known_hosts.read_text().splitlines()
    assert standins.known_hosts.stat().st_mode & 0o777 == 0o600
    for host, ip in standins.ips.items():  # the key each stand-in's sshd offers
        key = standins.on(host, "cat", "/etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[:2]
        assert f"{ip} {' '.join(key)}" in lines, host
    # the workers through the master, both hops checked against that file only
    ping = ansible_ping(tools, standins.inventory, standins.known_hosts, standins.root)
    assert ping.returncode == 0 and ping.stdout.count("SUCCESS") == 3, ping.stdout + ping.stderr
    # a second run scans nothing and changes nothing
    again = record_known_hosts(tools, standins.inventory, standins.known_hosts)
    assert recap(again.stdout)["localhost"]["changed"] == 0
    assert standins.known_hosts.read_text().splitlines() == lines


def test_1_site_yml_makes_a_working_cluster(standins):
    hosts = recap(standins.first.stdout)
    assert set(hosts) == {MASTER, *WORKERS, "localhost"}
    assert all(h["failed"] == 0 and h["unreachable"] == 0 for h in hosts.values()), hosts
    assert all(hosts[h]["changed"] > 0 for h in (MASTER, *WORKERS)), "the first run did nothing"

    # the master counts both workers ALIVE, asked from a cluster member as the roles do
    state = json.loads(
        standins.on(MASTER, "curl", "-fsS", f"http://{SPARK_MASTER}:8080/json/").stdout
    )
    assert state["status"] == "ALIVE" and state["url"] == f"spark://{SPARK_MASTER}:7077"
    alive = [w for w in state["workers"] if w["state"] == "ALIVE"]
    assert len(alive) == 2 and sum(w["cores"] for w in alive) == 2
    assert all(w["memory"] == 2048 for w in alive)

    # no REST submission server (6066), and the daemons run as the image's user
    rest = standins.on(
        MASTER, "curl", "-sS", "--max-time", "5", f"http://{SPARK_MASTER}:6066/", check=False
    )
    assert rest.returncode != 0, "the REST submission server answers"
    containers = [SPARK_MASTER, "hbt-spark-worker-1", "hbt-spark-worker-2", SPARK_HISTORY]
    inspected = json.loads(docker("inspect", *containers).stdout)
    for c in inspected:
        name = c["Name"].lstrip("/")
        assert c["State"]["Health"]["Status"] == "healthy", name
        assert c["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped", name
        assert c["Config"]["Labels"]["higgsbench.cluster"] == NAME, name
        secret_mount = [m for m in c["Mounts"] if m["Destination"] == "/run/secrets"]
        assert secret_mount and secret_mount[0]["RW"] is False, name
        assert docker("exec", name, "id", "-u").stdout.strip() == "10001", name
        # confined as the compose services and the Kubernetes pods are
        host = c["HostConfig"]
        assert host["CapDrop"] == ["ALL"] and not host["CapAdd"], name
        assert host["SecurityOpt"] == ["no-new-privileges:true"], name
        assert host["ReadonlyRootfs"] is True and set(host["Tmpfs"]) == {"/tmp", "/home/spark"}
        assert host["PidsLimit"] > 0 and host["Memory"] > 0, name
        # RPC authenticated and encrypted, no SASL fallback (the roles check it too)
        conf = docker("exec", name, "cat", "/tmp/spark-conf/spark-defaults.conf").stdout
        for line in (
            "spark.authenticate true",
            "spark.network.crypto.enabled true",
            "spark.network.crypto.saslFallback false",
            "spark.ui.killEnabled false",
        ):
            assert line in conf.splitlines(), f"{name}: no {line!r}"
    assert "RPC authenticated and encrypted" in standins.first.stdout
    # the images role checked the image's architecture against the node's before any container
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    assert f"{IMAGE}: {arch}" in standins.first.stdout

    # the secret: generated once on the control host (0600), on every node 0400 for uid 10001
    control = standins.control / "spark-secret"
    assert control.stat().st_mode & 0o777 == 0o600
    secret = control.read_text().strip()
    assert re.fullmatch(r"[0-9a-fA-F]{64}", secret)
    for host, path in standins.nodes.items():
        on_node = path / "secrets" / "spark_secret"
        st = on_node.stat()
        assert (st.st_mode & 0o777, st.st_uid) == (0o400, 10001), host
        assert on_node.read_text().strip() == secret, host

    # the docker role merged its settings into daemon.json, with the MTU of the node's network
    for host in (MASTER, *WORKERS):
        daemon = json.loads(standins.on(host, "cat", "/etc/docker/daemon.json").stdout)
        assert daemon["log-opts"]["max-size"] == "50m" and daemon["mtu"] == MTU, (host, daemon)

    # Ansible came in over SSH as the non-root user and became root: the upload directory is
    # that user's, and the user may run containers (docker group)
    for host, path in standins.nodes.items():
        owner = standins.on(host, "stat", "-c", "%U", path / "incoming").stdout.strip()
        assert owner == SSH_USER, host
        groups = standins.on(host, "id", "-nG", SSH_USER).stdout.split()
        assert "docker" in groups, (host, groups)


def _words(text: str) -> str:
    """Ansible's output with its YAML line wrapping undone (runs of blanks as one space)."""
    return " ".join(text.split())


def _driver_state(name: str) -> str:
    """The driver container's state ('' when there is none)."""
    proc = docker("inspect", "-f", "{{.State.Status}}", name, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def test_2_a_bench_survives_a_dropped_connection_and_is_fetched(standins):
    """`make bench-cluster NODES=2` over SSH: the genuine sample uploaded to every node and
    prepared there, the copies compared, the driver started detached on the master. The SSH
    connection drops (the playbook and its ssh are killed) while the run goes on; `make
    bench-status` shows it running, `make bench-wait` fetches it when it ends; the history
    server on the master lists the application."""
    require_data(SAMPLE)
    run, driver = "sample", f"{NAME}-driver-sample"
    settings = (
        "NODES=2",
        "OPTIMIZERS=adam",
        "EPOCHS=1",
        "BATCH=512",
        f"DATA={SAMPLE}",
        f"RUN={run}",
    )
    log = standins.root / "bench-cluster.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(a) for a in standins.make_args("bench-cluster", *settings)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env=_env(ANSIBLE_SSH_CONTROL_PATH_DIR=str(standins.ssh_control)),
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 600
            while _driver_state(driver) != "running":
                assert proc.poll() is None, f"bench-cluster ended early:\n{log.read_text()[-6000:]}"
                assert time.monotonic() < deadline, log.read_text()[-6000:]
                time.sleep(1)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # the connection drops, mid-run
            proc.wait()
    text = _words(log.read_text())
    same = r"higgs-[0-9a-f]{12}: the same on hbt-master, hbt-worker-1, hbt-worker-2"
    assert re.search(same, text), text[-6000:]
    assert _driver_state(driver) == "running", "the run did not survive the dropped connection"
    assert not (standins.runs_dir / run).exists()

    status = _words(standins.make("bench-status").stdout)
    # e.g. "sample: running (Up 9 seconds (healthy)) on hbt-master, NODES 2, optimizers adam"
    running = rf"{run}: running \(Up [^,]*\) on {MASTER}, NODES 2, optimizers adam"
    assert re.search(running, status), status[status.find("Show where each run is") :][:4000]
    assert not (standins.runs_dir / run).exists(), "bench-status fetched a running run"

    waited = _words(standins.make("bench-wait").stdout)
    fetched = f"{run}: exit 0, results in {standins.runs_dir / run}"
    assert fetched in waited, waited[-4000:]
    assert _driver_state(driver) == "", "the ended driver container was left behind"
    out = standins.runs_dir / run
    assert not list(standins.runs_dir.glob(".partial-*")), "unpacking leftovers"
    bench = json.loads((out / "bench.json").read_text())
    assert [(r["engine"], r["nodes"]) for r in bench["rows"]] == [("torch", 1), ("spark", 2)]
    stored = json.loads((out / "spark-n2-adam" / "result.json").read_text())
    assert stored["engine"] == "spark" and stored["nodes"] == 2 and stored["epochs"] == 1
    assert stored["master"] == f"spark://{SPARK_MASTER}:7077"
    assert [r["rank"] for r in stored["ranks"]] == [0, 1]
    assert len({r["host"] for r in stored["ranks"]}) == 2, "ranks must run on two workers"
    assert all(len(r["epoch_seconds"]) == 1 for r in stored["ranks"])
    assert stored["train_rows"] == 8788 and stored["generated_data"] is False
    # the replicas stayed in step (DDP): the same weights on both ranks, bit for bit; and the
    # 2-node run learns what single-process torch learns from the same rows and seed
    assert len({r["weights_sha256"] for r in stored["ranks"]}) == 1, stored["ranks"]
    torch_row = next(r for r in bench["rows"] if r["engine"] == "torch")
    print(f"test AUC: torch {torch_row['test_auc']:.4f}, spark n=2 {stored['test_auc']:.4f}")
    assert abs(stored["test_auc"] - torch_row["test_auc"]) < 0.05
    record = json.loads((out / "cluster.json").read_text())
    assert record["nodes"] == [2] and re.fullmatch(r"[0-9a-f]{64}", record["data_sha256"])
    assert record["exit_code"] == 0 and record["node"] == MASTER and record["seconds"] > 0
    assert [w["name"] for w in record["workers"]] == WORKERS
    assert record["result"] and "RESULT " in (out / "driver.log").read_text()
    # each node prepared its own copy (ranks read their shard from local disk)
    for host, path in standins.nodes.items():
        assert (path / "shared" / "data" / record["data"] / "train.parquet").exists(), host
    # the history server on the master lists the run's Spark application, once it has read
    # the finished event log (it looks every 10 s)
    url = f"http://{SPARK_HISTORY}:18080/api/v1/applications"
    deadline = time.monotonic() + 90
    while True:
        apps = json.loads(standins.on(MASTER, "curl", "-fsS", url).stdout)
        if apps and all(a["attempts"][0]["completed"] for a in apps):
            break
        assert time.monotonic() < deadline, f"the history server lists {apps}"
        time.sleep(5)


def test_2b_copies_that_differ_stop_the_bench_before_its_driver(standins):
    """Each rank reads its shard from its own node's disk: one node whose copy differs (here
    put there by hand) would train the ranks on different data. The bench stops before any
    driver starts, naming the nodes and their digests."""
    events, run = 3000, "differ"
    name = f"synth-{events}-seed42"
    odd = standins.nodes[WORKERS[1]] / "shared" / "data" / name
    odd.mkdir(parents=True)
    for f in ("train", "val", "test"):
        (odd / f"{f}.parquet").write_bytes(b"not the same " + f.encode())
    (odd / "stats.json").write_text("{}")
    try:
        proc = standins.make(
            "bench-cluster", "NODES=1", "EPOCHS=1", f"CLUSTER_EVENTS={events}", f"RUN={run}",
            check=False,
        )  # fmt: skip
    finally:
        for path in standins.nodes.values():
            shutil.rmtree(path / "shared" / "data" / name, ignore_errors=True)
    out = _words(proc.stdout)
    assert proc.returncode != 0
    assert f"the prepared copies of {name} differ between nodes" in out, out[-4000:]
    assert WORKERS[1] in out.split("differ between nodes", 1)[1]
    assert _driver_state(f"{NAME}-driver-{run}") == ""
    assert not (standins.nodes[MASTER] / "shared" / "runs" / run).exists()


def test_3_second_run_changes_nothing(standins):
    """site.yml again, right after the first (before any bench touched the nodes)."""
    text = recap_text(standins.second.stdout)
    hosts = recap(standins.second.stdout)
    assert set(hosts) == {MASTER, *WORKERS, "localhost"}
    for host, counts in hosts.items():
        assert counts["changed"] == 0, f"{host} changed on the second run:\n{text}"
        assert counts["failed"] == 0 and counts["unreachable"] == 0, text


def test_4_cluster_status(standins):
    out = _words(standins.make("cluster-status").stdout)
    assert "cluster OK" in out
    assert re.search(r"ALIVE: 2 workers ALIVE, 2 cores", out), out


# --- without Docker ----------------------------------------------------------------------------


def test_ansible_lint_production_profile(tools):
    proc = _run(
        [tools["ansible-lint"], "-c", ".ansible-lint", "."],
        cwd=ANSIBLE, env=_env(), check=False, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert "Profile 'production' was required, and it passed" in proc.stdout + proc.stderr


def test_syntax_check_every_playbook(tools):
    playbooks = sorted(ANSIBLE.glob("*.yml"))
    assert {p.name for p in playbooks} == {
        "provision.yml", "site.yml", "teardown.yml", "known_hosts.yml", "ssh_inventory.yml",
        "bench.yml", "bench_gpu.yml", "bench_status.yml", "cluster_status.yml",
    }  # fmt: skip
    for playbook in playbooks:
        _run(
            [tools["ansible-playbook"], "-i", REPO / "inventory.ini", "--syntax-check", playbook],
            env=_env(), cwd=REPO,
        )  # fmt: skip


RESULTS = REPO / "tests" / "ansible" / "openstack_results.json"


def _render_inventory(tools, tmp_path: Path, **overrides) -> Path:
    out = tmp_path / "inventory.ini"
    extra = tmp_path / "extra.json"
    recorded = {"higgsbench_cluster_name": "higgsbench"}  # the cluster the results are of
    extra.write_text(json.dumps({"openstack_inventory_file": str(out), **recorded, **overrides}))
    _run(
        [
            tools["ansible-playbook"], REPO / "tests" / "ansible" / "render_inventory.yml",
            "-e", f"@{RESULTS}", "-e", f"@{extra}",
        ],
        env=_env(), cwd=REPO,
    )  # fmt: skip
    return out


def _ansible_inventory(tools, path: Path) -> dict:
    return json.loads(
        _run([tools["ansible-inventory"], "-i", path, "--list"], env=_env(), cwd=REPO).stdout
    )


def _ssh_args(tools, path: Path, **env: str) -> dict[str, list[str]]:
    """The ssh options Ansible would use for each host of an inventory (group_vars/all.yml's
    ansible_ssh_args, rendered per host; ad-hoc `ansible` reads them through ansible.cfg)."""
    proc = _run(
        [tools["ansible"], "all", "-i", path, "-m", "ansible.builtin.debug", "-a",
         "var=ansible_ssh_args", "-o"],
        env=_env(**env), cwd=REPO,
    )  # fmt: skip
    out = {}
    for line in proc.stdout.splitlines():
        host, _, result = line.partition(" | SUCCESS => ")
        if result:
            out[host] = shlex.split(json.loads(result)["ansible_ssh_args"])
    return out


def _options(args: list[str]) -> dict[str, str]:
    """ssh's -o options: {name: value}; ssh takes the first of each."""
    out: dict[str, str] = {}
    for flag, value in itertools.pairwise(args):
        if flag == "-o":
            name, _, v = value.partition("=")
            out.setdefault(name, v)
    return out


def test_provision_writes_the_inventory_the_roles_read(tools, tmp_path):
    path = _render_inventory(tools, tmp_path)
    inv = _ansible_inventory(tools, path)
    hv = inv["_meta"]["hostvars"]
    assert inv["master"]["hosts"] == ["higgsbench-master"]
    assert inv["workers"]["hosts"] == [f"higgsbench-worker-{i}" for i in range(1, 6)]
    assert inv["gpu"]["hosts"] == ["higgsbench-gpu"]
    master = hv["higgsbench-master"]
    # only the master is public; everything else goes through it
    assert master["ansible_host"] == "203.0.113.10" and master["private_ip"] == "10.42.0.10"
    assert "ansible_ssh_common_args" not in master
    for i in range(1, 6):
        w = hv[f"higgsbench-worker-{i}"]
        assert w["ansible_host"] == w["private_ip"] == f"10.42.0.{10 + i}"
        assert w["spark_worker_cores"] == 8  # the flavor's vCPUs
        assert w["spark_worker_memory"] == "14336m"  # 16384 MB less 2048 reserved
        assert w["higgsbench_bastion"] == "ubuntu@203.0.113.10"
        assert w["ansible_user"] == "ubuntu"

    # SSH: only the keys of the cluster's known-hosts file, strictly, on every hop; only the
    # master directly, everything else through it. The file lies in the cluster's state folder,
    # named by default after the login (lower case, letters, digits and dashes).
    known_hosts = str(REPO / ".state" / "higgsbench-ci-user-2" / "known_hosts")
    trust = {"StrictHostKeyChecking": "yes", "UserKnownHostsFile": known_hosts}
    ssh_args = _ssh_args(tools, path, USER="Ci.User_2")
    assert set(ssh_args) == {"higgsbench-master", "higgsbench-gpu", *inv["workers"]["hosts"]}
    for host, args in ssh_args.items():
        options = _options(args)
        assert trust.items() <= options.items(), host
        if host == "higgsbench-master":
            assert "ProxyCommand" not in options and "ProxyJump" not in options
            continue
        hop = shlex.split(options["ProxyCommand"])
        assert hop[:3] == ["ssh", "-W", "%h:%p"] and hop[-1] == "ubuntu@203.0.113.10", host
        assert trust.items() <= _options(hop).items(), host
    # a plain INI file, readable without Ansible too
    parser = configparser.ConfigParser(allow_no_value=True, delimiters=(" ",))
    parser.read(path)
    assert {"master", "workers", "gpu"} <= set(parser.sections())

    # rendering again gives the same file: provision.yml is idempotent down to its inventory
    first = path.read_text()
    assert _render_inventory(tools, tmp_path).read_text() == first


def test_provision_inventory_with_a_key_file_and_no_gpu_node(tools, tmp_path):
    path = _render_inventory(
        tools, tmp_path, openstack_gpu_servers=[], openstack_private_key_file="~/.ssh/hb"
    )
    inv = _ansible_inventory(tools, path)
    assert inv.get("gpu", {}).get("hosts", []) == []
    worker = inv["_meta"]["hostvars"]["higgsbench-worker-1"]
    assert worker["ansible_ssh_private_key_file"] == "~/.ssh/hb"
    # the hop uses the key too (ProxyJump would pass on neither it nor the known-hosts file)
    hop = shlex.split(_options(_ssh_args(tools, path)["higgsbench-worker-1"])["ProxyCommand"])
    assert hop[-3:] == ["-i", "~/.ssh/hb", "ubuntu@203.0.113.10"]


def _render_ssh_inventory(tools, tmp_path: Path, *extra: str, check=True):
    """ssh_inventory.yml, as `make cluster-up PROVIDER=ssh HOSTS=… GPU=… BASTION=…` runs it."""
    out = tmp_path / "ssh.ini"
    proc = _run(
        [tools["ansible-playbook"], ANSIBLE / "ssh_inventory.yml",
         "-e", f"ssh_inventory_file={out}", "-e", "higgsbench_cluster_name=higgsbench", *extra],
        env=_env(), cwd=REPO, check=check,
    )  # fmt: skip
    return out if check else proc


def test_ssh_provider_writes_an_inventory_of_your_own_machines(tools, tmp_path):
    """PROVIDER=ssh: the first login is the master, the others workers; a bastion of its own is
    listed (for its host key) outside the cluster's groups, and every node goes through it."""
    path = _render_ssh_inventory(
        tools, tmp_path,
        "-e", "ssh_hosts=debian@192.0.2.5,debian@192.0.2.6:2222,192.0.2.7",
        "-e", "ssh_gpu_host=ubuntu@192.0.2.9", "-e", "ssh_bastion=jump@198.51.100.20",
    )  # fmt: skip
    inv = _ansible_inventory(tools, path)
    hv = inv["_meta"]["hostvars"]
    assert inv["master"]["hosts"] == ["higgsbench-master"]
    assert inv["workers"]["hosts"] == ["higgsbench-worker-1", "higgsbench-worker-2"]
    assert inv["gpu"]["hosts"] == ["higgsbench-gpu"]
    assert inv["bastion"]["hosts"] == ["higgsbench-bastion"]
    assert set(inv["cluster"]["children"]) == {"master", "workers", "gpu"}
    assert hv["higgsbench-master"]["ansible_host"] == "192.0.2.5"
    assert hv["higgsbench-master"]["ansible_user"] == "debian"
    assert (
        hv["higgsbench-worker-1"]["ansible_port"],
        hv["higgsbench-worker-1"]["ansible_user"],
    ) == (2222, "debian")
    assert "ansible_user" not in hv["higgsbench-worker-2"]  # ssh's own default
    assert hv["higgsbench-gpu"]["ansible_user"] == "ubuntu"
    assert all(v["higgsbench_bastion"] == "jump@198.51.100.20" for v in hv.values())
    ssh_args = _ssh_args(tools, path)
    for host, args in ssh_args.items():
        options = _options(args)
        assert options["StrictHostKeyChecking"] == "yes", host
        if host == "higgsbench-bastion":
            assert "ProxyCommand" not in options
            continue
        hop = shlex.split(options["ProxyCommand"])
        assert hop[:3] == ["ssh", "-W", "%h:%p"] and hop[-1] == "jump@198.51.100.20", host


def test_ssh_provider_with_the_master_as_bastion_and_bad_logins(tools, tmp_path):
    path = _render_ssh_inventory(
        tools, tmp_path, "-e", "ssh_hosts=cloud-user@203.0.113.10,cloud-user@10.0.0.11",
        "-e", "ssh_bastion=cloud-user@203.0.113.10",
    )  # fmt: skip
    inv = _ansible_inventory(tools, path)
    assert "bastion" not in inv and inv.get("gpu", {}).get("hosts", []) == []
    options = {h: _options(a) for h, a in _ssh_args(tools, path).items()}
    assert "ProxyCommand" not in options["higgsbench-master"]
    assert shlex.split(options["higgsbench-worker-1"]["ProxyCommand"])[-1] == (
        "cloud-user@203.0.113.10"
    )
    # without a bastion, every node directly
    path = _render_ssh_inventory(tools, tmp_path, "-e", "ssh_hosts=a@192.0.2.1,a@192.0.2.2")
    assert all("ProxyCommand" not in _options(a) for a in _ssh_args(tools, path).values())
    for bad in ("ssh_hosts=", "ssh_hosts=a@b@c", "ssh_hosts=a@h;x", "ssh_hosts=a@h:x"):
        proc = _render_ssh_inventory(
            tools, tmp_path / bad[10:].replace("/", "_"), "-e", bad, check=False
        )
        assert proc.returncode != 0 and "Set ssh_hosts (HOSTS=)" in proc.stdout, bad


def test_make_cluster_up_with_provider_ssh_runs_the_site_roles_on_your_hosts():
    """`make cluster-up PROVIDER=ssh`: HOSTS rendered into the live inventory under .state/,
    then known_hosts.yml and site.yml on it; INVENTORY= is used as it is; no OpenStack."""

    def plan(*args: str) -> list[str]:
        proc = _run(
            ["make", "-s", "-n", "-C", REPO, "cluster-up", "PROVIDER=ssh", *args],
            env={**os.environ, "USER": "Ci.User"},
        )
        lines = proc.stdout.replace("\\\n", " ").splitlines()  # join continued lines
        return [" ".join(line.split()) for line in lines if "ansible-playbook" in line]

    # the cluster is named after the login, its state (the inventory, Ansible's log) in its folder
    live = str(REPO / ".state" / "higgsbench-ci-user" / "inventory.ini")
    log = REPO / ".state" / "higgsbench-ci-user" / "ansible.log"
    steps = plan("HOSTS=debian@192.0.2.5,debian@192.0.2.6", "GPU=u@192.0.2.9", "BASTION=b@h")
    assert [line.split()[-1].rsplit("/", 1)[-1] for line in steps] == [
        "ssh_inventory.yml", "known_hosts.yml", "site.yml"
    ]  # fmt: skip
    assert "-e ssh_hosts=debian@192.0.2.5,debian@192.0.2.6 -e ssh_gpu_host=u@192.0.2.9" in steps[0]
    assert f"-e ssh_bastion=b@h -e ssh_inventory_file={live}" in steps[0]
    assert all("-i .state/higgsbench-ci-user/inventory.ini" in line for line in steps)
    assert all(f"ANSIBLE_LOG_PATH={log} " in line for line in steps)
    assert all("-e higgsbench_cluster_name=higgsbench-ci-user " in line for line in steps)
    named = plan("HOSTS=h", "CLUSTER=team-b")
    assert all("-i .state/team-b/inventory.ini" in line for line in named)
    assert all("-e higgsbench_cluster_name=team-b " in line for line in named)
    mine = plan("INVENTORY=mine.ini")
    assert len(mine) == 2 and all("-i mine.ini" in line for line in mine)
    assert not any("provision.yml" in line for line in steps + mine)


@pytest.mark.parametrize("name", ["Team_B", "-b", "a" * 41, "b;rm", "b'c"])
def test_a_cluster_name_that_cannot_name_servers_is_refused_before_ansible(name):
    """CLUSTER names servers, networks and a folder under .state/: anything but lower-case
    letters, digits and dashes (a letter first, at most 40) is refused in one line, exit 2,
    before Ansible starts and before the folder is made."""
    proc = _run(
        ["make", "-s", "-C", REPO, "cluster-status", f"CLUSTER={name}"],
        check=False, env=tool_env(), timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"CLUSTER={name}: lower-case letters, digits and dashes" in proc.stderr
    assert "PLAY" not in proc.stdout
    assert not (REPO / ".state" / name).exists()


def _image(id_: str, tag: str, *layers: str) -> dict:
    """docker_image_info's record of an image: its Id, tag and layers (diff IDs)."""
    return {"Id": id_, "RepoTags": [tag], "RootFS": {"Type": "layers", "Layers": list(layers)}}


def test_images_are_compared_by_their_layers_not_their_ids(tools, tmp_path):
    """The images role's load mode: an image the node has with the same layers under another Id
    (Docker's containerd image store names an image by its manifest, the classic store by its
    config) is not shipped again, and one that loads under another Id counts as loaded; an
    image of other layers (another build) or none at all is shipped."""
    control = [
        _image("sha256:index-a", "hb-spark:1", "sha256:l1", "sha256:l2"),
        _image("sha256:index-b", "hb-gpu:1", "sha256:l3"),
        _image("sha256:index-c", "hb-other:1", "sha256:l5"),
    ]
    node = [
        _image("sha256:config-a", "hb-spark:1", "sha256:l1", "sha256:l2"),
        _image("sha256:config-b", "hb-gpu:1", "sha256:l3", "sha256:l4"),
    ]
    facts = tmp_path / "facts.json"
    facts.write_text(
        json.dumps({"images_local": {"images": control}, "images_node_before": {"images": node}})
    )
    loaded = [_image("sha256:config-c", "hb-other:1", "sha256:l5")]
    playbook = tmp_path / "compare.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "hosts": "localhost",
                    "gather_facts": False,
                    "vars_files": [str(ANSIBLE / "roles" / "images" / "vars" / "main.yml")],
                    "tasks": [
                        {
                            "ansible.builtin.debug": {
                                "msg": "{{ {'missing': images_missing_ids, 'loaded':"
                                " images_layers_by_id['sha256:index-c'].Layers"
                                f" in ({loaded!r} | map(attribute='RootFS.Layers') | list)}} }}}}"
                            }
                        }
                    ],
                }
            ]
        )
    )
    proc = _run(
        [tools["ansible-playbook"], playbook, "-e", f"@{facts}"],
        env=_env(ANSIBLE_CALLBACK_RESULT_FORMAT="json"), cwd=REPO, timeout=120,
    )  # fmt: skip
    (_, msg), *_ = _results(proc.stdout)
    assert msg == {"missing": ["sha256:index-b", "sha256:index-c"], "loaded": True}


def test_proxy_settings_reach_apt_and_dockerd(tools, tmp_path):
    """higgsbench_http_proxy / _https_proxy / _no_proxy, as the common role gives them to apt
    and the docker role to dockerd (a systemd drop-in); hosts of no_proxy go DIRECT in apt."""
    _run(
        [tools["ansible-playbook"], REPO / "tests" / "ansible" / "render_proxy.yml",
         "-e", f"render_proxy_dir={tmp_path}",
         "-e", "higgsbench_http_proxy=http://proxy.example.org:3128",
         "-e", "higgsbench_no_proxy=localhost,10.42.0.0/24,registry.example.org"],
        env=_env(), cwd=REPO,
    )  # fmt: skip
    apt = (tmp_path / "apt-proxy.conf").read_text().splitlines()
    assert 'Acquire::http::Proxy "http://proxy.example.org:3128";' in apt
    assert 'Acquire::https::Proxy "http://proxy.example.org:3128";' in apt  # https: the same
    assert 'Acquire::http::Proxy::registry.example.org "DIRECT";' in apt
    assert not any("10.42.0.0" in line for line in apt)  # apt takes host names only
    dropin = (tmp_path / "http-proxy.conf").read_text().splitlines()
    assert dropin[1] == "[Service]"
    assert 'Environment="HTTPS_PROXY=http://proxy.example.org:3128"' in dropin
    assert 'Environment="NO_PROXY=localhost,10.42.0.0/24,registry.example.org"' in dropin
    # the roles write them only with a proxy, and remove them without one
    for role, path in (("common", "common_apt_proxy_file"), ("docker", "docker_proxy_dropin")):
        tasks = yaml.safe_load((ANSIBLE / "roles" / role / "tasks" / "main.yml").read_text())
        dests = {t.get("ansible.builtin.template", {}).get("dest") for t in tasks}
        removed = {t.get("ansible.builtin.file", {}).get("path") for t in tasks}
        assert f"{{{{ {path} }}}}" in dests & removed, role


def test_deb822_repositories_come_after_python3_debian():
    """deb822_repository needs python3-debian on the node, which cloud images lack."""
    found = 0
    for path in sorted(ANSIBLE.glob("roles/*/tasks/*.yml")):
        installed = False
        for task in yaml.safe_load(path.read_text()) or []:
            apt = task.get("ansible.builtin.apt", {})
            installed |= "python3-debian" in str(apt.get("name", ""))
            if "ansible.builtin.deb822_repository" in task:
                found += 1
                assert installed, f"{path}: {task['name']} before python3-debian is installed"
    assert found, "no deb822_repository task left: drop this test"


def test_gpu_role_needs_the_driver_the_gpu_image_names():
    """No GPU here: the GPU image names its oldest driver (a label), the role installs that
    branch (ubuntu-drivers --gpgpu on Ubuntu: the module package of the running kernel's
    flavour) and checks nvidia-smi's driver version against it before any container runs."""
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    label = re.search(r'org\.higgsbench\.min-nvidia-driver="([0-9]+)"', dockerfile)
    assert label and int(label.group(1)) >= 580, "CUDA 13 (torch's wheels) needs 580"
    tasks = yaml.safe_load((ANSIBLE / "roles" / "gpu_node" / "tasks" / "main.yml").read_text())

    def first(*needles: str) -> int:
        return next(i for i, t in enumerate(tasks) if all(n in str(t) for n in needles))

    reads_label = first("docker_image_info")
    assert "org.higgsbench.min-nvidia-driver" in str(tasks[reads_label + 1])
    installs = first("'ubuntu-drivers', 'install', '--gpgpu'")
    checks = first("ansible.builtin.assert", "select('version', gpu_node_required_driver, '<')")
    runs, runtime = first("'--gpus'"), first("nvidia-ctk runtime configure")
    assert reads_label < installs < checks < min(runs, runtime)
    assert "driver_version" in str(tasks[checks - 1])  # nvidia-smi --query-gpu=…driver_version
    defaults = yaml.safe_load(
        (ANSIBLE / "roles" / "gpu_node" / "defaults" / "main.yml").read_text()
    )
    assert defaults["gpu_node_min_driver"] == ""  # the label, unless set
    assert "gpu_node_required_driver" in defaults["gpu_node_driver_branch"]
    assert "ansible_facts['kernel']" in defaults["gpu_node_driver_packages"][0]


def test_provision_and_teardown_load_their_modules_and_refuse_an_open_ssh(tools, tmp_path):
    """No cloud here: a clouds.yaml entry whose API is a closed port. The openstack.cloud
    modules must load with the pinned openstacksdk and fail only on the connection."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        yaml.safe_dump(
            {
                "clouds": {
                    "nowhere": {
                        "auth": {
                            "auth_url": f"http://127.0.0.1:{port}/v3",
                            "username": "u",
                            "password": "p",
                            "project_name": "p",
                            "user_domain_name": "Default",
                            "project_domain_name": "Default",
                        },
                        "region_name": "RegionOne",
                    }
                }
            }
        )
    )
    key = tmp_path / "id.pub"
    key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExample0 t\n")
    env = _env(OS_CLIENT_CONFIG_FILE=str(clouds))

    def play(playbook: str, *extra: str) -> str:
        proc = _run(
            [
                tools["ansible-playbook"], ANSIBLE / playbook, "-e", "openstack_cloud=nowhere",
                "-e", f"openstack_public_key_file={key}", "-e", "openstack_timeout=10", *extra,
            ],
            env=env, cwd=tmp_path, check=False, timeout=300,
        )  # fmt: skip
        assert proc.returncode != 0
        return proc.stdout + proc.stderr

    # the world never; a network wider than /16 only when asked for. Refused: the settings
    # check stops the play before anything asks the cloud; accepted: the play goes on to ask.
    refused = [
        ("0.0.0.0/0",),
        ("1.2.3.4/0",),
        ("0.0.0.0/1",),
        ("10.0.0.0/15",),
        ("10.0.0.0/8",),
        ("1.2.3.4/0", "-e", "openstack_admin_cidr_allow_wide=true"),
    ]
    for cidr, *extra in refused:
        out = play("provision.yml", "-e", f"openstack_admin_cidr={cidr}", *extra)
        assert "Set openstack_admin_cidr to the address you SSH from" in out, (cidr, extra)
        assert "Unable to establish connection" not in out, f"provision.yml went on with {cidr}"
    accepted = [
        ("198.51.100.7/32",),
        ("10.1.0.0/16",),
        ("10.0.0.0/8", "-e", "openstack_admin_cidr_allow_wide=true"),
    ]
    for cidr, *extra in accepted:
        out = play("provision.yml", "-e", f"openstack_admin_cidr={cidr}", *extra)
        assert "Set openstack_admin_cidr" not in out, (cidr, out[-3000:])
        assert "Unable to establish connection" in out, (cidr, out[-3000:])
    out = play("teardown.yml")
    assert "Unable to establish connection" in out, out[-3000:]


def _tasks(playbook: Path) -> list[dict]:
    return [t for play in yaml.safe_load(playbook.read_text()) for t in play.get("tasks", [])]


def test_teardown_removes_what_provision_makes():
    made = {
        next(k for k in t if k.startswith("openstack.cloud."))
        for t in _tasks(ANSIBLE / "provision.yml")
        if any(k.startswith("openstack.cloud.") and not k.endswith("_info") for k in t)
    }
    removed = {}
    for t in _tasks(ANSIBLE / "teardown.yml"):
        module = next((k for k in t if k.startswith("openstack.cloud.")), None)
        if module and not module.endswith("_info"):
            assert t[module]["state"] == "absent", t["name"]
            removed[module] = t[module]
    # rules go with their groups, the floating IP with its server (delete_ips)
    assert made - {"openstack.cloud.security_group_rule", "openstack.cloud.floating_ip"} == set(
        removed
    )
    assert removed["openstack.cloud.server"]["delete_ips"] is True
    # and the servers' host keys go with them (new servers at the same addresses have others)
    files = [
        t["ansible.builtin.file"]
        for t in _tasks(ANSIBLE / "teardown.yml")
        if "ansible.builtin.file" in t
    ]
    assert {"path": "{{ higgsbench_known_hosts_file }}", "state": "absent"} in files
    # both read the resource names from one file
    for playbook in ("provision.yml", "teardown.yml"):
        assert yaml.safe_load((ANSIBLE / playbook).read_text())[0]["vars_files"] == [
            "vars/openstack.yml"
        ]


# --- only known hosts: a real sshd whose host key changes ---------------------------------------


class Sshd:
    """OpenSSH's sshd on 127.0.0.1 at a free port, with a host key of the test's choosing."""

    def __init__(self, root: Path, user_key: Path):
        self.root, self.proc = root, None
        binary = shutil.which("sshd") or "/usr/sbin/sshd"
        if not Path(binary).exists():
            _skip_or_fail("no sshd (apt-get install openssh-server)")
        self.binary = binary
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.name = f"[127.0.0.1]:{self.port}"  # how known_hosts and paramiko name it
        authorized = root / "authorized_keys"
        authorized.write_text(_ssh_key(user_key))
        self.config = root / "sshd_config"
        self.config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {root / 'host_key'}\n"
            f"PidFile {root / 'sshd.pid'}\nAuthorizedKeysFile {authorized}\n"
            "StrictModes no\nUsePAM no\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        )
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # its privilege separation dir

    def start(self, host_key: Path) -> str:
        """(Re)start with host_key; returns its public line's "type key"."""
        self.stop()
        shutil.copy(host_key, self.root / "host_key")
        (self.root / "host_key").chmod(0o600)
        self.proc = subprocess.Popen(
            [self.binary, "-D", "-e", "-f", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=(self.root / "sshd.log").open("a"),
        )
        deadline = time.monotonic() + 15
        while True:
            assert self.proc.poll() is None, (self.root / "sshd.log").read_text()
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            assert time.monotonic() < deadline, "sshd did not listen"
            time.sleep(0.1)
        return " ".join(Path(f"{host_key}.pub").read_text().split()[:2])

    def stop(self) -> None:
        """Stop the listener and the sessions it forked (they outlive it otherwise)."""
        if self.proc is None:
            return
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                state_ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]  # after "pid (comm)"
            except OSError:
                continue
            if int(state_ppid[1]) == self.proc.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(stat.parent.name), signal.SIGTERM)
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
def sshd(tmp_path):
    server = Sshd(tmp_path, tmp_path / "id_ed25519")
    try:
        yield server
    finally:
        server.stop()


def test_ssh_refuses_unknown_and_changed_host_keys(tools, tmp_path, sshd):
    """Ansible (the project's ansible.cfg and group_vars), the one way to the nodes, trusts only
    the cluster's known-hosts file: an unknown host and a host whose key changed are refused,
    naming it and saying what to do; known_hosts.yml adds unknown hosts only, never replaces a
    key."""
    keys = {}
    for k in ("a", "b"):
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", k, "-f", tmp_path / k])
        keys[k] = tmp_path / k
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        f"[master]\nnode ansible_host=127.0.0.1 ansible_port={sshd.port}\n\n"
        "[cluster:children]\nmaster\n\n[cluster:vars]\n"
        f"ansible_user={getpass.getuser()}\n"
        f"ansible_ssh_private_key_file={tmp_path / 'id_ed25519'}\n"
        f"ansible_python_interpreter={sys.executable}\n"  # the "node" is this machine
    )
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")

    def ping() -> subprocess.CompletedProcess:
        control = Path(tempfile.mkdtemp(prefix="hbcp", dir="/tmp"))  # a short socket path
        try:
            return ansible_ping(tools, inventory, known_hosts, control)
        finally:
            shutil.rmtree(control, ignore_errors=True)

    a = sshd.start(keys["a"])
    # 1. unknown: nothing in the file yet
    proc = ping()
    assert proc.returncode != 0 and "UNREACHABLE" in proc.stdout, proc.stdout
    assert f"host key is known for {sshd.name}" in proc.stdout, proc.stdout

    # 2. recorded by known_hosts.yml (the file stays private): both get in
    record_known_hosts(tools, inventory, known_hosts)
    assert known_hosts.read_text().splitlines() == [f"{sshd.name} {a}"]
    assert known_hosts.stat().st_mode & 0o777 == 0o600
    proc = ping()
    # ansible.cfg prints results as YAML (callback_result_format); JSON would say "ping": "pong"
    assert proc.returncode == 0 and re.search(r'"?ping"?: "?pong', proc.stdout), (
        proc.stdout + proc.stderr
    )

    # 3. the host comes back with another key: both refuse, naming it and saying what to do
    b = sshd.start(keys["b"])
    proc = ping()
    assert proc.returncode != 0 and "UNREACHABLE" in proc.stdout, proc.stdout
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in proc.stdout, proc.stdout
    assert sshd.name in proc.stdout and "Host key verification failed" in proc.stdout

    # 4. scanning again does not accept the new key
    again = record_known_hosts(tools, inventory, known_hosts)
    assert recap(again.stdout)["localhost"]["changed"] == 0
    assert known_hosts.read_text().splitlines() == [f"{sshd.name} {a}"]
    assert "UNREACHABLE" in ping().stdout

    # 5. what the message says to do, when the host was re-created on purpose
    _run(["ssh-keygen", "-R", sshd.name, "-f", known_hosts])
    record_known_hosts(tools, inventory, known_hosts)
    assert known_hosts.read_text().splitlines() == [f"{sshd.name} {b}"]
    assert ping().returncode == 0


def _tunables() -> dict[str, list[str]]:
    files = [ANSIBLE / "group_vars" / "all.yml", *sorted(ANSIBLE.glob("roles/*/defaults/main.yml"))]
    return {str(f.relative_to(ANSIBLE)): list(yaml.safe_load(f.read_text()) or {}) for f in files}


def test_every_tunable_is_commented_and_in_the_readme():
    readme = (ANSIBLE / "README.md").read_text()
    for path, names in _tunables().items():
        text = (ANSIBLE / path).read_text().splitlines()
        for name in names:
            assert f"`{name}`" in readme, f"{name} ({path}) is not in ansible/README.md"
            line = next(i for i, t in enumerate(text) if t.startswith(f"{name}:"))
            assert text[line - 1].lstrip().startswith("#"), f"{name} ({path}) has no comment"
        role = path.split("/")[1] if path.startswith("roles/") else None
        if role:
            assert all(n.startswith(role + "_") for n in names), (path, names)


def test_group_vars_version_is_the_apps():
    settings = yaml.safe_load((ANSIBLE / "group_vars" / "all.yml").read_text())
    assert settings["higgsbench_version"] == __version__


def _plan(tools, inventory: Path, playbook: str, *settings: str, runs: Path):
    """A bench playbook's first play alone (--limit localhost: no node is touched)."""
    return _run(
        [tools["ansible-playbook"], "-i", inventory, "--limit", "localhost", ANSIBLE / playbook,
         "-e", f"bench_runs_dir={runs}", *[a for s in settings for a in ("-e", s)]],
        env=_env(), cwd=REPO, check=False, timeout=120,
    )  # fmt: skip


def test_bench_playbooks_check_their_settings_before_touching_a_node(tools, tmp_path):
    """The worker counts NODES names (3, 1,2,4, 1-5) against the inventory, the data, the run
    id, the GPU node: refused with what to set, before any node is reached."""
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        # localhost listed, so that --limit can pick it (Ansible's implicit one cannot be)
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
        "[master]\nm ansible_host=192.0.2.1\n[workers]\n"
        + "".join(f"w{i} ansible_host=192.0.2.{10 + i}\n" for i in range(1, 6))
        + "[gpu]\n"
    )
    runs = tmp_path / "runs"

    def plan(playbook="bench.yml", *settings):
        proc = _plan(tools, inventory, playbook, *settings, runs=runs)
        return proc.returncode, _words(proc.stdout + proc.stderr)

    rc, out = plan("bench.yml", "bench_nodes=1-3,5", "bench_run_id=r1")
    assert rc == 0 and "run r1: Spark, NODES 1,2,3,5, optimizers adam" in out, out[-3000:]
    assert "data synth-1000000-seed42" in out
    rc, out = plan("bench.yml", "bench_nodes=2,1,2")
    assert rc == 0 and re.search(r"run bench-cluster-\d{8}-\d{6}: Spark, NODES 1,2,", out), out
    for bad in ("2-x", "0", "", "1;2"):
        rc, out = plan("bench.yml", f"bench_nodes={bad}")
        assert rc != 0 and "NODES" in out, (bad, out[-2000:])
    rc, out = plan("bench.yml", "bench_nodes=6")
    assert rc != 0 and "NODES=6 needs 6 workers and one master: the inventory has 5" in out, out
    rc, out = plan("bench.yml", f"bench_data={tmp_path / 'missing.csv.gz'}")
    assert rc != 0 and "missing.csv.gz: not synth, uci or a file on this machine" in out, out
    # a file: named by its digest, as every node will name its prepared copy
    data = tmp_path / "HIGGS.csv.gz"
    data.write_bytes(b"some bytes")
    digest = hashlib.sha256(b"some bytes").hexdigest()
    rc, out = plan("bench.yml", f"bench_data={data}", "bench_rows=1000")
    assert rc == 0 and f"data higgs-{digest[:12]}-1000" in out, out[-3000:]
    rc, out = plan("bench.yml", "bench_run_id=../x")
    assert rc != 0 and "RUN is letters" in out
    (runs / "taken").mkdir(parents=True)
    rc, out = plan("bench.yml", "bench_run_id=taken")
    assert rc != 0 and f"{runs / 'taken'} exists: pick another RUN=" in out
    # the GPU sweep: a GPU node, a precision it knows, a reference bench that exists
    rc, out = plan("bench_gpu.yml")
    assert rc != 0 and "the inventory's gpu group is empty" in out
    inventory.write_text(inventory.read_text() + "g ansible_host=192.0.2.30\n")
    rc, out = plan("bench_gpu.yml", "bench_optimizers=sgd,adam", "bench_precision=bf16")
    assert rc == 0 and "GPU, engines torch,keras, precision bf16, optimizers sgd,adam" in out, out
    rc, out = plan("bench_gpu.yml", "bench_gpu_engines=torch")
    assert rc == 0 and "GPU, engines torch, precision fp32" in out, out[-3000:]
    rc, out = plan("bench_gpu.yml", "bench_gpu_engines=torch,spark")
    assert rc != 0 and "GPU_ENGINES is torch, keras or both" in out
    rc, out = plan("bench_gpu.yml", "bench_precision=fp8")
    assert rc != 0 and "PRECISION is fp32, tf32 or bf16" in out
    rc, out = plan("bench_gpu.yml", f"bench_against={tmp_path / 'nope.json'}")
    assert rc != 0 and "nope.json: no such file" in out


def test_make_bench_targets_run_the_playbooks():
    """The targets users type, and what they pass: no Python of ours reaches the nodes."""

    def plan(target: str, *args: str) -> str:
        proc = _run(["make", "-s", "-n", "-C", REPO, target, *args])
        return " ".join(proc.stdout.replace("\\\n", " ").split())

    line = plan("bench-cluster", "NODES=3", "OPTIMIZERS=adam,sgd", "DATA=uci", "DETACH=1")
    assert "bench.yml" in line and "-e bench_nodes=3 -e bench_optimizers=adam,sgd" in line
    assert "-e bench_data=uci" in line and "-e bench_wait=false" in line
    line = plan("bench-cluster", "DATA=some/HIGGS.csv.gz")
    assert f"-e bench_data={REPO / 'some' / 'HIGGS.csv.gz'}" in line and "bench_wait" not in line
    assert "-e bench_nodes=1,2,3,4,5" in plan("bench-sweep")
    assert "-e bench_repeat=3" in plan("bench-cluster", "REPEAT=3")
    assert "-e bench_repeat=1" in plan("bench-cluster")
    line = plan("bench-gpu", "GPU_AGAINST=runs/x/bench.json", "PRECISION=bf16")
    assert "bench_gpu.yml" in line and "-e bench_precision=bf16" in line
    assert "-e bench_gpu_engines=torch,keras" in line
    assert "-e bench_gpu_engines=torch " in plan("bench-gpu", "GPU_ENGINES=torch")
    assert f"-e bench_against={REPO / 'runs' / 'x' / 'bench.json'}" in line
    assert "bench_status.yml" in plan("bench-status")
    assert "bench_status.yml" in (line := plan("bench-wait")) and "-e bench_wait=true" in line
    assert "cluster_status.yml" in plan("cluster-status")
    assert not list(ANSIBLE.glob("*.py")), "the nodes are reached through Ansible only"


# --- issue 23: the GPU node for the cards people have; what an Ansible user expects ------------

GPU_ROLE = ANSIBLE / "roles" / "gpu_node"
# A stand-in for torch, for the GPU check without a GPU: what it "sees" comes from FAKE_TORCH.
FAKE_TORCH = """
import json, os, types
_cfg = json.loads(os.environ["FAKE_TORCH"])
__version__ = "2.13.0"
version = types.SimpleNamespace(cuda="13.0")


class _Tensor:
    def sum(self):
        return self

    def item(self):
        return 8.0


def ones(n, device=None):
    if _cfg.get("kernel_error"):
        raise RuntimeError(_cfg["kernel_error"])
    return _Tensor()


cuda = types.SimpleNamespace(
    is_available=lambda: bool(_cfg["cards"]),
    device_count=lambda: len(_cfg["cards"]),
    get_device_name=lambda i: _cfg["cards"][i][0],
    get_device_capability=lambda i: tuple(_cfg["cards"][i][1]),
    get_arch_list=lambda: ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"],
)
"""
# A stand-in for the docker CLI: logs its argv, then runs what follows the image with this
# machine's Python (the image's entrypoint, `python`, replaced by it).
FAKE_DOCKER = """#!{python}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_DOCKER_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
rest = args[args.index(os.environ["FAKE_DOCKER_IMAGE"]) + 1 :]
os.execv(sys.executable, [sys.executable, *rest])
"""


def _local_hosts(path: Path, hosts: dict[str, dict]) -> Path:
    """An inventory of local "nodes", one per case, each with its own variables."""
    lines = ["[gpu]"]
    for name, hostvars in hosts.items():
        lines.append(
            f"{name} ansible_connection=local ansible_python_interpreter={sys.executable} "
            + " ".join(f"{k}='{json.dumps(v)}'" for k, v in hostvars.items())
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def _role_play(role: str, tasks_from: str, *after: dict, hosts: str = "gpu", **play) -> dict:
    """A play that runs one task file of ``role`` on the local "nodes" of _local_hosts, then
    ``after`` (tasks that show what it set)."""
    include = {"ansible.builtin.include_role": {"name": role, "tasks_from": tasks_from}}
    return {"hosts": hosts, "gather_facts": False, **play, "tasks": [include, *after]}


def _failures(output: str) -> dict[str, str]:
    """{host: its failure message} from ansible-playbook's output, its results as JSON
    (ANSIBLE_CALLBACK_RESULT_FORMAT=json)."""
    decoder, out = json.JSONDecoder(), {}
    for m in re.finditer(r"fatal: \[([^\]]+)\]: FAILED! => ", output):
        result, _ = decoder.raw_decode(output, m.end())
        out[m.group(1)] = _words(result.get("msg", ""))
    return out


def _results(output: str) -> list[tuple[str, object]]:
    """(host, msg) of every `ok: [host] => {…}` in ansible-playbook's output, in order (results
    as JSON: ANSIBLE_CALLBACK_RESULT_FORMAT=json)."""
    decoder = json.JSONDecoder()
    return [
        (m.group(1), decoder.raw_decode(output, m.end())[0].get("msg"))
        for m in re.finditer(r"ok: \[([^\]]+)\] => ", output)
    ]


def test_gpu_check_runs_a_kernel_and_refuses_cards_below_the_images_minimum(tools, tmp_path):
    """The role's container check (docker run --gpus all <GPU image> python -c
    files/check_gpu.py <minimum>) with a stand-in docker and torch: a V100 (7.0) is refused by
    name with why, a card whose kernel fails is refused, an L4 passes; the minimum is a setting
    (9.0 refuses the L4); and the same command with this machine's CPU-only torch refuses with
    "no CUDA device"."""
    (tmp_path / "fake" / "torch").mkdir(parents=True)
    (tmp_path / "fake" / "torch" / "__init__.py").write_text(FAKE_TORCH)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER.format(python=sys.executable))
    (bin_dir / "docker").chmod(0o755)
    image = "hb-gpu:test"

    def env(name: str, cards, kernel_error=None, fake=True) -> dict:
        return {
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "FAKE_DOCKER_LOG": str(tmp_path / f"{name}.log"),
            "FAKE_DOCKER_IMAGE": image,
            "FAKE_TORCH": json.dumps({"cards": cards, "kernel_error": kernel_error}),
            **({"PYTHONPATH": str(tmp_path / "fake")} if fake else {}),
        }

    hosts = {
        "v100": {"fake_env": env("v100", [["Tesla V100-SXM2-16GB", [7, 0]]])},
        "l4": {"fake_env": env("l4", [["NVIDIA L4", [8, 9]]])},
        "l4-min-9": {
            "fake_env": env("l4-min-9", [["NVIDIA L4", [8, 9]]]),
            "gpu_node_min_compute_capability": "9.0",
        },
        "t4-no-kernel": {
            "fake_env": env(
                "t4-no-kernel", [["Tesla T4", [7, 5]]], kernel_error="no kernel image is available"
            ),
        },
        "cpu-torch": {"fake_env": env("cpu-torch", [], fake=False)},
    }
    playbook = tmp_path / "check.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "The gpu_node role's container check, alone",
                    "hosts": "gpu",
                    "gather_facts": False,
                    "environment": "{{ fake_env }}",
                    "tasks": [
                        {"ansible.builtin.import_role": {"name": "gpu_node"}},
                    ],
                }
            ]
        )
    )
    proc = _run(
        [tools["ansible-playbook"], "-i", _local_hosts(tmp_path / "hosts.ini", hosts), playbook,
         "--tags", "gpu_node_check", "-e", f"higgsbench_gpu_image={image}"],
        env=_env(ANSIBLE_CALLBACK_RESULT_FORMAT="json"), cwd=REPO, check=False, timeout=300,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    failed = _failures(out)
    assert set(failed) == {"v100", "l4-min-9", "t4-no-kernel", "cpu-torch"}, out[-5000:]
    assert recap(proc.stdout)["l4"]["failed"] == 0
    cannot = f"{image} cannot compute on this node's GPU"
    assert all(cannot in message for message in failed.values()), failed
    assert (
        "GPU 0 Tesla V100-SXM2-16GB: compute capability 7.0, below 7.5: torch 2.13.0 (CUDA 13.0) "
        "carries no code for it" in failed["v100"]
    ), failed["v100"]
    assert "CUDA 13 wheels dropped sm_70" in failed["v100"]
    assert "would pass torch.cuda.is_available() and fail at its first kernel" in failed["v100"]
    assert "GPU 0 NVIDIA L4: compute capability 8.9, below 9.0" in failed["l4-min-9"]
    assert (
        "GPU 0 Tesla T4: a CUDA kernel failed: no kernel image is available"
        in failed["t4-no-kernel"]
    )
    assert "sees no CUDA device: run it with --gpus all" in failed["cpu-torch"]
    assert "GPU 0 NVIDIA L4: compute capability 8.9, torch 2.13.0 (CUDA 13.0): a kernel ran" in (
        _words(out)
    )
    # what ran: the role's docker command, with check_gpu.py as it is and the minimum after it
    script = (GPU_ROLE / "files" / "check_gpu.py").read_text().rstrip()
    for name, minimum in (("l4", "7.5"), ("l4-min-9", "9.0")):
        (argv,) = [json.loads(line) for line in (tmp_path / f"{name}.log").read_text().splitlines()]
        assert argv[:7] == ["run", "--rm", "--gpus", "all", "--entrypoint", "python", image]
        assert argv[7:] == ["-c", script, minimum]
    # that command as it is, on this machine's CPU-only torch: refused, naming why
    proc = _run([sys.executable, "-c", script, "7.5"], check=False, timeout=120)
    assert proc.returncode == 1 and "sees no CUDA device" in proc.stderr, proc.stderr


def test_gpu_node_reads_nvswitches_and_vgpus_before_installing_a_driver(tools, tmp_path):
    """roles/gpu_node/tasks/hardware.yml with stand-ins for lspci and nvidia-smi: NVSwitches
    call for Fabric Manager (gpu_node_fabricmanager auto; true and false decide alone), a node
    without a driver needs one, a vGPU whose (GRID) driver is too old is refused with what to do,
    a vGPU whose driver suffices is left alone, a Debian node that needs a driver is refused
    with the ways that work (one that has it is not); and main.yml acts on it in that order."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # the node's distribution, as fact gathering reports it (a module may return facts)
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "fake_os.py").write_text(
        "from ansible.module_utils.basic import AnsibleModule\n"
        "m = AnsibleModule(argument_spec={'name': {}, 'version': {}})\n"
        "m.exit_json(ansible_facts={'distribution': m.params['name'],"
        " 'distribution_version': m.params['version']})\n"
    )
    # lspci -n [-d [vendor]:[device][:class]]: the lines of FAKE_LSPCI that match
    (bin_dir / "lspci").write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        "spec = sys.argv[sys.argv.index('-d') + 1].split(':') if '-d' in sys.argv else []\n"
        "for line in os.environ['FAKE_LSPCI'].splitlines():\n"
        "    _, cls, ids = line.split()[:3]\n"
        "    have = ids.split(':') + [cls.rstrip(':')]\n"
        "    if all(not want or want == got for want, got in zip(spec, have)):\n"
        "        print(line)\n"
    )
    (bin_dir / "nvidia-smi").write_text(
        "#!/bin/sh\n"
        '[ -n "$FAKE_DRIVER" ] || { echo "NVIDIA-SMI has failed: no driver" >&2; exit 9; }\n'
        'case "$1" in -q) printf "Driver Version : %s\\n    GPU Virtualization Mode\\n'
        '        Virtualization Mode : %s\\n" "$FAKE_DRIVER" "$FAKE_MODE";;\n'
        '  *) echo "$FAKE_DRIVER";; esac\n'
    )
    for tool in ("lspci", "nvidia-smi"):
        (bin_dir / tool).chmod(0o755)
    # a PCIe card beside an Intel bridge of the same class; an HGX board with its NVSwitches
    pcie = "00:1f.4 0680: 8086:7a23 (rev 11)\n17:00.0 0302: 10de:27b8 (rev a1)\n"
    switches = pcie + "07:00.0 0680: 10de:22a3 (rev a1)\n08:00.0 0680: 10de:22a3 (rev a1)\n"

    def node(lspci="", driver="", mode="Pass-Through", system="Ubuntu 24.04", **settings) -> dict:
        path = f"{bin_dir}:{os.environ['PATH']}"
        env = {"PATH": path, "FAKE_LSPCI": lspci, "FAKE_DRIVER": driver, "FAKE_MODE": mode}
        return {"fake_env": env, "fake_os": system.split(), **settings}

    hosts = {
        "hgx": node(switches, "580.95.05"),
        "hgx-fm-off": node(switches, "580.95.05", gpu_node_fabricmanager="false"),
        "pcie-fm-on": node(pcie, "580.95.05", gpu_node_fabricmanager="true"),
        "fresh": node(pcie),
        "old": node(pcie, "570.172.08"),
        "vgpu-old": node(pcie, "570.172.08", "VGPU"),
        "vgpu": node(pcie, "580.82.07", "VGPU"),
        "bad-setting": node(gpu_node_fabricmanager="sometimes"),
        "debian-fresh": node(pcie, system="Debian 12"),
        "debian-580": node(pcie, "580.95.05", system="Debian 12"),
        "debian-own-packages": node(pcie, system="Debian 12", gpu_node_use_ubuntu_drivers=False),
    }
    facts = ["gpu_node_nvswitch", "gpu_node_fabricmanager_wanted", "gpu_node_vgpu",
             "gpu_node_driver_outdated", "gpu_node_running_driver"]  # fmt: skip
    playbook = tmp_path / "hardware.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "What the GPU node has",
                    "hosts": "gpu",
                    "gather_facts": False,
                    "environment": "{{ fake_env }}",
                    "tasks": [
                        {"fake_os": {"name": "{{ fake_os[0] }}", "version": "{{ fake_os[1] }}"}},
                        {
                            "ansible.builtin.include_role": {
                                "name": "gpu_node",
                                "tasks_from": "hardware.yml",
                            },
                        },
                        {
                            "name": "Show",
                            "ansible.builtin.debug": {
                                "msg": "{{ {" + ", ".join(f"'{f}': {f}" for f in facts) + "} }}",
                            },
                        },
                    ],
                }
            ]
        )
    )
    proc = _run(
        [tools["ansible-playbook"], "-i", _local_hosts(tmp_path / "hosts.ini", hosts), playbook,
         "-e", "gpu_node_required_driver=580", "-e", "higgsbench_gpu_image=hb-gpu:test"],
        env=_env(ANSIBLE_CALLBACK_RESULT_FORMAT="json"), cwd=REPO, check=False, timeout=300,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    seen = {host: msg for host, msg in _results(proc.stdout) if isinstance(msg, dict)}
    failed = _failures(out)
    assert set(failed) == {"vgpu-old", "bad-setting", "debian-fresh"}, out[-5000:]
    assert (
        "debian-fresh runs Debian 12 and needs NVIDIA driver 580 or newer (running: none); this"
        " role installs one only on Ubuntu (ubuntu-drivers)" in failed["debian-fresh"]
    ), failed["debian-fresh"]
    assert "NVIDIA's CUDA repository" in failed["debian-fresh"]
    assert "gpu_node_use_ubuntu_drivers=false" in failed["debian-fresh"]
    assert (
        "vgpu-old is a vGPU guest (nvidia-smi -q: Virtualization Mode VGPU) running driver "
        "570.172.08; hb-gpu:test needs 580 or newer" in failed["vgpu-old"]
    ), failed["vgpu-old"]
    assert "NVIDIA's licensed GRID guest driver" in failed["vgpu-old"]
    assert (
        'Set gpu_node_fabricmanager to auto, true or false (got "sometimes")'
        in (failed["bad-setting"])
    )
    want = {  # nvswitch, fabric manager, vgpu, driver outdated, running driver
        "hgx": (True, True, False, False, ["580.95.05"]),
        "hgx-fm-off": (True, False, False, False, ["580.95.05"]),
        "pcie-fm-on": (False, True, False, False, ["580.95.05"]),
        "fresh": (False, False, False, True, []),
        "old": (False, False, False, True, ["570.172.08"]),
        "vgpu": (False, False, True, False, ["580.82.07"]),
        "debian-580": (False, False, False, False, ["580.95.05"]),
        "debian-own-packages": (False, False, False, True, []),
    }
    assert {h: tuple(seen[h][f] for f in facts) for h in seen} == want, out[-5000:]

    # main.yml: no driver install on a vGPU; nvidia-smi after ubuntu-drivers (it brings none);
    # Fabric Manager after the driver is checked and before the first container needs CUDA
    tasks = yaml.safe_load((GPU_ROLE / "tasks" / "main.yml").read_text())
    names = [t.get("name", "") for t in tasks]
    block = next(t for t in tasks if "block" in t)
    assert "not gpu_node_vgpu" in block["when"] and "gpu_node_driver_outdated" in block["when"]
    inner = [str(t) for t in block["block"]]
    drivers = next(i for i, t in enumerate(inner) if "'ubuntu-drivers', 'install'" in t)
    assert (
        "nvidia-utils-{{ gpu_node_driver_branch | regex_replace('-open$', '') }}"
        in (inner[drivers + 1])
    )
    fabric = [i for i, t in enumerate(tasks) if "nvidia-fabricmanager" in str(t)]
    assert len(fabric) == 2 and all(
        tasks[i]["when"] == "gpu_node_fabricmanager_wanted | bool" for i in fabric
    )
    hardware = names.index("Read what the node has")
    checked = next(i for i, t in enumerate(tasks) if "gpu_node_required_driver, '<')" in str(t))
    container = next(i for i, t in enumerate(tasks) if "'--gpus'" in str(t))
    assert hardware < names.index(block["name"]) < checked < min(fabric) < container
    defaults = yaml.safe_load((GPU_ROLE / "defaults" / "main.yml").read_text())
    assert defaults["gpu_node_driver_branch"].endswith("}}-server-open")
    assert defaults["gpu_node_fabricmanager"] == "auto"
    # Fabric Manager at the running driver's own version (it refuses to start beside another)
    install = tasks[fabric[0]]
    smi = {"rc": 0, "stdout_lines": ["NVIDIA H100 80GB HBM3, 580.95.05, 81559 MiB"] * 8}
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "The Fabric Manager package",
                    "hosts": "localhost",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "ansible.builtin.debug": {
                                "msg": install["ansible.builtin.apt"]["name"]
                            },
                            "vars": {**install["vars"], "gpu_node_smi": smi},
                        }
                    ],
                }
            ]
        )
    )
    proc = _run(
        [tools["ansible-playbook"], playbook],
        env=_env(ANSIBLE_CALLBACK_RESULT_FORMAT="json"), cwd=REPO,
    )  # fmt: skip
    assert _results(proc.stdout) == [("localhost", "nvidia-fabricmanager-580=580.95.05-*")]


def _make_plan(target: str, *args: str, env: dict | None = None) -> list[str]:
    """`make -n TARGET ARGS`: its command lines, continued lines joined, blanks collapsed."""
    proc = _run(["make", "-s", "-n", "-C", REPO, target, *args], env=env)
    lines = proc.stdout.replace("\\\n", " ").splitlines()
    return [" ".join(line.split()) for line in lines]


def test_the_gpu_node_is_made_only_with_gpu_1(tools, tmp_path):
    """GPU=1 is the opt-in: make passes it to provision.yml as openstack_gpu_node, whose default
    is off; the servers provision boots (and its preflight counts) follow it; a GPU node made
    before stays in the inventory; without one, make bench-gpu says how to get one."""
    admin = "ADMIN_CIDR=198.51.100.7/32"

    def provision(*args: str) -> str:
        (line,) = [x for x in _make_plan("cluster-up", admin, *args) if "provision.yml" in x]
        return line

    assert "openstack_gpu_node" not in provision()
    assert "-e openstack_gpu_node=true" in provision("GPU=1")
    assert "-e openstack_gpu_node=false" in provision("GPU=0")
    # a login is for PROVIDER=ssh: refused before anything runs (the venv's stamp taken as made)
    proc = _run(
        ["make", "-s", "-C", REPO, "-o", ".venv/bin/../.ansible-tools", "cluster-up", admin,
         "GPU=ubuntu@192.0.2.9"],
        check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "GPU=1 makes a GPU node" in proc.stderr, proc.stderr
    assert "GPU=ubuntu@192.0.2.9 looks like a login, for PROVIDER=ssh" in proc.stderr

    settings = yaml.safe_load((ANSIBLE / "group_vars" / "all.yml").read_text())
    assert settings["openstack_gpu_node"] is False

    def planned(*extra: str) -> list[str]:
        proc = _run(
            [tools["ansible"], "localhost", "-m", "ansible.builtin.debug",
             "-a", "msg={{ openstack_servers_planned | map(attribute='role') | list }}",
             "-e", f"@{ANSIBLE / 'vars' / 'openstack.yml'}", *extra],
            env=_env(ANSIBLE_CALLBACK_RESULT_FORMAT="json"), cwd=REPO,
        )  # fmt: skip
        return json.loads(proc.stdout.partition(" => ")[2])["msg"]

    assert planned() == ["master"] + ["worker"] * 5
    assert planned("-e", "openstack_gpu_node=true") == ["master"] + ["worker"] * 5 + ["gpu"]

    # provision.yml's inventory: the GPU node when asked for, or when one exists already
    task = next(t for t in _tasks(ANSIBLE / "provision.yml") if t["name"] == "Write inventory.ini")
    expression = task["vars"]["openstack_gpu_servers"]
    playbook = tmp_path / "gpu_servers.yml"
    names_of_gpu_servers = f"{{{{ ({expression.strip()[2:-2]}) | map(attribute='name') | list }}}}"
    cases = {
        "asked": (True, ["higgsbench-master", "higgsbench-gpu"]),
        "kept": (False, ["higgsbench-master", "higgsbench-gpu"]),
        "none": (False, ["higgsbench-master"]),
    }
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "openstack_gpu_servers as provision.yml computes it",
                    "hosts": "localhost",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": case,
                            "ansible.builtin.debug": {
                                "msg": names_of_gpu_servers,
                            },
                            "vars": {
                                "openstack_gpu_node": gpu_node,
                                "openstack_gpu_name": "higgsbench-gpu",
                                "openstack_by_name": {name: {"name": name} for name in names},
                            },
                        }
                        for case, (gpu_node, names) in cases.items()
                    ],
                }
            ]
        )
    )
    proc = _run(
        [tools["ansible-playbook"], playbook],
        env=_env(ANSIBLE_CALLBACK_RESULT_FORMAT="json"), cwd=REPO,
    )  # fmt: skip
    gpus = [msg for _, msg in _results(proc.stdout)]
    assert gpus == [["higgsbench-gpu"], ["higgsbench-gpu"], []], proc.stdout

    # make bench-gpu on a cluster without a GPU node: one line, how to get one
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
        "[master]\nm ansible_host=192.0.2.1\n[workers]\nw1 ansible_host=192.0.2.11\n[gpu]\n"
    )
    proc = _plan(tools, inventory, "bench_gpu.yml", runs=tmp_path / "runs")
    out = _words(proc.stdout + proc.stderr)
    assert (
        proc.returncode != 0
        and (
            "no GPU node: the inventory's gpu group is empty. Make one with "
            "`make cluster-up GPU=1` (OpenStack), or name yours with "
            "`make cluster-up PROVIDER=ssh HOSTS=… GPU=user@host`"
        )
        in out
    ), out[-3000:]


def test_collections_requirements_name_every_collection_used_at_the_installed_versions(tools):
    """ansible/collections/requirements.yml lists each collection whose modules, filters,
    callbacks or module groups ansible/ names (FQCN), none more; each installed copy (the pinned
    `ansible` package's) lies in its range."""
    from packaging.specifiers import SpecifierSet

    listed = {
        c["name"]: SpecifierSet(c["version"])
        for c in yaml.safe_load((ANSIBLE / "collections" / "requirements.yml").read_text())[
            "collections"
        ]
    }
    proc = _run(
        [str(Path(tools["ansible-playbook"]).with_name("ansible-galaxy")), "collection", "list",
         "--format", "json"],
        env=_env(), cwd=REPO,
    )  # fmt: skip
    installed: dict[str, list[str]] = {}
    for collections in json.loads(proc.stdout).values():
        for name, info in collections.items():
            installed.setdefault(name, []).append(info["version"])
    fqcn = re.compile(r"\b([a-z][a-z0-9_]*\.[a-z][a-z0-9_]*)\.[a-z_]")  # namespace.name.plugin
    used = {
        collection
        for path in ANSIBLE.rglob("*")
        if path.suffix in {".yml", ".yaml", ".j2", ".cfg", ".py"}
        and "collections" not in path.parts
        for collection in fqcn.findall(path.read_text())
        if collection in installed  # not ansible.builtin (ansible-core's own), nor host.var.attr
    }
    assert {"community.docker", "openstack.cloud"} <= used  # the finder finds
    assert used == set(listed), f"used in ansible/: {sorted(used)}; listed: {sorted(listed)}"
    for name, spec in listed.items():
        assert installed.get(name), f"{name} is not installed (make ansible-tools)"
        for version in installed[name]:
            assert version in spec, f"{name} {version} is installed, requirements.yml says {spec}"


def test_ansible_logs_under_state_and_secrets_stay_out_of_git(tools):
    """log_path: .state/ansible.log (beside the live inventory, gitignored; the folder is kept
    by its tracked .gitkeep, since Ansible does not make it); clouds.yaml and secure.yaml are
    ignored wherever they lie in the checkout."""
    config = configparser.ConfigParser()
    config.read(ANSIBLE / "ansible.cfg")
    assert config["defaults"]["log_path"] == "../.state/ansible.log"
    log = REPO / ".state" / "ansible.log"
    before = log.stat().st_size if log.exists() else 0
    _run(
        [tools["ansible-playbook"], "-i", REPO / "inventory.ini", "--syntax-check",
         ANSIBLE / "teardown.yml"],
        env=_env(), cwd=REPO,
    )  # fmt: skip
    with log.open() as f:
        f.seek(before)
        assert f"playbook: {ANSIBLE / 'teardown.yml'}" in f.read()

    def ignored(*paths: str) -> set[str]:
        proc = _run(["git", "check-ignore", "--no-index", *paths], cwd=REPO, check=False)
        return set(proc.stdout.split())

    secrets = ["clouds.yaml", "secure.yaml", "ansible/clouds.yaml", "deploy/site/secure.yaml",
               "clouds.yml", "secure.yml"]  # fmt: skip
    state = [".state/ansible.log"] + [
        f".state/higgsbench-ci/{name}" for name in ("inventory.ini", "ansible.log", "known_hosts")
    ]
    assert ignored(*secrets, *state, ".state/.gitkeep", "ansible/site.yml") == {*secrets, *state}
    assert (REPO / ".state" / ".gitkeep").exists()


def test_cloud_defaults_from_os_cloud():
    """CLOUD= wins; else OS_CLOUD, as the openstack CLI reads it; else `openstack`."""
    base = {k: v for k, v in os.environ.items() if k not in ("OS_CLOUD", "CLOUD")}

    def cloud(*args: str, **env: str) -> str:
        (line,) = [x for x in _make_plan("cluster-status", *args, env={**base, **env})
                   if "cluster_status.yml" in x]  # fmt: skip
        return re.search(r"-e openstack_cloud=(\S*)", line).group(1)

    assert cloud() == "openstack"
    assert cloud(OS_CLOUD="fromenv") == "fromenv"
    assert cloud("CLOUD=mine", OS_CLOUD="fromenv") == "mine"
    assert cloud(CLOUD="mine", OS_CLOUD="fromenv") == "mine"


def test_cluster_tunnel_trusts_only_the_clusters_known_hosts(tools, tmp_path, sshd):
    """`make cluster-tunnel` against a real sshd on 127.0.0.1 standing in for the master, whose
    UI (an HTTP server) listens on its "private" address 127.0.0.2: the master's login, port,
    key and address come from the inventory through Ansible, the known-hosts file is the one
    Ansible trusts (here moved by ANSIBLE_ARGS), checked strictly: no key recorded, refused
    with what to do; recorded, the UI answers on 127.0.0.1 here; the key changed, refused."""
    line = " ".join(_make_plan("cluster-tunnel"))
    assert 'ssh -N -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$known_hosts"' in line
    assert '-L 127.0.0.1:8080:"$address":8080 -L 127.0.0.1:4040:"$address":4040' in line
    assert '-L 127.0.0.1:18080:"$address":18080' in line and "higgsbench_known_hosts_file" in line

    keys = {}
    for k in ("a", "b"):
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", k, "-f", tmp_path / k])
        keys[k] = tmp_path / k
    (tmp_path / "ui").mkdir()
    (tmp_path / "ui" / "marker").write_text("the master's UI\n")
    ui = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.2", "0", "-d", tmp_path / "ui"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        port = int(re.search(r"port (\d+)", ui.stdout.readline()).group(1))
        inventory = tmp_path / "hosts.ini"
        inventory.write_text(
            "[master]\n"
            f"master ansible_host=127.0.0.1 ansible_port={sshd.port} private_ip=127.0.0.2\n"
            f"[master:vars]\nansible_user={getpass.getuser()}\n"
            f"ansible_ssh_private_key_file={tmp_path / 'id_ed25519'}\n"
        )
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text("")
        make = [
            "make", "-s", "-C", REPO, "-o", ".venv/bin/../.ansible-tools", "cluster-tunnel",
            f"INVENTORY={inventory}", f"TUNNEL_PORTS={port}",
            f"ANSIBLE_ARGS=-e higgsbench_known_hosts_file={known_hosts}",
        ]  # fmt: skip

        def tunnel(timeout=30):
            with subprocess.Popen(make, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, start_new_session=True) as proc:  # fmt: skip
                try:
                    out, err = proc.communicate(timeout=timeout)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGTERM)
                    out, err = proc.communicate()
                return proc.returncode, out + err

        a = sshd.start(keys["a"])
        rc, out = tunnel()
        assert rc == 2 and f"no host keys in {known_hosts}: make cluster-known-hosts first" in out

        record_known_hosts(tools, inventory, known_hosts)
        assert known_hosts.read_text().splitlines() == [f"{sshd.name} {a}"]
        with subprocess.Popen(make, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True) as proc:  # fmt: skip
            try:
                deadline, page = time.monotonic() + 60, None
                while page is None and proc.poll() is None and time.monotonic() < deadline:
                    with (
                        contextlib.suppress(OSError),
                        socket.create_connection(("127.0.0.1", port), timeout=5) as s,
                    ):
                        s.sendall(b"GET /marker HTTP/1.0\r\n\r\n")
                        page = b"".join(iter(lambda s=s: s.recv(4096), b"")).decode()
                    time.sleep(0.3)
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
            out = proc.communicate()[0]
        assert page and "the master's UI" in page, out
        assert f"tunnel to {getpass.getuser()}@127.0.0.1: http://127.0.0.1:{port}" in out

        sshd.start(keys["b"])  # the "master" comes back with another key
        rc, out = tunnel()
        assert rc != 0 and "REMOTE HOST IDENTIFICATION HAS CHANGED" in out, out
        assert "Host key verification failed" in out
        assert known_hosts.read_text().splitlines() == [f"{sshd.name} {a}"]  # not replaced
    finally:
        ui.terminate()
        ui.wait(timeout=10)


def test_the_hop_through_the_bastion_is_one_setting(tools, tmp_path):
    """higgsbench_ssh_proxy is the ProxyCommand of ansible_ssh_args (and what make
    cluster-tunnel hops with): by default ssh -W through higgsbench_bastion, with the host-key
    checks, for every host but the bastion; set, it is used as it is."""
    path = _render_ssh_inventory(
        tools, tmp_path, "-e", "ssh_hosts=a@192.0.2.1,a@192.0.2.2", "-e", "ssh_bastion=a@192.0.2.1"
    )

    def proxies(*extra: str) -> dict[str, str | None]:
        proc = _run(
            [tools["ansible"], "all", "-i", path, "-m", "ansible.builtin.debug",
             "-a", "var=ansible_ssh_args", *extra],
            env=_env(ANSIBLE_CALLBACK_RESULT_FORMAT="json"), cwd=REPO,
        )  # fmt: skip
        decoder, out = json.JSONDecoder(), {}
        for m in re.finditer(r"^(\S+) \| SUCCESS => ", proc.stdout, re.M):
            args = decoder.raw_decode(proc.stdout, m.end())[0]["ansible_ssh_args"]
            out[m.group(1)] = _options(shlex.split(args)).get("ProxyCommand")
        return out

    default = proxies()
    assert default["higgsbench-master"] is None
    hop = shlex.split(default["higgsbench-worker-1"])
    assert hop[:4] == ["ssh", "-W", "%h:%p", "-q"] and hop[-1] == "a@192.0.2.1"
    assert _options(hop)["StrictHostKeyChecking"] == "yes"
    hop = "ssh -W %h:%p jump@203.0.113.5"
    assert proxies("-e", json.dumps({"higgsbench_ssh_proxy": hop})) == {
        "higgsbench-master": hop,
        "higgsbench-worker-1": hop,
    }


def _site_tasks(tools, *tags: str) -> dict[str, list[str]]:
    """{play name: its task names} of site.yml as `ansible-playbook --list-tasks` sees it with
    the given tag options."""
    proc = _run(
        [tools["ansible-playbook"], "-i", REPO / "inventory.ini", "--list-tasks", *tags,
         ANSIBLE / "site.yml"],
        env=_env(), cwd=REPO,
    )  # fmt: skip
    plays: dict[str, list[str]] = {}
    play = ""
    for line in proc.stdout.splitlines():
        if m := re.match(r"\s*play #\d+ \(([^)]*)\): (.*?)\s+TAGS:", line):
            play = m.group(2)
            plays[play] = []
        elif m := re.match(r"\s{6}(\S.*?)\s+TAGS: \[(.*)\]$", line):
            plays[play].append(m.group(1))
    return {name: tasks for name, tasks in plays.items() if tasks}


def test_site_tags_pick_parts_of_the_configuration(tools):
    """`make cluster-configure TAGS=gpu` / `SKIP_TAGS=images`: each tag names a part; the node's
    wait and its facts run whatever the tags."""
    everything = _site_tasks(tools)
    base = _site_tasks(tools, "--tags", "common,docker")
    assert list(base) == ["Every node | base system and Docker"], list(base)
    roles = {t.split(" : ")[0] for t in base["Every node | base system and Docker"] if " : " in t}
    assert roles == {"common", "docker"}, roles
    assert "Wait until the node answers (fresh VMs take a minute)" in base[next(iter(base))]
    gpu = _site_tasks(tools, "--tags", "gpu")
    gpu_play = "GPU node | driver, container toolkit, the GPU image"
    assert set(gpu) == {"Every node | base system and Docker", gpu_play}
    assert any(t.startswith("gpu_node : ") for t in gpu[gpu_play])
    no_images = _site_tasks(tools, "--skip-tags", "images")
    assert "Spark nodes | the Spark image" not in no_images
    assert not any(t.startswith("images : ") for ts in no_images.values() for t in ts)
    assert set(everything) - set(no_images) == {"Spark nodes | the Spark image"}
    spark = _site_tasks(tools, "--tags", "spark")
    assert {"Spark master and history server", "Spark workers"} <= set(spark)
    assert not any(t.startswith(("common : ", "docker : ")) for ts in spark.values() for t in ts)


def test_a_wait_says_how_long_it_has_waited_not_retrying(tools, tmp_path):
    """A task that polls (until/retries/delay, as a server booting or a benchmark running)
    prints the time waited and its limit, at most one line every 30 s, through the project's
    stdout callback (callback_plugins/higgsbench.py): not a "FAILED - RETRYING … (N retries
    left)" line per poll."""
    counter = tmp_path / "polls"
    playbook = tmp_path / "wait.yml"
    playbook.write_text(
        yaml.safe_dump(
            [{
                "hosts": "localhost", "gather_facts": False,
                "tasks": [{
                    "name": "Wait for the fourth poll",
                    "ansible.builtin.shell": f"n=$(cat {counter} 2>/dev/null || echo 0);"
                    f" echo $((n + 1)) > {counter}; test $n -ge 3",
                    "register": "polled", "until": "polled.rc == 0",
                    "retries": 20, "delay": 1, "changed_when": False,
                }],
            }]
        )
    )  # fmt: skip
    proc = _run(
        [tools["ansible-playbook"], "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={sys.executable}", playbook],
        env=_env(ANSIBLE_LOG_PATH=str(tmp_path / "ansible.log")), cwd=tmp_path,
    )  # fmt: skip
    assert counter.read_text().strip() == "4"  # three polls failed, the fourth passed
    assert "RETRYING" not in proc.stdout and "retries left" not in proc.stdout, proc.stdout
    # one line for the three failed polls, 1 s apart: the wait started, with its limit
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("waiting")]
    assert re.fullmatch(
        r"waiting \[localhost\]: Wait for the fourth poll … \d+ s of at most 20 s \(poll 1 of 21\)",
        line,
    ), proc.stdout


def test_an_engine_the_node_has_is_kept_not_replaced_by_docker_io(tools, tmp_path):
    """roles/docker/tasks/engine.yml with stand-ins for dpkg-query and dockerd: a node with
    Docker's own docker-ce (or moby-engine, or a dockerd outside apt) keeps it, and the role
    installs nothing (apt would remove docker-ce to install docker.io); a node with docker.io or
    without any engine gets docker_packages."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # dpkg-query --show --showformat=… NAMES: the installed ones of FAKE_PACKAGES ("name status")
    (bin_dir / "dpkg-query").write_text(
        "#!/bin/sh\n"
        'status=0\nfor want in "$@"; do case "$want" in -*) continue;; esac\n'
        '  line=$(printf "%s\\n" "$FAKE_PACKAGES" | grep "^$want ")\n'
        '  if [ -n "$line" ]; then printf "%s\\n" "$line"; else\n'
        '    echo "dpkg-query: no packages found matching $want" >&2; status=1; fi\n'
        'done\nexit $status\n'
    )  # fmt: skip
    (bin_dir / "dpkg-query").chmod(0o755)
    (tmp_path / "own-bin").mkdir()
    (tmp_path / "own-bin" / "dockerd").write_text("#!/bin/sh\n")  # installed by hand
    (tmp_path / "own-bin" / "dockerd").chmod(0o755)
    bare = "/usr/bin:/bin"  # this machine's own dockerd is in /usr/sbin or /usr/bin: not seen
    bare = ":".join(p for p in bare.split(":") if not os.path.exists(f"{p}/dockerd"))

    def node(packages: str = "", path: str = bare) -> dict:
        env = {"PATH": f"{bin_dir}:{path}", "FAKE_PACKAGES": packages}
        return {"fake_env": env}

    hosts = {
        "docker-ce": node("docker-ce ii \ndocker.io un "),
        "moby": node("moby-engine ii "),
        "by-hand": node(path=f"{tmp_path / 'own-bin'}:{bare}"),
        "docker-io": node("docker.io ii "),
        "removed-docker-ce": node("docker-ce rc "),  # removed, its configuration left
        "none": node(),
    }
    playbook = tmp_path / "engine.yml"
    playbook.write_text(
        yaml.safe_dump(
            [_role_play(
                "docker", "engine.yml",
                {"name": "Show", "ansible.builtin.debug": {"msg": "{{ docker_existing_engine }}"}},
                environment="{{ fake_env }}",
            )]
        )
    )  # fmt: skip
    proc = _run(
        [tools["ansible-playbook"], "-i", _local_hosts(tmp_path / "hosts.ini", hosts), playbook],
        env=_env(ANSIBLE_CALLBACK_RESULT_FORMAT="json"), cwd=REPO, timeout=300,
    )  # fmt: skip
    found = {h: m for h, m in _results(proc.stdout) if isinstance(m, list)}
    assert found == {
        "docker-ce": ["docker-ce"],
        "moby": ["moby-engine"],
        "by-hand": [f"{tmp_path / 'own-bin' / 'dockerd'} (no package)"],
        "docker-io": [],
        "removed-docker-ce": [],
        "none": [],
    }, proc.stdout[-4000:]
    said = {h: m for h, m in _results(proc.stdout) if str(m).startswith("the engine")}
    assert said["docker-ce"] == (
        "the engine the node has: docker-ce (kept; docker_packages not installed)"
    )
    # main.yml installs docker_packages only where engine.yml found none
    tasks = yaml.safe_load((ANSIBLE / "roles" / "docker" / "tasks" / "main.yml").read_text())
    assert tasks[0] == {"name": "The engine the node has already, if any",
                        "ansible.builtin.import_tasks": "engine.yml"}  # fmt: skip
    install = next(t for t in tasks if "ansible.builtin.apt" in t)
    assert install["when"] == "docker_existing_engine | length == 0"


def test_machines_of_your_own_are_not_rebooted_unasked(tools, tmp_path):
    """A GPU driver just installed loads at the next boot: make lets site.yml reboot the servers
    provision.yml made, and a machine of yours (PROVIDER=ssh) only with GPU_REBOOT=1; where it
    may not, roles/gpu_node/tasks/reboot.yml stops the run, saying what to do."""

    def site(*args: str) -> str:
        (line,) = [x for x in _make_plan("cluster-configure", *args) if "site.yml" in x]
        return line

    assert "gpu_node_reboot" not in site()  # OpenStack: the role's default, true
    assert "-e gpu_node_reboot=false" in site("GPU_REBOOT=0")
    assert "-e gpu_node_reboot=false" in site("PROVIDER=ssh")
    assert "-e gpu_node_reboot=true" in site("PROVIDER=ssh", "GPU_REBOOT=1")
    (up,) = [
        x for x in _make_plan("cluster-up", "PROVIDER=ssh", "INVENTORY=mine.ini") if "site.yml" in x
    ]
    assert "-e gpu_node_reboot=false" in up
    # the gate itself, on local "nodes" (the reboot module refuses a local connection, so a
    # mutant that reboots anyway fails instead of rebooting this machine)
    # what main.yml registered: the apt install and the ubuntu-drivers one (one of them skipped)
    skipped, done, same = {"skipped": True, "changed": False}, {"changed": True}, {"changed": False}
    cases = {
        "new-driver": {"apt": done, "ubuntu": skipped},
        "new-by-ubuntu-drivers": {"apt": skipped, "ubuntu": done},
        "nothing-new": {"apt": skipped, "ubuntu": same},
    }
    hosts = {name: {} for name in cases}
    playbook = tmp_path / "reboot.yml"
    playbook.write_text(
        yaml.safe_dump(
            [_role_play("gpu_node", "reboot.yml", vars={
                "cases": cases,
                "gpu_node_driver_apt": "{{ cases[inventory_hostname].apt }}",
                "gpu_node_driver_ubuntu": "{{ cases[inventory_hostname].ubuntu }}",
            })]
        )
    )  # fmt: skip
    proc = _run(
        [tools["ansible-playbook"], "-i", _local_hosts(tmp_path / "hosts.ini", hosts), playbook,
         "-e", "gpu_node_reboot=false", "-e", "gpu_node_driver_branch=580-server-open"],
        env=_env(ANSIBLE_CALLBACK_RESULT_FORMAT="json"), cwd=REPO, check=False, timeout=300,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    failed = _failures(out)
    assert set(failed) == {"new-driver", "new-by-ubuntu-drivers"}, out[-4000:]
    assert failed["new-driver"] == (
        "new-driver: NVIDIA driver 580-server-open is installed and loads at the next boot, and"
        " this run reboots no machine of yours (gpu_node_reboot=false). Reboot it when that suits"
        " whatever else it runs, then run `make cluster-up` again; or let the run reboot it:"
        " GPU_REBOOT=1."
    )
    assert re.search(r"nothing-new +: ok=2 .* failed=0 .* skipped=1 ", out), out[-2000:]


def test_a_node_whose_clock_is_off_is_named_and_held_packages_are_listed(tools, tmp_path):
    """roles/common/tasks/clock.yml on local "nodes" whose `date` runs ahead or behind: within
    common_clock_max_skew passes, beyond it stops naming the node and the offset; and
    tasks/upgrades.yml writes the patterns unattended-upgrades leaves alone."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real_date = shutil.which("date")
    (bin_dir / "date").write_text(
        f'#!/bin/sh\nexec {real_date} -d "@$(( $({real_date} +%s) + $FAKE_OFFSET ))" "$@"\n'
    )
    (bin_dir / "date").chmod(0o755)
    offsets = {"in-time": 0, "ten-ahead": 10, "hour-behind": -3600, "two-min-ahead": 120}
    hosts = {
        name: {"fake_env": {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_OFFSET": str(s)}}
        for name, s in offsets.items()
    }
    holds = tmp_path / "holds.conf"
    playbook = tmp_path / "common.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                _role_play("common", "clock.yml", environment="{{ fake_env }}"),
                _role_play("common", "upgrades.yml", hosts="in-time"),
            ]
        )
    )  # fmt: skip
    proc = _run(
        [tools["ansible-playbook"], "-i", _local_hosts(tmp_path / "hosts.ini", hosts), playbook,
         "-e", f"common_upgrade_holds_file={holds}", "-e", "ansible_become=false"],
        env=_env(ANSIBLE_CALLBACK_RESULT_FORMAT="json"), cwd=REPO, check=False, timeout=300,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    failed = _failures(out)
    assert set(failed) == {"hour-behind", "two-min-ahead"}, out[-4000:]
    # the stand-in's clock drops the fraction of a second, and the round trip adds to it
    assert re.match(r"hour-behind's clock is -360[01] s off this machine's", failed["hour-behind"])
    assert (
        "(more than common_clock_max_skew, 30 s): turn on time synchronisation there"
        in (failed["two-min-ahead"])
    )
    assert re.search(r"two-min-ahead's clock is \+1[12]\d s off", failed["two-min-ahead"])
    listed = re.findall(r'^\s+"(.+)";$', holds.read_text(), re.M)
    assert listed == ["docker", "containerd", "runc", "nvidia-", "libnvidia-"]
    assert "Unattended-Upgrade::Package-Blacklist {" in holds.read_text()
