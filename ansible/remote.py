#!/usr/bin/env python3
"""Run the benchmarks on the cluster of inventory.ini over SSH (Fabric); results into ./runs.

  remote.py hosts                     what the inventory says, as JSON (no SSH)
  remote.py status                    each node, its containers, the master's workers, the GPU
  remote.py bench --nodes 3           the Spark bench on the master against 3 workers
  remote.py bench --nodes 1,2,3,4,5   the sweep (make bench-sweep)
  remote.py gpu                       the optimizer sweep on the GPU node (make bench-gpu)

The nodes run everything inside the project's images (higgsbench-spark, higgsbench-gpu) that
ansible/site.yml put there; this script starts containers over SSH and copies files. It never
imports the app: infrastructure and app meet in the Makefile.

Data. Each Spark rank reads its own shard of the prepared data from its node's disk, so every
Spark node prepares its own copy with the same command (in parallel), and the copies are
checked identical (sha256 of the Parquet files) before the bench starts:
  --data synth   generated events (--events, --seed): same seed, same events (the default)
  --data uci     each node downloads HIGGS.csv.gz from UCI and prepares it (--rows)
  --data PATH    a local HIGGS.csv(.gz), uploaded to each node and prepared there (--rows)
A prepared copy is kept on the nodes (HIGGSBENCH_DATA_DIR/shared/data/<name>) and reused.

Hosts come from inventory.ini as provision.yml writes it: groups master, workers, gpu; per
host ansible_host, ansible_user, ansible_port, ansible_ssh_private_key_file, private_ip; hosts
other than the master are reached through higgsbench_bastion (the master) when it is set.

SSH trusts only the host keys in the cluster's known-hosts file (--known-hosts, the file
Ansible uses: known_hosts.yml writes it, `make cluster-up` runs that): a node whose key is
missing there or differs is refused, saying what to do.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as _dt
import hashlib
import json
import logging
import os
import re
import shlex
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
GROUP_VARS = HERE / "group_vars" / "all.yml"
# higgsbench_known_hosts_file of group_vars/all.yml, as it resolves for this checkout
KNOWN_HOSTS = REPO / ".state" / "openstack" / "known_hosts"
SECRET_IN_CONTAINER = "/secrets/spark_secret"
HARDENING = [
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges:true",
    "--pids-limit",
    "4096",
]


class RemoteError(Exception):
    """A failure to report in one line (no traceback)."""


# --- settings shared with the playbooks -------------------------------------------------------


def shared_settings(path: Path = GROUP_VARS) -> dict:
    """Literal values of group_vars/all.yml, with `{{ name }}` references to other literals
    resolved (e.g. the image names carry higgsbench_version). Templated values that need
    Ansible (facts, filters) are left out."""
    import yaml  # PyYAML comes with ansible-core

    raw = yaml.safe_load(path.read_text()) or {}
    ref = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
    out: dict = {}
    for key, value in raw.items():
        if isinstance(value, str) and "{{" in value:
            names = ref.findall(value)
            literal = [
                n
                for n in names
                if isinstance(raw.get(n), (str, int)) and "{{" not in str(raw.get(n))
            ]
            if ref.sub("", value).count("{") or len(literal) != len(names):
                continue
            value = ref.sub(lambda m: str(raw[m.group(1)]), value)
        out[key] = value
    return out


# --- inventory --------------------------------------------------------------------------------


class Inventory:
    """The subset of Ansible's INI inventory that provision.yml writes (and people write by
    hand): [group] host lines with key=value variables, [group:vars], [group:children]."""

    def __init__(self, path: Path):
        if not path.exists():
            raise RemoteError(f"{path}: no inventory (make cluster-up writes it)")
        self.path = path
        self.members: dict[str, list[str]] = {"all": []}
        self.children: dict[str, list[str]] = {}
        self.group_vars: dict[str, dict[str, str]] = {}
        self.host_vars: dict[str, dict[str, str]] = {}
        section, kind = "ungrouped", "hosts"
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            m = re.fullmatch(r"\[([^\]:]+)(?::(vars|children))?\]", line)
            if m:
                section, kind = m.group(1), m.group(2) or "hosts"
                self.members.setdefault(section, [])
                continue
            try:
                words = shlex.split(line, comments=True)
            except ValueError as exc:
                raise RemoteError(f"{path}:{lineno}: {exc}") from None
            if not words:
                continue
            if kind == "vars":
                key, _, value = line.partition("=")
                self.group_vars.setdefault(section, {})[key.strip()] = _unquote(value.strip())
            elif kind == "children":
                self.children.setdefault(section, []).append(words[0])
            else:
                name, pairs = words[0], words[1:]
                if name not in self.members[section]:
                    self.members[section].append(name)
                if name not in self.members["all"]:
                    self.members["all"].append(name)
                hv = self.host_vars.setdefault(name, {})
                for pair in pairs:
                    key, sep, value = pair.partition("=")
                    if not sep:
                        raise RemoteError(f"{path}:{lineno}: expected key=value, got {pair!r}")
                    hv[key] = value

    def group(self, name: str) -> list[str]:
        """Hosts of a group and of its child groups, in file order."""
        hosts = list(self.members.get(name, []))
        for child in self.children.get(name, []):
            hosts += [h for h in self.group(child) if h not in hosts]
        return hosts

    def _ancestors(self, group: str, seen=()) -> list[str]:
        parents = [p for p, kids in self.children.items() if group in kids and p not in seen]
        out: list[str] = []
        for p in parents:
            out += [*self._ancestors(p, (*seen, group)), p]
        return out

    def host(self, name: str) -> dict:
        """Every variable of a host: all, then parent groups, then its groups, then its own."""
        merged = dict(self.group_vars.get("all", {}))
        direct = [g for g, hosts in self.members.items() if name in hosts and g != "all"]
        for g in direct:
            for a in self._ancestors(g):
                merged.update(self.group_vars.get(a, {}))
        for g in direct:
            merged.update(self.group_vars.get(g, {}))
        merged.update(self.host_vars.get(name, {}))
        merged["name"] = name
        merged.setdefault("ansible_host", name)
        merged.setdefault("private_ip", merged["ansible_host"])
        return merged

    def as_dict(self) -> dict:
        return {g: [self.host(h) for h in self.group(g)] for g in ("master", "workers", "gpu")}


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


# --- SSH --------------------------------------------------------------------------------------


def _split_user_host(spec: str) -> tuple[str | None, str, int | None]:
    user, _, rest = spec.rpartition("@")
    host, _, port = rest.partition(":")
    return (user or None), host, (int(port) if port else None)


def connect(host: dict, known_hosts: Path):
    """A Fabric Connection to an inventory host, through the bastion (the master) if any,
    that trusts only the host keys in known_hosts (strictly: unknown or changed is refused)."""
    try:
        import paramiko
        from fabric import Connection
    except ImportError:
        raise RemoteError(
            "Fabric is not installed: pip install fabric (see ansible/README.md)"
        ) from None

    class UnknownHost(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client, hostname, key):
            raise RemoteError(
                f"host key of {hostname} is unknown: {known_hosts} has no {key.get_name()} key "
                "for it, refusing to connect. `make cluster-known-hosts` records the keys of "
                "nodes not yet known (`make cluster-up` does it for the nodes it makes)."
            )

    class Checked(Connection):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            try:
                self.client.load_host_keys(str(known_hosts))
            except OSError as exc:
                raise RemoteError(
                    f"{known_hosts}: cannot read the cluster's known hosts ({exc.strerror}): "
                    "make cluster-known-hosts writes it"
                ) from None
            self.client.set_missing_host_key_policy(UnknownHost())

        def open(self):
            try:
                return super().open()
            except paramiko.BadHostKeyException as exc:
                # as known_hosts names the host (and paramiko looked it up)
                name = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
                raise RemoteError(
                    f"host key of {name} changed: it offers a {exc.key.get_name()} key "
                    f"that is not the one in {known_hosts}, refusing to connect. If the node "
                    f"was re-created, remove its old key (ssh-keygen -R '{name}' -f "
                    f"{known_hosts}) and record the new one (make cluster-known-hosts); "
                    "otherwise someone may be in the way."
                ) from None

    key = host.get("ansible_ssh_private_key_file")
    connect_kwargs = {"key_filename": os.path.expanduser(key)} if key else {}
    gateway = None
    bastion = host.get("higgsbench_bastion")
    if bastion:
        b_user, b_host, b_port = _split_user_host(bastion)
        if b_host != host["ansible_host"]:
            gateway = Checked(
                b_host, user=b_user, port=b_port or 22, connect_kwargs=dict(connect_kwargs)
            )
    return Checked(
        host["ansible_host"],
        user=host.get("ansible_user"),
        port=int(host.get("ansible_port", 22)),
        connect_kwargs=connect_kwargs,
        gateway=gateway,
        connect_timeout=30,
    )


def run(c, cmd: str, *, hide: bool = True, check: bool = True, what: str = ""):
    """Run a shell command on a node; on failure raise RemoteError with its output's tail."""
    result = c.run(cmd, hide=hide, warn=True, pty=False, in_stream=False)
    if check and result.exited != 0:
        tail = (result.stderr or result.stdout or "").strip()[-1500:]
        raise RemoteError(f"{c.host}: {what or cmd[:120]} exited {result.exited}: {tail}")
    return result


