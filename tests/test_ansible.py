"""Ansible for real: ansible/site.yml against containers standing in for the cluster's VMs.

The OpenStack VMs cannot be had here, so three Debian containers play master and two workers
(tests/ansible/Dockerfile.standin: python3, sudo, sshd, nothing of the project). The real roles
run against them: apt installs Docker, the secret is generated and copied, the Spark master and
workers start as containers. Privileged containers are refused, so the stand-ins cannot run
dockerd: they mount the host's Docker socket (docker_manage_service=false), every container
lands on the host's engine, and so the test gives each its own name, puts them on one Docker
network (instead of host networking), and gives every stand-in a data directory whose path is
the same on the host and in the stand-in (the engine resolves bind mounts on the host).

In order, as a user would meet them:
  1. build the stand-in image; start the network and the stand-ins (always removed at the end)
  2. site.yml: a cluster whose master counts both workers ALIVE, non-root containers, the
     secret 0600 on the control host and 0400 on the nodes, no REST submission server
  3. `remote.py bench` (what `make bench-cluster NODES=2` runs) over SSH: the genuine sample
     uploaded and prepared on every node, one epoch on both workers, results back
  4. site.yml again: nothing changes (changed=0 on every host; the recap is printed)
  5. `remote.py status` (make cluster-status)
Without Docker: ansible-lint (production profile) and --syntax-check on every playbook, the
inventory that provision.yml writes (from recorded OpenStack results), teardown mirrors
provision, every tunable documented in ansible/README.md.

Skipped when no Docker engine (or no Ansible) is found, unless HIGGSBENCH_REQUIRE_DOCKER=1
(CI), which turns the skip into a failure.
"""

from __future__ import annotations

import ast
import configparser
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from higgsbench import __version__
from tests.conftest import REPO, SAMPLE
from tests.helpers import venv_tool

pytestmark = pytest.mark.ansible

ANSIBLE = REPO / "ansible"
DOCKER = os.environ.get("DOCKER", "docker")
IMAGE = os.environ.get("HIGGSBENCH_IMAGE", f"higgsbench-spark:{__version__}")
REQUIRE = os.environ.get("HIGGSBENCH_REQUIRE_DOCKER") == "1"
NAME = "hbt-ansible"  # cluster name, Docker network, and container label of this test
STANDIN_LABEL = "higgsbench.test=ansible"
MASTER, WORKERS = "hbt-master", ["hbt-worker-1", "hbt-worker-2"]
SPARK_MASTER = "hbt-spark-master"


def _skip_or_fail(reason: str):
    if REQUIRE:
        pytest.fail(f"HIGGSBENCH_REQUIRE_DOCKER=1 but {reason}")
    pytest.skip(f"{reason} (set HIGGSBENCH_REQUIRE_DOCKER=1 to fail instead)")


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    found = {n: venv_tool(n) for n in ("ansible-playbook", "ansible-inventory", "ansible-lint")}
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


