"""`higgsbench cluster up|status|down`: a Spark standalone cluster on this machine, no Docker.

It runs the master and N workers from the pip pyspark package (which ships
``sbin/spark-daemon.sh`` and ``bin/spark-class`` but not the start-*.sh scripts), with
everything a real deployment would want on by default:

- RPC authentication with a secret generated at `up` (stored with mode 0600 in the state
  directory; the daemons read it from a spark-defaults.conf of mode 0600 there, never from the
  command line where `ps` would show it) and AES-based RPC encryption without SASL fallback;
- the REST submission server off, no kill buttons in the web UIs;
- every socket, web UIs included, bound to 127.0.0.1;
- free ports chosen at start, never assumed;
- logs, pid files, work directories and the state file under one state directory, which `up`
  marks as its own (MARKER) and which `up` and `down` refuse to touch without that mark;
- `down` stops the daemons and then kills what they left (executors, Python workers, training
  ranks): their descendants, and any process that carries this cluster's token in its
  environment (set on the daemons at `up`, inherited by everything they start). A pid file is
  a hint, never a proof: after a crash or a reboot it may name a process that got the same
  pid later, so a daemon is signalled only when it carries the token (or, where its
  environment cannot be read, when it is a JVM running that pid file's Spark class and
  started after the cluster's state was written). Never a process merely because its command
  line mentions a path, or a pid file names it;
- one `up` or `down` at a time per state directory (a lock on it).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

from higgsbench.common.errors import HiggsbenchError, UsageError
from higgsbench.common.limits import at_least
from higgsbench.spark import master
from higgsbench.spark.security import properties_text, security_properties, write_private
from higgsbench.spark.state import (
    DEFAULT_STATE_DIR,
    MARKER,
    TOKEN_ENV,
    ClusterState,
    cluster_token,
    is_cluster_dir,
)

HOST = "127.0.0.1"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
PID_FILE = re.compile(r"(org\.apache\.spark\.[\w.]+)-(\d+)\.pid$")
# A daemon's start time (from /proc, in clock ticks) against the state's (time.time()):
# a second's slack for the two clocks' rounding.
START_TIME_SLACK = 1.0
# What `up` creates in the state directory; only these are removed when it is reused.
OWN_ENTRIES = ("conf", "logs", "pids", "work", "secret", "cluster.json")


# Spark's memory sizes (JavaUtils.byteStringAsBytes): a whole number and an optional unit.
MEMORY = re.compile(r"[0-9]+(b|kb?|mb?|gb?|tb?|pb?)?", re.IGNORECASE | re.ASCII)


def spark_home() -> Path:
    try:
        import pyspark
    except ImportError:
        raise UsageError(
            "pyspark is not installed: `pip install -e '.[spark]'` (or `make venv`)"
        ) from None
    return Path(pyspark.__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _daemon_env(state_dir: Path) -> dict:
    env = {
        **os.environ,
        TOKEN_ENV: cluster_token(state_dir),
        "SPARK_HOME": str(spark_home()),
        "SPARK_CONF_DIR": str(state_dir / "conf"),
        "SPARK_LOG_DIR": str(state_dir / "logs"),
        "SPARK_PID_DIR": str(state_dir / "pids"),
        "SPARK_WORKER_DIR": str(state_dir / "work"),
        "SPARK_LOCAL_IP": HOST,
        "SPARK_LOCAL_HOSTNAME": "localhost",
        "PYSPARK_PYTHON": sys.executable,
    }
    env.pop("SPARK_NO_DAEMONIZE", None)  # spark-daemon.sh must detach
    return env


def _daemon(state_dir: Path, action: str, cls: str, instance: int, *args: str) -> None:
    script = spark_home() / "sbin" / "spark-daemon.sh"
    proc = subprocess.run(
        ["bash", str(script), action, cls, str(instance), *args],
        env=_daemon_env(state_dir),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        raise UsageError(
            f"spark-daemon.sh {action} {cls.rsplit('.', 1)[-1]} {instance} failed: "
            f"{(proc.stderr or proc.stdout).strip()[-500:]} (logs: {state_dir / 'logs'})"
        )


def write_spark_defaults(conf_dir: Path, secret: str, encryption: bool = True) -> Path:
    """The daemons' configuration, secret included: readable by the owner only."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    daemons = {
        "spark.master.rest.enabled": "false",
        # executors of a dead application are cleaned up with the worker's work dir
        "spark.worker.cleanup.enabled": "true",
    }
    text = properties_text({**security_properties(secret, encryption), **daemons})
    return write_private(conf_dir / "spark-defaults.conf", text)