def stream_to_file(c, cmd: str, fileobj) -> None:
    """Run a command whose stdout is binary (a tar archive) and write it to fileobj."""
    c.open()
    chan = c.client.get_transport().open_session()
    chan.exec_command(cmd)
    err = b""
    while True:
        data = chan.recv(1 << 20)
        if not data:
            break
        fileobj.write(data)
        while chan.recv_stderr_ready():
            err += chan.recv_stderr(1 << 16)
    status = chan.recv_exit_status()
    while chan.recv_stderr_ready():
        err += chan.recv_stderr(1 << 16)
    chan.close()
    if status != 0:
        raise RemoteError(
            f"{c.host}: {cmd[:120]} exited {status}: {err.decode(errors='replace')[-1500:]}"
        )


# --- the cluster ------------------------------------------------------------------------------


class Cluster:
    def __init__(self, args):
        settings = shared_settings()
        self.inventory = Inventory(Path(args.inventory))
        self.hosts = self.inventory.as_dict()
        self.docker = args.docker
        self.data_dir = args.data_dir
        self.cluster_name = settings.get("higgsbench_cluster_name", "higgsbench")
        self.spark_image = args.spark_image
        self.gpu_image = args.gpu_image
        self.master_port = int(settings.get("higgsbench_spark_master_port", 7077))
        self.ui_port = int(settings.get("higgsbench_spark_master_webui_port", 8080))
        self.network = args.driver_network
        self.known_hosts = Path(args.known_hosts).expanduser()

    def connect(self, host: dict):
        return connect(host, self.known_hosts)

    def data_dir_of(self, host: dict) -> str:
        """higgsbench_data_dir of one host: its inventory value, else the shared default."""
        return host.get("higgsbench_data_dir", self.data_dir)

    def master(self) -> dict:
        if len(self.hosts["master"]) != 1:
            raise RemoteError(f"{self.inventory.path}: the master group must hold one host")
        return self.hosts["master"][0]

    def master_address(self, args) -> str:
        return getattr(args, "master_address", None) or self.master()["private_ip"]

    def docker_run(
        self,
        host: dict,
        image: str,
        args: list[str],
        *,
        entrypoint: str | None = None,
        mounts: list[str] = (),
        env: dict | None = None,
        network: str | None = None,
        name: str | None = None,
        gpus: bool = False,
        readonly_shared: bool = False,
    ) -> str:
        # confined as the cluster's own containers are: no capabilities, no privilege gain, a
        # cap on processes and, but for GPU runs (the NVIDIA hook writes the linker cache into
        # the root as the container starts), a read-only root with a tmpfs for what is written
        cmd = [*shlex.split(self.docker), "run", "--rm", *HARDENING]
        if not gpus:
            cmd += ["--read-only", "--tmpfs", "/tmp:exec,mode=1777", "-e", "HOME=/tmp"]
        if name:
            cmd += ["--name", name, "--label", f"higgsbench.cluster={self.cluster_name}"]
        if network:
            cmd += ["--network", network]
        if gpus:
            cmd += ["--gpus", "all"]
        if entrypoint:
            cmd += ["--entrypoint", entrypoint]
        shared = f"{self.data_dir_of(host)}/shared"
        cmd += ["-v", f"{shared}:/shared" + (":ro" if readonly_shared else "")]
        for m in mounts:
            cmd += ["-v", m]
        for k, v in (env or {}).items():
            cmd += ["-e", f"{k}={v}"]
        return shlex.join([*cmd, image, *args])

    def in_image(self, host: dict, image: str, script: str, **kw) -> str:
        return self.docker_run(host, image, ["-c", script], entrypoint="sh", **kw)