def _run(cmd, *, timeout=600, check=True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n"
            f"{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def docker(*args, **kw) -> subprocess.CompletedProcess:
    return _run([DOCKER, *args], **kw)


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
        self.inventory = root / "inventory.ini"
        self.vars = root / "vars.yml"
        self.remote_inventory = root / "remote.ini"
        self.home = root / "home"  # HOME of remote.py: a known_hosts of its own
        self.key = root / "id_ed25519"
        self.runs: list[str] = []

    def build_and_start(self) -> None:
        dockerfile = REPO / "tests" / "ansible" / "Dockerfile.standin"
        tag = "hbt-standin:" + hashlib.sha256(dockerfile.read_bytes()).hexdigest()[:12]
        if docker("image", "inspect", tag, check=False).returncode:
            docker(
                "build", "-q", "-t", tag, "-f", dockerfile, dockerfile.parent,
                timeout=900, env={**os.environ, "DOCKER_BUILDKIT": "0"},
            )  # fmt: skip
        self.control.mkdir(parents=True)
        self.home.mkdir()
        authorized = self.root / "authorized_keys"
        authorized.write_text(_ssh_key(self.key))
        authorized.chmod(0o644)
        docker("network", "create", "--label", STANDIN_LABEL, NAME)
        for host, path in self.nodes.items():
            path.mkdir(parents=True)
            docker(
                "run", "-d", "--name", host, "--hostname", host, "--network", NAME,
                "--label", STANDIN_LABEL,
                "-v", "/var/run/docker.sock:/var/run/docker.sock",
                "-v", f"{path}:{path}",
                "-v", f"{authorized}:/root/.ssh/authorized_keys:ro",
                tag,
            )  # fmt: skip
        self._write_inventories()

    def _write_inventories(self) -> None:
        def spark_host(host: str) -> str:
            return "hbt-spark-" + host.removeprefix("hbt-")

        lines = ["[master]", f"{MASTER} higgsbench_data_dir={self.nodes[MASTER]}"]
        lines[-1] += f" spark_master_container_name={SPARK_MASTER}"
        lines += ["", "[workers]"]
        for w in WORKERS:
            lines.append(
                f"{w} higgsbench_data_dir={self.nodes[w]} spark_worker_container_name="
                f"{spark_host(w)} spark_worker_cores=1 spark_worker_memory=2g"
            )
        lines += ["", "[gpu]", "", "[cluster:children]", "master", "workers", "gpu", ""]
        lines += ["[cluster:vars]", "ansible_connection=community.docker.docker", ""]
        self.inventory.write_text("\n".join(lines))
        self.vars.write_text(
            yaml.safe_dump(
                {
                    "higgsbench_cluster_name": NAME,
                    "higgsbench_version": __version__,
                    "higgsbench_spark_image": IMAGE,
                    "higgsbench_network_mode": NAME,
                    "higgsbench_master_address": SPARK_MASTER,
                    "higgsbench_state_dir": str(self.control),
                    "docker_manage_service": False,
                }
            )
        )
        # remote.py reaches the stand-ins over SSH at their addresses on the Docker network;
        # the master's private_ip is the Spark master's name on that network.
        inspect = json.loads(docker("inspect", MASTER, *WORKERS).stdout)
        ip = {
            c["Name"].lstrip("/"): c["NetworkSettings"]["Networks"][NAME]["IPAddress"]
            for c in inspect
        }
        rl = ["[master]", f"{MASTER} ansible_host={ip[MASTER]} private_ip={SPARK_MASTER} "
              f"higgsbench_data_dir={self.nodes[MASTER]}", "", "[workers]"]  # fmt: skip
        rl += [f"{w} ansible_host={ip[w]} higgsbench_data_dir={self.nodes[w]}" for w in WORKERS]
        rl += ["", "[cluster:children]", "master", "workers", "", "[cluster:vars]"]
        rl += ["ansible_user=root", f"ansible_ssh_private_key_file={self.key}"]
        # as on OpenStack, where only the master is public: the others through it (ProxyJump)
        rl += [f"higgsbench_bastion=root@{ip[MASTER]}", ""]
        self.remote_inventory.write_text("\n".join(rl))

    def site(self) -> subprocess.CompletedProcess:
        began = time.monotonic()
        proc = _run(
            [
                self.tools["ansible-playbook"],
                "-i", self.inventory, "-e", f"@{self.vars}", ANSIBLE / "site.yml",
            ],
            timeout=900, check=False, env=_env(), cwd=REPO,
        )  # fmt: skip
        proc.seconds = time.monotonic() - began
        self.runs.append(proc.stdout)
        if proc.returncode != 0:
            raise AssertionError(f"site.yml failed:\n{proc.stdout[-8000:]}\n{proc.stderr[-3000:]}")
        return proc

    def remote(self, *args, timeout=900, check=True) -> subprocess.CompletedProcess:
        return _run(
            [
                sys.executable, ANSIBLE / "remote.py", "-i", self.remote_inventory,
                "--driver-network", NAME, "--spark-image", IMAGE, *args,
            ],
            timeout=timeout, check=check, env={**os.environ, "HOME": str(self.home)},
        )  # fmt: skip

    def on(self, host: str, *cmd, check=True) -> subprocess.CompletedProcess:
        return docker("exec", host, *cmd, check=check)


@pytest.fixture(scope="module")
def standins(tmp_path_factory, tools):
    if not _docker_ok():
        _skip_or_fail("no Docker engine answers `docker info`")
    if docker("image", "inspect", IMAGE, check=False).returncode:
        subprocess.run(["make", "-C", str(REPO), "base-image", "images"], check=True, timeout=1800)
    _remove_everything()
    s = StandIns(tmp_path_factory.mktemp("ansible"), tools)
    try:
        s.build_and_start()
        s.first = s.site()
        print(f"\nsite.yml, first run ({s.first.seconds:.0f} s):\n{recap_text(s.first.stdout)}")
        yield s
    finally:
        _remove_everything()
        left = docker("ps", "-aq", "--filter", f"label=higgsbench.cluster={NAME}").stdout.split()
        left += docker("ps", "-aq", "--filter", f"label={STANDIN_LABEL}").stdout.split()
        assert left == [], f"containers left after the test: {left}"


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

    # the docker role merged its settings into daemon.json
    daemon = json.loads(standins.on(MASTER, "cat", "/etc/docker/daemon.json").stdout)
    assert daemon["log-opts"]["max-size"] == "50m"


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
    second = standins.site()
    text = recap_text(second.stdout)
    print(f"\nsite.yml, second run ({second.seconds:.0f} s):\n{text}")
    hosts = recap(second.stdout)
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
    assert {p.name for p in playbooks} == {"provision.yml", "site.yml", "teardown.yml"}
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
        assert w["ansible_ssh_common_args"] == "-o ProxyJump=ubuntu@203.0.113.10"
        assert w["ansible_user"] == "ubuntu"
    assert hv["higgsbench-gpu"]["ansible_ssh_common_args"] == "-o ProxyJump=ubuntu@203.0.113.10"
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
    # ProxyJump would not pass the key on to the jump host: ProxyCommand does
    assert "ProxyCommand=" in worker["ansible_ssh_common_args"]
    assert "-i ~/.ssh/hb ubuntu@203.0.113.10" in worker["ansible_ssh_common_args"]


def test_provision_and_teardown_load_their_modules_and_refuse_an_open_ssh(tools, tmp_path):
    """No cloud here: a clouds.yaml entry whose API is a closed port. The openstack.cloud
    modules must load with the pinned openstacksdk and fail only on the connection."""
    import socket

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

    out = play("provision.yml", "-e", "openstack_admin_cidr=0.0.0.0/0")
    assert "Set openstack_admin_cidr to the address you SSH from" in out
    assert "TASK [Key pair]" not in out, "provision.yml went on with SSH open to the world"

    out = play("provision.yml", "-e", "openstack_admin_cidr=198.51.100.7/32")
    assert "TASK [Key pair]" in out and "Unable to establish connection" in out, out[-3000:]
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
    # both read the resource names from one file
    for playbook in ("provision.yml", "teardown.yml"):
        assert yaml.safe_load((ANSIBLE / playbook).read_text())[0]["vars_files"] == [
            "vars/openstack.yml"
        ]


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