def _claim_state_dir(state_dir: Path) -> None:
    """Make ``state_dir`` ours for a new cluster without destroying anything that is not.

    A missing or empty directory is marked as ours; one marked by an earlier `up` has only the
    entries `up` makes removed; anything else is refused (_check_state_dir).
    """
    _check_state_dir(state_dir)
    if is_cluster_dir(state_dir):
        for name in OWN_ENTRIES:
            path = state_dir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(state_dir, 0o700)
    write_private(state_dir / MARKER, secrets.token_hex(16) + "\n")


def _check_state_dir(state_dir: Path) -> None:
    """Refuse / and the home directory, a file, and a non-empty directory `up` did not mark."""
    if state_dir == Path(state_dir.anchor) or state_dir == Path.home().resolve():
        raise UsageError(
            f"--state-dir {state_dir}: refusing the filesystem root or your home directory; "
            "give the cluster a directory of its own, e.g. .state/cluster"
        )
    if state_dir.exists() and not state_dir.is_dir():
        raise UsageError(f"--state-dir {state_dir}: is a file, not a directory")
    if not is_cluster_dir(state_dir) and state_dir.exists() and any(state_dir.iterdir()):
        raise UsageError(
            f"--state-dir {state_dir}: not empty and not a higgsbench cluster's state "
            f"(no {MARKER} in it); refusing to use it. Choose a new or empty directory"
        )


def _require_cluster_dir(state_dir: Path) -> None:
    if not is_cluster_dir(state_dir):
        raise UsageError(
            f"--state-dir {state_dir}: not a higgsbench cluster's state (no {MARKER} in it, "
            "which `higgsbench cluster up` writes); nothing was stopped"
        )


def up(
    workers: int,
    cores: int,
    memory: str,
    state_dir: Path = DEFAULT_STATE_DIR,
    timeout: float = 120.0,
    rpc_encryption: bool = True,
) -> ClusterState:
    at_least("--workers", workers)
    at_least("--cores", cores)
    if not MEMORY.fullmatch(memory):
        raise UsageError(
            f"--memory {memory!r}: expected a size such as 2g, 512m or 1024m (a number and "
            "one of the units b, k, m, g, t, p)"
        )
    state_dir = Path(state_dir).expanduser().resolve()
    _check_state_dir(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    with _locked(state_dir):
        return _up(workers, cores, memory, state_dir, timeout, rpc_encryption)


def _up(
    workers: int, cores: int, memory: str, state_dir: Path, timeout: float, rpc_encryption: bool
) -> ClusterState:
    if is_cluster_dir(state_dir) and _alive_daemons(state_dir):
        running = ClusterState.load(state_dir).master_url
        raise UsageError(
            f"a cluster is already running from {state_dir} at {running}; "
            "`higgsbench cluster down` first"
        )
    _claim_state_dir(state_dir)
    for sub in ("conf", "logs", "pids", "work"):
        (state_dir / sub).mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32)
    secret_file = write_private(state_dir / "secret", secret + "\n")
    write_spark_defaults(state_dir / "conf", secret, rpc_encryption)

    master_port, ui_port = free_port(), free_port()
    master_url = f"spark://{HOST}:{master_port}"
    state = ClusterState(
        master_url=master_url,
        ui_url=f"http://{HOST}:{ui_port}",
        workers=workers,
        cores=cores,
        memory=memory,
        state_dir=str(state_dir),
        secret_file=str(secret_file),
        worker_ui_ports=[],
        python=sys.executable,
        started=time.time(),
        rpc_encryption=rpc_encryption,
    )
    state.save()
    try:
        _start_daemons(state, master_port, timeout)
    except BaseException:
        _stop(state_dir)
        raise
    return state