def data_spec(args) -> tuple[str, dict]:
    """The prepared dataset's directory name and how to make it."""
    rows = ["--rows", str(args.rows)] if args.rows else []
    if args.data == "synth":
        return f"synth-{args.events}-seed{args.seed}", {"kind": "synth"}
    if args.data == "uci":
        return "higgs-uci" + (f"-{args.rows}" if args.rows else ""), {"kind": "uci", "rows": rows}
    path = Path(args.data).expanduser()
    if not path.is_file():
        raise RemoteError(f"--data {args.data}: not synth, uci or a file")
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    name = f"higgs-{digest.hexdigest()[:12]}" + (f"-{args.rows}" if args.rows else "")
    return name, {"kind": "file", "path": path, "rows": rows, "sha": digest.hexdigest()}


def prepare_on(cluster: Cluster, host: dict, image: str, name: str, spec: dict, args) -> str:
    """Make /shared/data/<name> on one node unless it is there; return its Parquet digest."""
    c = cluster.connect(host)
    try:
        out = f"/shared/data/{name}"
        present = (
            run(c, cluster.in_image(host, image, f"test -f {out}/stats.json"), check=False).exited
            == 0
        )
        if not present:
            if spec["kind"] == "synth":
                script = (
                    f"higgsbench data synth --events {args.events} --seed {args.seed} "
                    f"--jobs $(nproc) --no-progress --force --out {out}"
                )
                cmd = cluster.in_image(host, image, script)
            elif spec["kind"] == "uci":
                script = (
                    f"higgsbench data fetch --out /shared/data/HIGGS.csv.gz --no-progress && "
                    f"higgsbench data prepare /shared/data/HIGGS.csv.gz {shlex.join(spec['rows'])} "
                    f"--no-progress --force --out {out}"
                )
                cmd = cluster.in_image(host, image, script)
            else:
                remote = (
                    f"{cluster.data_dir_of(host)}/incoming/"
                    f"input-{spec['sha'][:12]}{''.join(spec['path'].suffixes)}"
                )
                c.put(str(spec["path"]), remote)
                run(c, f"chmod 0644 {shlex.quote(remote)}")
                script = (
                    f"higgsbench data prepare /input/{spec['path'].name} "
                    f"{shlex.join(spec['rows'])} --no-progress --force --out {out}"
                )
                cmd = cluster.in_image(
                    host, image, script, mounts=[f"{remote}:/input/{spec['path'].name}:ro"]
                )
            began = time.monotonic()
            run(c, cmd, what=f"preparing {name}")
            if spec["kind"] == "file":
                run(c, f"rm -f {shlex.quote(remote)}")
            print(f"  {host['name']}: prepared {name} in {time.monotonic() - began:.0f} s")
        else:
            print(f"  {host['name']}: {name} already prepared")
        digest = run(
            c,
            cluster.in_image(
                host,
                image,
                f"cd {out} && sha256sum train.parquet val.parquet test.parquet | sha256sum",
            ),
        ).stdout.split()[0]
        return digest
    finally:
        c.close()


