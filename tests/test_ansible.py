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
  4. `remote.py bench` (what `make bench-cluster NODES=2` runs) over SSH: the genuine sample
     uploaded and prepared on every node, one epoch on both workers, results back
  5. `remote.py status` (make cluster-status)
Without Docker: ansible-lint (production profile) and --syntax-check on every playbook, the
inventory that provision.yml writes (from recorded OpenStack results) and the SSH options it
gives every host, provision's refusal of wide admin networks, teardown mirrors provision, every
tunable documented in ansible/README.md; and, against a real sshd on 127.0.0.1 whose host key
changes, that Ansible and remote.py refuse unknown and changed host keys.

Skipped when no Docker engine (or no Ansible) is found, unless HIGGSBENCH_REQUIRE_DOCKER=1
(CI), which turns the skip into a failure.
"""

from __future__ import annotations

import ast
import configparser
import contextlib
import getpass
import hashlib
import importlib.util
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
from tests.conftest import REPO, SAMPLE
from tests.helpers import DOCKER, docker, run_checked, venv_tool

pytestmark = pytest.mark.ansible

ANSIBLE = REPO / "ansible"
IMAGE = os.environ.get("HIGGSBENCH_IMAGE", f"higgsbench-spark:{__version__}")
REQUIRE = os.environ.get("HIGGSBENCH_REQUIRE_DOCKER") == "1"
NAME = "hbt-ansible"  # cluster name, Docker network, and container label of this test
STANDIN_LABEL = "higgsbench.test=ansible"
MASTER, WORKERS = "hbt-master", ["hbt-worker-1", "hbt-worker-2"]
SPARK_MASTER = "hbt-spark-master"
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
    return {
        **os.environ,
        "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PY_COLORS": "0",
        **extra,
    }


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
        self.inventory = root / "inventory.ini"  # Ansible's and remote.py's, as on a cloud
        self.vars = root / "vars.yml"
        self.home = root / "home"  # HOME of remote.py: nothing of the user's
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
        for d in (self.control, self.home, self.ssh_control):
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
        """One inventory for Ansible and remote.py, as provision.yml writes it: SSH as the
        image's non-root user, the workers through the master (the bastion), host keys from
        the cluster's file; the master's private_ip is the Spark master's name on the network."""
        inspect = json.loads(docker("inspect", MASTER, *WORKERS).stdout)
        self.ips = ip = {
            c["Name"].lstrip("/"): c["NetworkSettings"]["Networks"][NAME]["IPAddress"]
            for c in inspect
        }
        lines = ["[master]", f"{MASTER} ansible_host={ip[MASTER]} private_ip={SPARK_MASTER} "
                 f"higgsbench_data_dir={self.nodes[MASTER]} "
                 f"spark_master_container_name={SPARK_MASTER}", "", "[workers]"]  # fmt: skip
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

    def remote(self, *args, timeout=900, check=True) -> subprocess.CompletedProcess:
        return _run(
            [
                sys.executable, ANSIBLE / "remote.py", "-i", self.inventory,
                "--known-hosts", self.known_hosts, "--driver-network", NAME,
                "--spark-image", IMAGE, *args,
            ],
            timeout=timeout, check=check, env={**os.environ, "HOME": str(self.home)},
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
    containers = ["hbt-spark-master", "hbt-spark-worker-1", "hbt-spark-worker-2"]
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
    # that user's, and the user may run containers (docker group) for remote.py
    for host, path in standins.nodes.items():
        owner = standins.on(host, "stat", "-c", "%U", path / "incoming").stdout.strip()
        assert owner == SSH_USER, host
        groups = standins.on(host, "id", "-nG", SSH_USER).stdout.split()
        assert "docker" in groups, (host, groups)


def test_2_one_epoch_on_the_genuine_sample_with_remote_py(standins):
    """`make bench-cluster` does this: remote.py over SSH uploads the data to every node,
    prepares it there, checks the copies are identical, runs the bench, copies results back."""
    if not SAMPLE.exists():
        pytest.skip(f"genuine HIGGS rows not found at {SAMPLE}")
    runs = standins.root / "runs"
    proc = standins.remote(
        "bench", "--nodes", "2", "--optimizers", "adam", "--epochs", "1", "--batch-size", "512",
        "--data", SAMPLE, "--runs", runs, "--id", "sample",
    )  # fmt: skip
    assert "prepared higgs-" in proc.stdout
    out = runs / "sample"
    bench = json.loads((out / "bench.json").read_text())
    assert [(r["engine"], r["nodes"]) for r in bench["rows"]] == [("torch", 1), ("spark", 2)]
    stored = json.loads((out / "spark-n2-adam" / "result.json").read_text())
    assert stored["engine"] == "spark" and stored["nodes"] == 2 and stored["epochs"] == 1
    assert stored["master"] == f"spark://{SPARK_MASTER}:7077"
    assert [r["rank"] for r in stored["ranks"]] == [0, 1]
    assert len({r["host"] for r in stored["ranks"]}) == 2, "ranks must run on two workers"
    assert all(len(r["epoch_seconds"]) == 1 for r in stored["ranks"])
    assert stored["train_rows"] == 8788 and stored["generated_data"] is False
    assert 0.5 < stored["test_auc"] <= 1.0
    record = json.loads((out / "cluster.json").read_text())
    assert record["nodes"] == [2] and re.fullmatch(r"[0-9a-f]{64}", record["data_sha256"])
    # each node prepared its own copy (ranks read their shard from local disk)
    for host, path in standins.nodes.items():
        assert (path / "shared" / "data" / record["data"] / "train.parquet").exists(), host


def test_3_second_run_changes_nothing(standins):
    """site.yml again, right after the first (before any bench touched the nodes)."""
    text = recap_text(standins.second.stdout)
    hosts = recap(standins.second.stdout)
    assert set(hosts) == {MASTER, *WORKERS, "localhost"}
    for host, counts in hosts.items():
        assert counts["changed"] == 0, f"{host} changed on the second run:\n{text}"
        assert counts["failed"] == 0 and counts["unreachable"] == 0, text


def test_4_remote_status(standins):
    proc = standins.remote("status")
    assert "cluster OK" in proc.stdout
    assert re.search(r"ALIVE: 2 workers ALIVE, 2 cores", proc.stdout), proc.stdout


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
        "provision.yml", "site.yml", "teardown.yml", "known_hosts.yml", "ssh_inventory.yml"
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
    extra.write_text(json.dumps({"openstack_inventory_file": str(out), **overrides}))
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


def _ssh_args(tools, path: Path) -> dict[str, list[str]]:
    """The ssh options Ansible would use for each host of an inventory (group_vars/all.yml's
    ansible_ssh_args, rendered per host; ad-hoc `ansible` reads them through ansible.cfg)."""
    proc = _run(
        [tools["ansible"], "all", "-i", path, "-m", "ansible.builtin.debug", "-a",
         "var=ansible_ssh_args", "-o"],
        env=_env(), cwd=REPO,
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


def test_provision_writes_the_inventory_the_roles_and_remote_py_read(tools, tmp_path):
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
    # master directly, everything else through it
    known_hosts = str(REPO / ".state" / "openstack" / "known_hosts")
    trust = {"StrictHostKeyChecking": "yes", "UserKnownHostsFile": known_hosts}
    ssh_args = _ssh_args(tools, path)
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
    # remote.py trusts the same file by default
    spec = importlib.util.spec_from_file_location("remote", ANSIBLE / "remote.py")
    remote = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(remote)
    assert str(remote.KNOWN_HOSTS) == known_hosts
    # a plain INI file, readable without Ansible too
    parser = configparser.ConfigParser(allow_no_value=True, delimiters=(" ",))
    parser.read(path)
    assert {"master", "workers", "gpu"} <= set(parser.sections())

    # remote.py reads the same hosts
    hosts = json.loads(
        _run([sys.executable, ANSIBLE / "remote.py", "-i", path, "hosts"]).stdout
    )  # fmt: skip
    assert [h["name"] for h in hosts["workers"]] == inv["workers"]["hosts"]
    assert hosts["master"][0]["private_ip"] == "10.42.0.10"
    assert all(h["higgsbench_bastion"] == "ubuntu@203.0.113.10" for h in hosts["workers"])

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
         "-e", f"ssh_inventory_file={out}", *extra],
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
    # remote.py reads the same hosts
    hosts = json.loads(_run([sys.executable, ANSIBLE / "remote.py", "-i", path, "hosts"]).stdout)
    assert [h["ansible_host"] for h in hosts["workers"]] == ["192.0.2.6", "192.0.2.7"]


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
        proc = _run(["make", "-s", "-n", "-C", REPO, "cluster-up", "PROVIDER=ssh", *args])
        lines = proc.stdout.replace("\\\n", " ").splitlines()  # join continued lines
        return [" ".join(line.split()) for line in lines if "ansible-playbook" in line]

    live = str(REPO / ".state" / "inventory.ini")
    steps = plan("HOSTS=debian@192.0.2.5,debian@192.0.2.6", "GPU=u@192.0.2.9", "BASTION=b@h")
    assert [line.split()[-1].rsplit("/", 1)[-1] for line in steps] == [
        "ssh_inventory.yml", "known_hosts.yml", "site.yml"
    ]  # fmt: skip
    assert "-e ssh_hosts=debian@192.0.2.5,debian@192.0.2.6 -e ssh_gpu_host=u@192.0.2.9" in steps[0]
    assert f"-e ssh_bastion=b@h -e ssh_inventory_file={live}" in steps[0]
    assert all("-i .state/inventory.ini" in line for line in steps)
    mine = plan("INVENTORY=mine.ini")
    assert len(mine) == 2 and all("-i mine.ini" in line for line in mine)
    assert not any("provision.yml" in line for line in steps + mine)


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
    dockerfile = (REPO / "docker" / "gpu" / "Dockerfile").read_text()
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
    """Ansible (the project's ansible.cfg and group_vars) and remote.py trust only the cluster's
    known-hosts file: an unknown host and a host whose key changed are refused, naming it and
    saying what to do; known_hosts.yml adds unknown hosts only, never replaces a key."""
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

    def remote() -> str:
        proc = _run(
            [sys.executable, ANSIBLE / "remote.py", "-i", inventory, "--known-hosts",
             known_hosts, "status"],
            check=False, timeout=120, env={**os.environ, "HOME": str(tmp_path)},
        )  # fmt: skip
        return proc.stdout + proc.stderr

    a = sshd.start(keys["a"])
    # 1. unknown: nothing in the file yet
    proc = ping()
    assert proc.returncode != 0 and "UNREACHABLE" in proc.stdout, proc.stdout
    assert f"host key is known for {sshd.name}" in proc.stdout, proc.stdout
    out = remote()
    assert f"host key of {sshd.name} is unknown" in out and "make cluster-known-hosts" in out, out

    # 2. recorded by known_hosts.yml (the file stays private): both get in
    record_known_hosts(tools, inventory, known_hosts)
    assert known_hosts.read_text().splitlines() == [f"{sshd.name} {a}"]
    assert known_hosts.stat().st_mode & 0o777 == 0o600
    proc = ping()
    # ansible.cfg prints results as YAML (callback_result_format); JSON would say "ping": "pong"
    assert proc.returncode == 0 and re.search(r'"?ping"?: "?pong', proc.stdout), (
        proc.stdout + proc.stderr
    )
    out = remote()
    assert re.search(r"^master\s+node \(127\.0\.0\.1\): up", out, re.M), out

    # 3. the host comes back with another key: both refuse, naming it and saying what to do
    b = sshd.start(keys["b"])
    proc = ping()
    assert proc.returncode != 0 and "UNREACHABLE" in proc.stdout, proc.stdout
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in proc.stdout, proc.stdout
    assert sshd.name in proc.stdout and "Host key verification failed" in proc.stdout
    out = remote()
    assert f"host key of {sshd.name} changed" in out, out
    assert f"ssh-keygen -R '{sshd.name}' -f {known_hosts}" in out, out
    assert "make cluster-known-hosts" in out

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


def test_remote_py_has_help_and_never_imports_the_app():
    proc = _run([sys.executable, ANSIBLE / "remote.py", "--help"])
    assert "bench" in proc.stdout and "status" in proc.stdout
    for sub in ("bench", "gpu", "status", "hosts"):
        _run([sys.executable, ANSIBLE / "remote.py", sub, "--help"])
    tree = ast.parse((ANSIBLE / "remote.py").read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert "higgsbench" not in imported