def _start_daemons(state: ClusterState, master_port: int, timeout: float) -> None:
    """The master, then the workers, each waited for: the master's web UI answering, then
    every worker registered with it."""
    state_dir = Path(state.state_dir)
    ui_port = int(state.ui_url.rsplit(":", 1)[1])
    master_args = ["--host", HOST, "--port", str(master_port), "--webui-port", str(ui_port)]
    _daemon(state_dir, "start", MASTER_CLASS, 1, *master_args)
    _wait_for(
        lambda: master.master_json(state.ui_url) is not None,
        timeout,
        f"the master did not start (log: {state_dir / 'logs'})",
    )
    for i in range(1, state.workers + 1):
        port = free_port()
        state.worker_ui_ports.append(port)
        worker_args = ["--host", HOST, "--port", str(free_port()), "--webui-port", str(port)]
        worker_args += ["--cores", str(state.cores), "--memory", state.memory, state.master_url]
        _daemon(state_dir, "start", WORKER_CLASS, i, *worker_args)
    state.save()
    _wait_for(
        lambda: len(alive_workers(state)) >= state.workers,
        timeout,
        f"fewer than {state.workers} workers registered (logs: {state_dir / 'logs'})",
    )


def _wait_for(condition, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise UsageError(f"timed out after {timeout:.0f} s: {message}")


def alive_workers(state: ClusterState) -> list[dict]:
    return master.alive_workers(state.ui_url) or []


def status(state_dir: Path = DEFAULT_STATE_DIR) -> dict:
    state = ClusterState.load(Path(state_dir).expanduser().resolve())
    info = master.master_json(state.ui_url)
    alive = master.alive(info)
    return {
        "master_url": state.master_url,
        "ui_url": state.ui_url,
        "master_up": info is not None,
        "alive_workers": len(alive),
        "cores": sum(w.get("cores", 0) for w in alive),
        "workers": [
            {
                "id": w["id"],
                "host": w["host"],
                "cores": w["cores"],
                "memory_mb": w["memory"],
                "state": w["state"],
            }
            for w in (info or {}).get("workers", [])
        ],
        "state_dir": state.state_dir,
        "rpc_encryption": state.rpc_encryption,
    }


def _pid_files(state_dir: Path) -> list[Path]:
    return sorted((state_dir / "pids").glob("*.pid")) if (state_dir / "pids").exists() else []


def daemon_pids(state_dir: Path) -> dict[str, int]:
    """The pid each daemon's pid file names, by pid-file name: candidates only (see
    proven_daemons). A file that does not hold a process id above 1 is refused, naming it."""
    out = {}
    for path in _pid_files(state_dir):
        text = path.read_text(errors="replace").strip()
        if not (text.isascii() and text.isdigit() and int(text) > 1):
            raise UsageError(
                f"{path}: holds {text[:20]!r}, not the process id of a Spark daemon; nothing "
                "was stopped. Remove the file if the cluster is not running, then run "
                "`higgsbench cluster down` again"
            )
        out[path.name] = int(text)
    return out


def proven_daemons(state_dir: Path) -> dict[str, psutil.Process]:
    """The daemons of this cluster that are running, by pid-file name: each pid file's
    process, where it is provably the one `up` started (is_ours), and nothing else."""
    token = cluster_token(state_dir)
    started = _state_started(state_dir)
    found = {}
    for name, pid in daemon_pids(state_dir).items():
        match = PID_FILE.search(name)
        try:
            proc = psutil.Process(pid)
            if match and is_ours(proc, token, match.group(1), started):
                found[name] = proc
        except psutil.Error:
            continue
    return found


def is_ours(proc: psutil.Process, token: str, spark_class: str, started: float | None) -> bool:
    """Whether ``proc`` is a daemon of this cluster: it carries the cluster's token in its
    environment; or, where that environment cannot be read, it is a JVM running
    ``spark_class`` that started after the cluster's state was written (``started``)."""
    try:
        return proc.environ().get(TOKEN_ENV) == token
    except psutil.AccessDenied:
        pass
    if started is None:
        return False
    try:
        return (
            proc.name() == "java"
            and spark_class in proc.cmdline()
            and proc.create_time() >= started - START_TIME_SLACK
        )
    except psutil.Error:
        return False


def _state_started(state_dir: Path) -> float | None:
    """When `up` wrote the state, or None if its record cannot be read."""
    try:
        return ClusterState.load(state_dir).started
    except (HiggsbenchError, OSError):
        return None


def _alive_daemons(state_dir: Path) -> list[psutil.Process]:
    return list(proven_daemons(state_dir).values())


def cluster_processes(state_dir: Path) -> list[psutil.Process]:
    """Every live process of the cluster: its proven daemons and all their descendants
    (executors, Python workers, torchrun and training ranks), plus any process that carries
    the cluster's token in its environment (an executor whose worker died has been
    re-parented)."""
    if not is_cluster_dir(state_dir):
        return []
    found = {}
    for proc in proven_daemons(state_dir).values():
        found[proc.pid] = proc
        with contextlib.suppress(psutil.NoSuchProcess):
            found.update((child.pid, child) for child in proc.children(recursive=True))
    token = cluster_token(state_dir)
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get(TOKEN_ENV) == token:
                found[proc.pid] = proc
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
    found.pop(os.getpid(), None)
    return [p for p in found.values() if _running(p)]


def _wait_gone(procs: list[psutil.Process], timeout: float) -> None:
    """Until none of ``procs`` runs, or ``timeout``. A zombie counts as gone: one whose parent
    has not reaped it yet (psutil.wait_procs would wait the whole timeout for it)."""
    deadline = time.monotonic() + timeout
    while any(_running(p) for p in procs) and time.monotonic() < deadline:
        time.sleep(0.1)


def _running(proc) -> bool:
    """Alive and not a zombie (an exited child its parent has not reaped yet)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def down(state_dir: Path = DEFAULT_STATE_DIR, timeout: float = 30.0) -> int:
    """Stop the cluster: SIGTERM to its daemons (as spark-daemon.sh stop sends) and to every
    other process proven the cluster's, then SIGKILL to whatever is left after ``timeout``.
    Returns how many distinct processes were stopped. Only processes proven the cluster's are
    signalled."""
    state_dir = Path(state_dir).expanduser().resolve()
    if not state_dir.exists():
        return 0
    _require_cluster_dir(state_dir)
    with _locked(state_dir):
        return _stop(state_dir, timeout)


def _stop(state_dir: Path, timeout: float = 30.0) -> int:
    daemon_pids(state_dir)  # a pid file that names no process id: refused before any signal
    stopped = {p.pid: p for p in cluster_processes(state_dir)}
    # the daemons first (their executors end with them), then whatever else carries the
    # cluster's token: a process left without its daemon would otherwise wait out the timeout
    daemons = _alive_daemons(state_dir)
    for proc in [*daemons, *(p for p in stopped.values() if p not in daemons)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _wait_gone(list(stopped.values()), timeout)
    for _ in range(3):  # executors may still be starting as their worker stops
        left = cluster_processes(state_dir)
        if not left:
            break
        stopped.update((p.pid, p) for p in left)
        for proc in left:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        _wait_gone(left, 10)
    left = cluster_processes(state_dir)
    if left:
        raise UsageError(
            f"could not stop every cluster process: {', '.join(str(p.pid) for p in left)}"
        )
    for path in _pid_files(state_dir):
        path.unlink(missing_ok=True)
    return len(stopped)


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """Hold the state directory for one `up` or `down`; a second one at the same time is
    refused rather than started beside it."""
    fd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(
                f"--state-dir {state_dir}: another `higgsbench cluster up` or `down` is "
                "running on it; wait for it to finish"
            ) from None
        yield
    finally:
        os.close(fd)


def kill_worker(state_dir: Path, index: int) -> list[int]:
    """Kill worker ``index`` (1-based) and everything it started, as a node failure would."""
    daemons = proven_daemons(Path(state_dir).resolve())
    name = next((n for n in daemons if WORKER_CLASS in n and n.endswith(f"-{index}.pid")), None)
    if name is None:
        raise UsageError(f"no worker {index} running from {state_dir}")
    root = daemons[name]
    victims = [root, *root.children(recursive=True)]
    for proc in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    return [p.pid for p in victims]