def prepare_everywhere(cluster: Cluster, hosts: list[dict], image: str, args) -> tuple[str, str]:
    name, spec = data_spec(args)
    print(f"data: {name} on {', '.join(h['name'] for h in hosts)}")
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        futures = {
            h["name"]: pool.submit(prepare_on, cluster, h, image, name, spec, args) for h in hosts
        }
        digests = {n: f.result() for n, f in futures.items()}
    if len(set(digests.values())) != 1:
        raise RemoteError(f"the prepared copies of {name} differ between nodes: {digests}")
    return name, next(iter(digests.values()))


def fetch_run(cluster: Cluster, host: dict, c, image: str, run_id: str, runs: Path) -> Path:
    """Copy HIGGSBENCH_DATA_DIR/shared/runs/<run_id> from a node into runs/<run_id>."""
    cmd = cluster.docker_run(
        host,
        image,
        ["-C", "/shared/runs", "-czf", "-", run_id],
        entrypoint="tar",
        readonly_shared=True,
    )
    runs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile() as tmp:
        stream_to_file(c, cmd, tmp)
        tmp.seek(0)
        with tarfile.open(fileobj=tmp, mode="r:gz") as tar:
            tar.extractall(runs, filter="data")
    return runs / run_id


def record_sweep(
    out: Path, what: dict, *, image: str, data: tuple[str, str], began: float, stdout: str
) -> None:
    """`cluster.json` beside the fetched bench.json: what ran where (`what`), plus the image,
    the data and its sha256, when it started, how long it took, and the bench's RESULT line."""
    name, digest = data
    record = {
        **what,
        "image": image,
        "data": name,
        "data_sha256": digest,
        "started": _dt.datetime.fromtimestamp(began).isoformat(timespec="seconds"),
        "seconds": round(time.time() - began, 1),
        "result": result_line(stdout),
    }
    path = out / "cluster.json"
    partial = path.with_name(path.name + ".partial")  # renamed when complete
    partial.write_text(json.dumps(record, indent=2, default=str) + "\n")
    partial.replace(path)
    print(f"results: {out / 'bench.json'}")


def result_line(stdout: str) -> dict | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    return None


def parse_nodes(text: str) -> list[int]:
    """'3' → [3]; '1,2,4' → [1, 2, 4]; '1-5' → [1, 2, 3, 4, 5]."""
    out: list[int] = []
    for part in text.split(","):
        a, sep, b = part.strip().partition("-")
        try:
            out += list(range(int(a), int(b) + 1)) if sep else [int(a)]
        except ValueError:
            raise RemoteError(f"--nodes {text!r}: expected e.g. 3, 1,2,4 or 1-5") from None
    if not out or min(out) < 1:
        raise RemoteError(f"--nodes {text!r}: node counts start at 1")
    return sorted(set(out))


def stamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


# --- commands ---------------------------------------------------------------------------------


def cmd_hosts(args) -> int:
    print(json.dumps(Inventory(Path(args.inventory)).as_dict(), indent=2))
    return 0


def cmd_status(args) -> int:
    cluster = Cluster(args)
    problems: list[str] = []
    everyone = [(g, h) for g in ("master", "workers", "gpu") for h in cluster.hosts[g]]
    if not everyone:
        raise RemoteError(f"{args.inventory}: no hosts in master, workers or gpu")

    def look(group: str, host: dict) -> list[str]:
        c = cluster.connect(host)
        lines: list[str] = []
        try:
            up = run(c, "uptime -p 2>/dev/null || uptime", what="uptime").stdout.strip()
            lines.append(f"{group:8} {host['name']} ({host['ansible_host']}): {up}")
            fmt = "{{.Names}}\t{{.Status}}\t{{.Image}}"
            ps = run(
                c,
                f"{cluster.docker} ps -a --filter label=higgsbench.cluster --format '{fmt}'",
                what="docker ps",
            ).stdout.strip()
            lines += [f"           container {row}" for row in ps.splitlines()] or [
                "           no containers"
            ]
            if group == "master":
                url = f"http://{cluster.master_address(args)}:{cluster.ui_port}/json/"
                state = json.loads(run(c, f"curl -fsS --max-time 10 {url}", what=url).stdout)
                alive = [w for w in state.get("workers", []) if w.get("state") == "ALIVE"]
                lines.append(
                    f"           master {state.get('url')} {state.get('status')}: "
                    f"{len(alive)} workers ALIVE, {sum(w['cores'] for w in alive)} cores, "
                    f"{sum(w['memory'] for w in alive) // 1024} GiB; "
                    f"{len(state.get('activeapps', []))} running applications"
                )
                if state.get("status") != "ALIVE":
                    problems.append(f"master {state.get('status')}")
                if len(alive) < len(cluster.hosts["workers"]):
                    problems.append(
                        f"{len(alive)} of {len(cluster.hosts['workers'])} workers ALIVE"
                    )
            if group == "gpu":
                smi = run(
                    c,
                    "nvidia-smi --query-gpu=name,memory.used,memory.total,utilization.gpu "
                    "--format=csv,noheader",
                    check=False,
                )
                found = smi.stdout.strip() or "nvidia-smi failed: " + smi.stderr.strip()[-200:]
                lines.append(f"           gpu {found}")
                if smi.exited:
                    problems.append(f"{host['name']}: no GPU")
        except Exception as exc:  # report every node, whatever fails
            lines.append(
                f"{group:8} {host['name']} ({host['ansible_host']}): UNREACHABLE or failing: {exc}"
            )
            problems.append(f"{host['name']}: {str(exc)[:200]}")
        finally:
            c.close()
        return lines

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(everyone)) as pool:
        for lines in pool.map(lambda gh: look(*gh), everyone):
            print("\n".join(lines))
    if problems:
        print("problems: " + "; ".join(problems), file=sys.stderr)
        return 1
    print("cluster OK")
    return 0


def _sweep_args(args, name: str, run_id: str) -> list[str]:
    """The `higgsbench bench` arguments every remote sweep shares: what to sweep, on which data
    (as the containers see the shared directory), into which run directory."""
    return [
        "--optimizers",
        args.optimizers,
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
        "--seed",
        str(args.seed),
        "--data",
        f"/shared/data/{name}",
        "--out",
        f"/shared/runs/{run_id}",
    ]


def cmd_bench(args) -> int:
    cluster = Cluster(args)
    master, workers = cluster.master(), cluster.hosts["workers"]
    nodes = parse_nodes(args.nodes)
    if max(nodes) > len(workers):
        raise RemoteError(f"--nodes {args.nodes}: the inventory has {len(workers)} workers")
    address = cluster.master_address(args)
    run_id = args.id or f"{args.name}-{stamp()}"
    began = time.time()
    name, digest = prepare_everywhere(cluster, [master, *workers], cluster.spark_image, args)

    c = cluster.connect(master)
    try:
        url = f"http://{address}:{cluster.ui_port}/json/"
        state = json.loads(
            run(c, f"curl -fsS --max-time 10 {url}", what=f"asking the master {url}").stdout
        )
        alive = sum(w.get("state") == "ALIVE" for w in state.get("workers", []))
        if alive < max(nodes):
            raise RemoteError(
                f"the master has {alive} workers ALIVE, --nodes needs {max(nodes)} "
                "(make cluster-status)"
            )
        bench = [
            "bench",
            "--engines",
            "spark",
            "--master",
            f"spark://{address}:{cluster.master_port}",
            "--nodes",
            ",".join(map(str, nodes)),
            *_sweep_args(args, name, run_id),
            *args.extra,
        ]
        env = {
            "SPARK_RPC_SECRET_FILE": SECRET_IN_CONTAINER,
            "HIGGSBENCH_SPARK_MASTER_UI": f"http://{address}:{cluster.ui_port}",
        }
        if args.executor_memory:
            env["HIGGSBENCH_EXECUTOR_MEMORY"] = args.executor_memory
        if cluster.network == "host":
            env["SPARK_LOCAL_IP"] = address
        # The image's entrypoint advertises `hostname -i`, which on a VM may be a loopback
        # address: executors on the workers must call the driver back on the private IP.
        script = (
            'echo "spark.driver.host $HIGGSBENCH_DRIVER_HOST" '
            '>> "$SPARK_CONF_DIR/spark-defaults.conf" && exec higgsbench "$@"'
        )
        if cluster.network == "host":
            env["HIGGSBENCH_DRIVER_HOST"] = address
        else:
            script = 'exec higgsbench "$@"'
        cmd = cluster.docker_run(
            master,
            cluster.spark_image,
            ["sh", "-c", script, "sh", *bench],
            mounts=[f"{cluster.data_dir_of(master)}/secrets:{Path(SECRET_IN_CONTAINER).parent}:ro"],
            env=env,
            network=cluster.network,
            name=f"{cluster.cluster_name}-driver-{run_id}",
        )
        print(
            f"bench on {master['name']}: nodes {nodes}, optimizers {args.optimizers}, run {run_id}"
        )
        result = run(c, cmd, hide=False, what="the bench")
        out = fetch_run(cluster, master, c, cluster.spark_image, run_id, Path(args.runs))
    finally:
        c.close()
    record_sweep(
        out,
        {
            "command": "bench",
            "run_id": run_id,
            "nodes": nodes,
            "optimizers": args.optimizers,
            "master": {k: master.get(k) for k in ("name", "ansible_host", "private_ip")},
            "workers": [
                {
                    k: w.get(k)
                    for k in ("name", "private_ip", "spark_worker_cores", "spark_worker_memory")
                }
                for w in workers
            ],
        },
        image=cluster.spark_image,
        data=(name, digest),
        began=began,
        stdout=result.stdout,
    )
    return 0


def cmd_gpu(args) -> int:
    cluster = Cluster(args)
    if not cluster.hosts["gpu"]:
        raise RemoteError(f"{args.inventory}: the gpu group is empty (openstack_gpu_node=true)")
    host = cluster.hosts["gpu"][0]
    run_id = args.id or f"{args.name}-{stamp()}"
    began = time.time()
    name, digest = prepare_everywhere(cluster, [host], cluster.gpu_image, args)
    c = cluster.connect(host)
    try:
        mounts, extra = [], []
        if args.against:
            remote = f"{cluster.data_dir_of(host)}/incoming/against-{run_id}.json"
            c.put(str(Path(args.against).expanduser()), remote)
            run(c, f"chmod 0644 {shlex.quote(remote)}")
            mounts, extra = (
                [f"{remote}:/against/bench.json:ro"],
                ["--against", "/against/bench.json"],
            )
        bench = [
            "bench",
            "--engines",
            "torch",
            "--device",
            "cuda",
            "--precision",
            args.precision,
            *_sweep_args(args, name, run_id),
            *extra,
            *args.extra,
        ]
        cmd = cluster.docker_run(
            host,
            cluster.gpu_image,
            bench,
            mounts=mounts,
            gpus=True,
            name=f"{cluster.cluster_name}-gpu-{run_id}",
        )
        print(f"bench on {host['name']}: optimizers {args.optimizers}, run {run_id}")
        result = run(c, cmd, hide=False, what="the GPU bench")
        out = fetch_run(cluster, host, c, cluster.gpu_image, run_id, Path(args.runs))
        gpu = run(
            c,
            "nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader",
            check=False,
        ).stdout.strip()
    finally:
        c.close()
    record_sweep(
        out,
        {
            "command": "gpu",
            "run_id": run_id,
            "optimizers": args.optimizers,
            "gpu": gpu,
            "host": {k: host.get(k) for k in ("name", "ansible_host", "private_ip")},
        },
        image=cluster.gpu_image,
        data=(name, digest),
        began=began,
        stdout=result.stdout,
    )
    return 0


# --- command line -----------------------------------------------------------------------------


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as it is written; defaults shown, except None."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def parser() -> argparse.ArgumentParser:
    fmt = _Formatter
    settings = shared_settings()
    p = argparse.ArgumentParser(prog="remote.py", description=__doc__, formatter_class=fmt)
    p.add_argument(
        "-i", "--inventory", default=str(REPO / "inventory.ini"), help="Ansible inventory"
    )
    p.add_argument(
        "--docker", default="docker", help="docker command on the nodes (e.g. 'sudo docker')"
    )
    p.add_argument(
        "--data-dir",
        default=settings.get("higgsbench_data_dir", "/opt/higgsbench"),
        help="higgsbench_data_dir on the nodes (group_vars/all.yml)",
    )
    p.add_argument(
        "--spark-image",
        default=settings.get("higgsbench_spark_image"),
        help="Spark node image (group_vars/all.yml)",
    )
    p.add_argument(
        "--gpu-image",
        default=settings.get("higgsbench_gpu_image"),
        help="GPU image (group_vars/all.yml)",
    )
    p.add_argument(
        "--known-hosts",
        default=str(KNOWN_HOSTS),
        help="the cluster's SSH host keys, the only ones trusted (known_hosts.yml writes them)",
    )
    p.add_argument(
        "--driver-network",
        default="host",
        help="docker network of the driver container (as the cluster's containers)",
    )
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser(
        "hosts",
        help="print the inventory's master, workers and gpu as JSON (no SSH)",
        formatter_class=fmt,
    ).set_defaults(func=cmd_hosts)
    st = sub.add_parser(
        "status",
        help="each node, its containers, the master's workers, the GPU",
        formatter_class=fmt,
    )
    st.add_argument("--master-address", help="master address (default: the master's private_ip)")
    st.set_defaults(func=cmd_status)

    def common(sp, optimizers: str, name: str, batch: int):
        sp.add_argument("--optimizers", default=optimizers, help="comma-separated optimizers")
        sp.add_argument(
            "--epochs", type=int, default=2, help="epochs per run (the median is quoted)"
        )
        sp.add_argument("--batch-size", type=int, default=batch, help="global mini-batch size")
        sp.add_argument("--seed", type=int, default=42, help="random seed (data and weights)")
        sp.add_argument("--data", default="synth", help="synth | uci | PATH to HIGGS.csv(.gz)")
        sp.add_argument(
            "--events", type=int, default=1_000_000, help="events to generate (--data synth)"
        )
        sp.add_argument("--rows", type=int, help="use the first N rows (--data uci | PATH)")
        sp.add_argument(
            "--runs", default=str(REPO / "runs"), help="local directory for the results"
        )
        sp.add_argument("--name", default=name, help="run id prefix (the id adds a timestamp)")
        sp.add_argument("--id", help="run id (default: NAME-YYYYmmdd-HHMMSS)")
        sp.add_argument("extra", nargs="*", help="more `higgsbench bench` options, after --")

    b = sub.add_parser(
        "bench", help="Spark bench on the master against N workers", formatter_class=fmt
    )
    b.add_argument("--nodes", default="1", help="worker counts: 3, 1,2,4 or 1-5")
    b.add_argument("--master-address", help="master address (default: the master's private_ip)")
    b.add_argument("--executor-memory", help="spark.executor.memory (HIGGSBENCH_EXECUTOR_MEMORY)")
    common(b, "adam", "bench-cluster", 4096)
    b.set_defaults(func=cmd_bench)

    g = sub.add_parser("gpu", help="optimizer sweep on the GPU node", formatter_class=fmt)
    g.add_argument("--precision", default="fp32", help="fp32 | tf32 | bf16")
    g.add_argument("--against", help="a cluster bench.json: say how many CPU cores this GPU equals")
    common(g, "sgd,adam,adamax,adadelta,adagrad", "bench-gpu", 4096)
    g.set_defaults(func=cmd_gpu)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # paramiko logs every failed connection with a traceback; this script reports it in a line
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    try:
        return args.func(args)
    except RemoteError as exc:
        print(f"remote.py: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "remote.py: interrupted (containers on the nodes keep running: make cluster-status)",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
